"""A full-resolution oracle with a local quality map: per pixel, the probability that the mask is right.

The global oracle (:mod:`~segscope.oracle.network`) sees image and mask at 128x128 and answers one
number, so a thin EM membrane is a pixel wide to it and gradient ascent on that number finds masks it
over-rates. :class:`LocalQualityOracle` is fully convolutional at the image's own resolution: from the
image and a soft class map ``m`` (``K`` channels) it predicts, per pixel, the distribution ``p`` of the
*true* class. From ``p`` follow

* the **local quality map** ``a = sum_c m_c p_c``: the probability that each pixel is labelled right
  (its mean is the estimated pixel accuracy), and
* the **global score**, the estimated Dice (or IoU) of each scored class with the unseen truth, from
  expected counts ``TP = sum m_c p_c``, ``FP = sum m_c (1 - p_c)``, ``FN = sum (1 - m_c) p_c``; for a
  hard binary mask these are sums of ``a`` and ``1 - a`` over the mask and its complement
  (:func:`dice_from_quality_map`), so the map integrates to the score.

References
----------
K. Fernandes, R. Cruz and J. S. Cardoso, "Deep image segmentation by quality inference", IJCNN 2018
(an oracle of segmentation quality learnt from masks of known quality, used to score and refine masks).
Departures: the oracle predicts per-pixel correctness (a dense quality map) instead of one scalar, is
trained by per-pixel cross-entropy against the truth rather than MSE on a global score, runs fully
convolutionally at full resolution (a small U-Net, Ronneberger et al. 2015, with the mask as extra input
channels), and scores all ``K`` classes of a multi-class map at once (multi-channel, not one-vs-rest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segscope.engine.checkpoint import load_weights, save_weights
from segscope.errors import UserError
from segscope.io import write_json_atomic
from segscope.oracle.network import META, WEIGHTS, read_oracle_meta


class LocalQualityOracle(nn.Module):
    """Predict, per pixel, the true-class distribution given the image and a soft class map.

    ``forward(x)`` takes ``(N, C + K, H, W)`` (standardised image, then the ``K`` class probabilities of
    the mask being judged) and returns ``(N, K, H, W)`` logits; any ``H, W`` works (inputs are padded to
    a multiple of ``2**depth`` inside).

    Parameters
    ----------
    in_channels : image channels.
    num_classes : classes of the dataset (``K``; 2 for a binary task).
    classes : the classes whose Dice/IoU the global score averages (default: class 1 of binary data,
        all classes otherwise).
    base_channels, depth : width and depth of the U-Net.
    quality : ``"dice"`` or ``"iou"``, what :meth:`score_labels` estimates.
    """

    kind = "local"

    def __init__(
        self,
        in_channels: int = 1,
        *,
        num_classes: int = 2,
        classes: list[int] | None = None,
        base_channels: int = 16,
        depth: int = 3,
        quality: str = "dice",
    ) -> None:
        super().__init__()
        from segscope.models.semantic.unet import UNet

        if quality not in ("dice", "iou"):
            raise ValueError(f"quality must be dice or iou, got {quality!r}")
        if num_classes < 2:
            raise ValueError("num_classes must be >= 2")
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.classes = [1] if classes is None and num_classes == 2 else list(classes or range(num_classes))
        self.base_channels, self.depth, self.quality = int(base_channels), int(depth), quality
        self.net = UNet(
            self.num_classes, self.in_channels + self.num_classes, base_channels=base_channels, depth=depth
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels + self.num_classes:
            raise ValueError(
                f"local oracle expects (N, {self.in_channels + self.num_classes}, H, W), got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        unit = 2**self.depth
        ph, pw = (-h) % unit, (-w) % unit
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        return self.net(x)[..., :h, :w]

    # -- from arrays --------------------------------------------------------------------------------------
    def prepare_image(self, image: np.ndarray) -> torch.Tensor:
        """``(H, W[, C])`` uint8 -> ``(C, H, W)`` float32, standardised per channel (full resolution)."""
        return standardise(image, self.in_channels)

    def truth_proba_t(self, image_t: torch.Tensor, proba_t: torch.Tensor) -> torch.Tensor:
        """Differentiable: ``(C, H, W)`` prepared image and ``(K, H, W)`` map -> ``(K, H, W)`` true-class
        probabilities."""
        return torch.softmax(self(torch.cat([image_t, proba_t], 0)[None]), 1)[0]

    def truth_proba(self, image: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """``(K, H, W)`` probabilities of the true class at each pixel, given the map ``proba``."""
        device = next(self.parameters()).device
        proba_t = torch.as_tensor(check_proba(proba, image, self.num_classes)).to(device)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            out = self.truth_proba_t(self.prepare_image(image).to(device), proba_t).cpu().numpy()
        self.train(was_training)
        return out

    def quality_map(self, image: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """``(H, W)`` probability that each pixel of the map ``proba`` is labelled right."""
        return (np.asarray(proba, np.float32) * self.truth_proba(image, proba)).sum(0)

    def class_scores(self, image: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """``(K,)`` estimated Dice/IoU of every class of a ``(K, H, W)`` soft map, from one pass."""
        m = np.asarray(proba, np.float32)
        return overlap_from_counts(*class_counts(m, self.truth_proba(image, m)), self.quality)

    def score_proba(self, image: np.ndarray, proba: np.ndarray) -> float:
        """Estimated quality (mean over :attr:`classes`) of a ``(K, H, W)`` soft map."""
        return float(self.class_scores(image, proba)[self.classes].mean())

    def score_labels(self, image: np.ndarray, labels: np.ndarray) -> float:
        """Estimated quality of a label map (see :func:`segscope.oracle.quality.predicted_quality`)."""
        return self.score_proba(image, one_hot(labels, self.num_classes))

    def score(self, image: np.ndarray, mask: np.ndarray, class_index: int | None = None) -> float:
        """Estimated quality of a binary task's foreground probability ``mask`` (API of the global oracle)."""
        if self.num_classes != 2:
            raise UserError(
                "a single mask can be scored only by an oracle of a binary task; use score_labels"
            )
        m = np.clip(np.asarray(mask, np.float32), 0, 1)
        return self.score_proba(image, np.stack([1 - m, m]))

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "classes": self.classes,
            "base_channels": self.base_channels,
            "depth": self.depth,
            "quality": self.quality,
        }


