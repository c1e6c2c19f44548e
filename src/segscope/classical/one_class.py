"""One-class anomaly segmentation: learn what "normal" pixels look like, flag everything unlikely.

The extreme of class imbalance is an anomaly class with (almost) no training examples. ``one_class``
uses none: it fits a density to the per-pixel features of *normal* training pixels only and calls a
pixel anomalous when its negative log-likelihood exceeds the ``quantile`` of the training normal
scores, so the false-alarm rate on normal pixels is about ``1 - quantile`` by construction and no
anomaly label is ever read. That rate bounds the IoU: with anomalies covering a fraction ``a`` of the
pixels, IoU <= a / (a + (1 - quantile)(1 - a)) - hence the default 0.99 rather than the 0.95 common in
image-level novelty detection (0.95 caps IoU at 0.7 when anomalies cover 11 % of the image).

* Features: :func:`segscope.classical.features.pixel_features` without the position columns (CIE Lab,
  its blur, and scikit-image's multiscale intensity / edge / texture features up to ``sigma_max``),
  minus features (nearly) constant on the training pixels (std <= 1e-4, e.g. a grey image's chroma),
  standardised.
* Normality model: scikit-learn's ``GaussianMixture`` with ``components`` full-covariance components
  (1 = a single Gaussian, i.e. a squared Mahalanobis distance), fitted on a seeded subsample of at most
  ``max_samples`` normal pixels. Its parameters are stored as lists (no pickle) and scored in NumPy.
* Score ``s(x) = -log p(x)``; threshold ``tau`` = ``np.quantile`` of ``s`` over the training sample
  (in-sample, the same pixels the model was fitted on). ``predict_proba``'s anomaly channel is
  ``sigmoid((s - tau) / w)`` with ``w`` the robust spread ``IQR / 1.349`` of the training scores, so it
  crosses 0.5 exactly at the threshold.

References
----------
.. [1] C. M. Bishop, "Novelty detection and neural network validation", IEE Proc. Vision, Image and
   Signal Processing 141(4), 1994 (thresholding the density of normal data).
.. [2] M. A. F. Pimentel, D. A. Clifton, L. Clifton, L. Tarassenko, "A review of novelty detection",
   Signal Processing 99, 2014 (Sec. 2, probabilistic novelty detection).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segscope.classical.features import pixel_features
from segscope.classical.preprocess import preprocess
from segscope.classical.segmenter import BinarySegmenter, evenly_spaced
from segscope.errors import UserError
from segscope.registry import register

if TYPE_CHECKING:
    from segscope.data.dataset import SegmentationDataset

TRAIN_ON = ("pixels", "images")
DEFAULT_QUANTILE = 0.99  # false-alarm rate 1 % of normal pixels


def normality_features(image: np.ndarray, *, sigma_max: float = 4.0) -> np.ndarray:
    """``(H, W, C)`` uint8 -> ``(H, W, F)`` float32: :func:`pixel_features` without the position."""
    return pixel_features(image, sigma_max=sigma_max)[..., :-2]


def fit_normality_model(
    x: np.ndarray, *, components: int = 1, quantile: float = DEFAULT_QUANTILE, seed: int = 0
) -> dict[str, Any]:
    """Fit a full-covariance Gaussian mixture to ``(n, F)`` normal samples; JSON-able state.

    The state holds the kept feature columns, the standardisation, the mixture (weights, means, Cholesky
    factors of the precisions) and ``threshold`` = the ``quantile`` of the training scores
    (:func:`normality_score`), with ``scale`` = their ``IQR / 1.349``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < max(10, 2 * components):
        raise UserError(f"one_class: too few normal training pixels ({len(x)}) to fit a normality model")
    std = x.std(axis=0)
    keep = std > 1e-4  # features are on a unit scale; a grey image's chroma varies by ~1e-6 (round-off)
    if not keep.any():
        raise UserError("one_class: every feature is constant on the normal training pixels")
    mean, scale = x[:, keep].mean(axis=0), std[keep]
    z = (x[:, keep] - mean) / scale
    gmm = GaussianMixture(components, covariance_type="full", reg_covar=1e-3, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(z)
    state: dict[str, Any] = {
        "keep": np.flatnonzero(keep).tolist(),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "weights": gmm.weights_.tolist(),
        "means": gmm.means_.tolist(),
        "precisions_cholesky": gmm.precisions_cholesky_.tolist(),
    }
    scores = normality_score(state, x)
    q25, q75 = np.quantile(scores, [0.25, 0.75])
    state["threshold"] = float(np.quantile(scores, quantile))
    state["scale_score"] = float(max((q75 - q25) / 1.349, 1e-6))
    return state


def normality_score(state: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Negative log-likelihood ``-log p(x)`` of ``(n, F)`` features under the fitted mixture, ``(n,)``
    (equals ``-GaussianMixture.score_samples`` on the standardised kept features)."""
    z = (np.asarray(x, np.float64)[:, state["keep"]] - np.asarray(state["mean"])) / np.asarray(state["scale"])
    d = z.shape[1]
    log_terms = []
    for w, mu, chol in zip(state["weights"], state["means"], state["precisions_cholesky"]):
        chol = np.asarray(chol)
        y = (z - np.asarray(mu)) @ chol
        log_det = np.log(np.diag(chol)).sum()
        log_terms.append(np.log(w) - 0.5 * (d * np.log(2 * np.pi) + (y * y).sum(axis=1)) + log_det)
    stacked = np.stack(log_terms, axis=1)
    top = stacked.max(axis=1)
    return -(top + np.log(np.exp(stacked - top[:, None]).sum(axis=1)))


@register("one_class", paper="Bishop, IEE Proc. VISP 1994")
class OneClassSegmenter(BinarySegmenter):
    """Anomaly segmentation from normal pixels only: Gaussian-mixture density, quantile threshold.

    Options: ``normal_class`` (class whose pixels are normal; default the background class),
    ``train_on`` (``"pixels"``: the ``normal_class`` pixels of every training image; ``"images"``: all
    labelled pixels of the images whose mask holds only ``normal_class``, or that have no mask),
    ``quantile`` (0.99), ``components`` (1), ``sigma_max`` (4.0, largest feature scale),
    ``max_samples`` (50 000 normal pixels), ``learn_images`` (20), ``seed``, ``preprocess``,
    ``postprocess``. Anomalies are labelled ``foreground`` (default 1), the rest ``background``.
    """

    name = "one_class"
    tune_polarity = False
    learns = True
    needs_training = True
    extra_options = ("normal_class", "train_on", "quantile", "components", "sigma_max", "max_samples")

    def __init__(self, num_classes: int = 2, **options: Any) -> None:
        super().__init__(num_classes, **options)
        o = self.options
        if o.get("train_on", "pixels") not in TRAIN_ON:
            raise UserError(
                f"one_class: train_on must be one of {', '.join(TRAIN_ON)}, got {o['train_on']!r}"
            )
        if not 0 < float(o.get("quantile", DEFAULT_QUANTILE)) < 1:
            raise UserError(f"one_class: quantile must be in (0, 1), got {o['quantile']!r}")
        for key in ("components", "max_samples"):
            if key in o and (not isinstance(o[key], int) or o[key] < 1):
                raise UserError(f"one_class: option {key} must be a positive integer, got {o[key]!r}")
        if not float(o.get("sigma_max", 4.0)) >= 1:
            raise UserError(f"one_class: sigma_max must be >= 1, got {o['sigma_max']!r}")
        self.normal_class = int(o.get("normal_class", self.background))
        if not 0 <= self.normal_class < num_classes:
            raise UserError(f"one_class: normal_class={self.normal_class} is not a class below {num_classes}")

    def _features(self, image: np.ndarray) -> np.ndarray:
        return normality_features(image, sigma_max=float(self.options.get("sigma_max", 4.0)))

    def normal_pixels(self, train: SegmentationDataset, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(pre-processed image, (H, W) bool normal-pixel mask)`` of training image ``index``."""
        image = preprocess(train.load_image(index), self.options.get("preprocess"))
        if train.samples[index].mask is None:
            if self.options.get("train_on", "pixels") == "pixels":
                raise UserError(
                    f"{train.samples[index].image}: train_on='pixels' needs a mask for every image"
                )
            return image, np.ones(image.shape[:2], bool)
        mask = train.load_mask(index, image_shape=image.shape)
        labelled = (mask >= 0) & (mask < self.num_classes)
        normal = labelled & (mask == self.normal_class)
        if self.options.get("train_on", "pixels") == "images" and (labelled & ~normal).any():
            normal = np.zeros_like(normal)  # an image with an anomaly is not used at all
        return image, normal

    def fit(
        self,
        train: SegmentationDataset,
        val: SegmentationDataset | None = None,
        *,
        time_budget_s: float | None = None,
        out_dir: str | Path | None = None,
        progress: bool = True,
    ) -> OneClassSegmenter:
        """Fit the normality model on the normal pixels of up to ``learn_images`` training images.

        Nothing is tuned and no anomaly label is used (``val`` and the time budget are ignored).
        """
        if len(train) == 0:
            raise UserError(f"{self.name}: the training set is empty")
        if train.num_classes != self.num_classes:
            raise UserError(
                f"{self.name}: built for {self.num_classes} classes, the training set has {train.num_classes}"
            )
        rng = np.random.default_rng(int(self.options.get("seed", 0)))
        indices = evenly_spaced(len(train), int(self.options.get("learn_images", 20)))
        cap = max(1, int(self.options.get("max_samples", 50_000)) // len(indices))
        xs = []
        for i in indices:
            image, normal = self.normal_pixels(train, i)
            if not normal.any():
                continue
            feats = self._features(image)[normal]
            xs.append(feats[rng.choice(len(feats), cap, replace=False)] if len(feats) > cap else feats)
        if not xs:
            raise UserError(f"{self.name}: no normal training pixels (class {self.normal_class})")
        x = np.concatenate(xs)
        self.model = fit_normality_model(
            x,
            components=int(self.options.get("components", 1)),
            quantile=float(self.options.get("quantile", DEFAULT_QUANTILE)),
            seed=int(self.options.get("seed", 0)),
        )
        self.history = [{"trial": 1, "normal_pixels": len(x), "threshold": self.model["threshold"]}]
        if out_dir is not None:
            self.save(out_dir)
        return self

    def anomaly_score(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` float64 negative log-likelihood of each pixel (before ``preprocess``: the raw image)."""
        self._check_fitted()
        image = np.asarray(image)
        image = preprocess(image if image.ndim == 3 else image[..., None], self.options.get("preprocess"))
        return self._score(image)

    def _score(self, image: np.ndarray) -> np.ndarray:
        feats = self._features(image)
        h, w, f = feats.shape
        return normality_score(self.model, feats.reshape(-1, f)).reshape(h, w)

    def _check_fitted(self) -> None:
        if self.model is None:
            raise UserError(f"{self.name} learns from normal pixels: fit it first")

    def segment_mask(self, image, params, model):
        return self._score(image) > model["threshold"]

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """``(num_classes, H, W)`` float32: ``foreground`` = ``sigmoid((score - threshold) / scale)``,
        ``background`` = 1 minus that, other classes 0 (post-processing is not applied)."""
        score = self.anomaly_score(image)
        z = np.clip((score - self.model["threshold"]) / self.model["scale_score"], -60, 60)
        p = 1.0 / (1.0 + np.exp(-z))
        out = np.zeros((self.num_classes, *score.shape), np.float32)
        out[self.foreground], out[self.background] = p, 1.0 - p
        return out


__all__ = ["OneClassSegmenter", "fit_normality_model", "normality_features", "normality_score"]