def standardise(image: np.ndarray, in_channels: int) -> torch.Tensor:
    """``(H, W[, C])`` uint8 -> ``(C, H, W)`` float32 with zero mean and unit std per channel."""
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] != in_channels:
        raise UserError(f"image has shape {image.shape}; the oracle expects {in_channels} channel(s)")
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
    mean, std = x.mean((1, 2), keepdim=True), x.std((1, 2), keepdim=True)
    return (x - mean) / std.clamp_min(1e-3)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(H, W)`` class indices -> ``(K, H, W)`` float32 one-hot (out-of-range values: all zero)."""
    labels = np.asarray(labels)
    return (labels[None] == np.arange(num_classes)[:, None, None]).astype(np.float32)


def check_proba(proba: np.ndarray, image: np.ndarray, num_classes: int) -> np.ndarray:
    proba = np.asarray(proba, np.float32)
    if proba.ndim != 3 or proba.shape[0] != num_classes or proba.shape[1:] != image.shape[:2]:
        raise UserError(
            f"class map of shape {proba.shape} does not fit a {num_classes}-class oracle and an image "
            f"of {image.shape[:2]}"
        )
    return proba


def class_counts(m: Any, p: Any, valid: Any = None) -> tuple[Any, Any, Any]:
    """Expected ``(TP, FP, FN)`` per class of soft map ``m`` against true-class probabilities ``p``
    (numpy or torch, ``(K, H, W)`` each); ``valid`` ``(H, W)`` selects the pixels counted."""
    if valid is not None:
        m, p = m * valid, p * valid
    tp = (m * p).sum((1, 2))
    return tp, (m * (1 - p)).sum((1, 2)), ((1 - m) * p).sum((1, 2))


def overlap_from_counts(tp: Any, fp: Any, fn: Any, metric: str) -> Any:
    """Dice ``2TP / (2TP + FP + FN)`` or IoU ``TP / (TP + FP + FN)`` per class; 1 where all are 0."""
    num, den = (2 * tp, 2 * tp + fp + fn) if metric == "dice" else (tp, tp + fp + fn)
    if isinstance(den, torch.Tensor):
        return torch.where(den > 1e-6, num / den.clamp_min(1e-6), torch.ones_like(den))
    return np.where(den > 1e-6, num / np.maximum(den, 1e-6), 1.0)


def estimated_quality(m: np.ndarray, p: np.ndarray, classes: list[int], metric: str = "dice") -> float:
    """Mean over ``classes`` of the Dice/IoU of map ``m`` implied by true-class probabilities ``p``.

    With ``p`` the one-hot truth this is the exact quality; with the oracle's ``p`` it is its estimate."""
    scores = overlap_from_counts(*class_counts(m, p), metric)
    return float(np.mean([scores[c] for c in classes]))


def dice_from_quality_map(quality_map: np.ndarray, mask: np.ndarray) -> float:
    """Foreground Dice of a hard binary ``mask`` from its local quality map alone: ``TP = sum a`` over the
    mask, ``FP = sum (1 - a)`` over the mask, ``FN = sum (1 - a)`` outside it."""
    a, fg = np.asarray(quality_map, np.float64), np.asarray(mask, bool)
    tp, fp, fn = a[fg].sum(), (1 - a[fg]).sum(), (1 - a[~fg]).sum()
    return float(overlap_from_counts(np.array(tp), np.array(fp), np.array(fn), "dice"))


# -- run directory --------------------------------------------------------------------------------------
def save_local_oracle(
    oracle: LocalQualityOracle, run_dir: str | Path, info: dict[str, Any] | None = None
) -> Path:
    """Write ``oracle.safetensors`` then ``oracle.json`` (kind ``local``, config, ``info``) atomically."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_weights(run_dir / WEIGHTS, oracle, epoch=int((info or {}).get("epochs", 0)))
    write_json_atomic(
        run_dir / META,
        {"kind": "quality_oracle", "oracle_kind": "local", **(info or {}), "oracle": oracle.config()},
    )
    return run_dir


def load_local_oracle(run_dir: str | Path, *, device: str | torch.device = "cpu") -> LocalQualityOracle:
    """Rebuild the oracle :func:`save_local_oracle` wrote, in eval mode."""
    meta = read_oracle_meta(run_dir)
    if meta.get("oracle_kind") != "local":
        raise UserError(f"{Path(run_dir) / META}: not a local quality oracle")
    try:
        oracle = LocalQualityOracle(**meta["oracle"])
    except (TypeError, ValueError) as exc:
        raise UserError(f"{Path(run_dir) / META}: bad oracle configuration ({exc})") from None
    load_weights(Path(run_dir) / WEIGHTS, oracle)
    return oracle.to(device).eval()
