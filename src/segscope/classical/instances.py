"""A classical instance method: threshold a colour channel, then split the foreground by a
distance-transform watershed (``watershed_instances``, task ``"instance"``).

1. **Foreground.** A channel chosen for the data -- ``"exg"``, the excess green ``2G - R - B`` (in
   ``[-2, 2]`` after dividing by 255), which separates plants from soil [1]_, or the grey level -- is
   smoothed (Gaussian, 1 pixel) and thresholded, at Otsu's threshold or at a tuned absolute level;
   components below ``min_size`` pixels are dropped and holes filled.
2. **Instances.** The Euclidean distance transform of the foreground, smoothed by ``sigma``, has one
   h-maximum (height ``h`` pixels) per roughly convex blob [2]_; those maxima seed a watershed of the
   negated distance inside the foreground, which cuts touching objects at their necks. Basins under
   ``min_size`` pixels are merged into their neighbours (a second flooding from the others).
3. **Scores.** Each instance's confidence is its solidity (area over convex-hull area) times the
   square root of its area relative to the image's largest instance: a compact, convex, large basin
   is more likely one whole object than a ragged fragment, a merge of several or a sliver (on 12 CVPPP
   A1 images this ranking gave mask AP 0.38 against 0.28 for constant scores and 0.32 for solidity
   alone).

The segmenter tunes ``channel``, ``threshold`` and ``h`` on training images of an instance
dataset (:attr:`SegmentationDataset.task` ``== "instance"``) by the mean symmetric best Dice
(``tune_metric="sbd"``, the default) or by COCO mask AP / AP50 pooled over the tuning images
(``"ap"`` / ``"ap50"``).

References
----------
.. [1] D. M. Woebbecke et al., "Color indices for weed identification under various soil, residue and
   lighting conditions", Trans. ASAE 38(1), 1995 (excess green).
.. [2] P. Soille, "Morphological Image Analysis", Springer, 2003 (distance transform, h-maxima,
   marker-controlled watershed); scikit-image ``segmentation.watershed``, ``morphology.h_maxima``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from scipy import ndimage
from skimage import filters, measure, morphology, segmentation
from tqdm.auto import tqdm

from segscope.classical.morphology import postprocess
from segscope.classical.preprocess import preprocess, to_grey
from segscope.classical.segmenter import ClassicalSegmenter, evenly_spaced
from segscope.errors import UserError
from segscope.metrics.instance import symmetric_best_dice
from segscope.registry import register
from segscope.types import Instances

if TYPE_CHECKING:
    from segscope.data.dataset import SegmentationDataset

CHANNELS = ("exg", "grey", "green", "inverted_grey")
TUNE_METRICS = ("sbd", "ap", "ap50")


def object_channel(image: np.ndarray, channel: str = "exg") -> np.ndarray:
    """``(H, W, C)`` uint8 image -> ``(H, W)`` float64 map in which the objects are bright.

    ``"exg"``: excess green ``(2G - R - B) / 255`` in ``[-2, 2]`` (plants on soil); ``"green"``:
    ``G / 255``; ``"grey"``: luminance in ``[0, 1]``; ``"inverted_grey"``: ``1 -`` luminance (dark
    objects). A single-channel image has no colour: ``"exg"`` and ``"green"`` fall back to ``"grey"``.
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    image = np.asarray(image)
    colour = image.ndim == 3 and image.shape[2] >= 3
    if channel in ("exg", "green") and colour:
        f = image[..., :3].astype(np.float64) / 255.0
        return 2 * f[..., 1] - f[..., 0] - f[..., 2] if channel == "exg" else f[..., 1]
    grey = to_grey(image)
    return 1.0 - grey if channel == "inverted_grey" else grey


def object_foreground(
    values: np.ndarray, threshold: float | str = "otsu", *, smooth: float = 1.0, min_size: int = 50
) -> np.ndarray:
    """Bool foreground ``values > threshold`` after Gaussian smoothing ``smooth`` (pixels);
    ``threshold="otsu"`` uses Otsu's threshold of the smoothed map. Components of fewer than
    ``min_size`` pixels are dropped and holes filled."""
    v = filters.gaussian(np.asarray(values, np.float64), sigma=smooth) if smooth > 0 else values
    if threshold == "otsu":
        t = filters.threshold_otsu(v) if v.min() < v.max() else v.max()
    elif isinstance(threshold, str):
        raise ValueError(f"threshold must be 'otsu' or a number, got {threshold!r}")
    else:
        t = float(threshold)
    fg = v > t
    if min_size > 0:
        fg = morphology.remove_small_objects(fg, max_size=int(min_size))
    return ndimage.binary_fill_holes(fg)


def distance_watershed(
    foreground: np.ndarray,
    *,
    sigma: float = 2.0,
    h: float = 1.0,
    min_size: int = 50,
    compactness: float = 0.0,
) -> np.ndarray:
    """Split a bool foreground into instances: watershed of the negated (``sigma``-smoothed) distance
    transform from its h-maxima of height ``h`` pixels; basins below ``min_size`` pixels are merged
    into their neighbours. Returns an ``(H, W)`` int64 instance-id map (0 = background, ids 1..n)."""
    if h <= 0:
        raise ValueError(f"h must be > 0 (pixels), got {h}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    fg = np.asarray(foreground, bool)
    out = np.zeros(fg.shape, np.int64)
    if not fg.any():
        return out
    # work on the foreground's bounding box (plus a margin for the smoothing): plants fill a few % of it
    rows, cols = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
    m = int(np.ceil(3 * sigma)) + 2
    box = (
        slice(max(rows[0] - m, 0), rows[-1] + m + 1),
        slice(max(cols[0] - m, 0), cols[-1] + m + 1),
    )
    f = fg[box]
    dist = ndimage.distance_transform_edt(f)
    if sigma > 0:
        dist = filters.gaussian(dist, sigma=sigma, preserve_range=True)
    seeds = measure.label(morphology.h_maxima(dist, h).astype(bool) & f)
    basins = segmentation.watershed(-dist, seeds, mask=f, compactness=compactness)
    if min_size > 0 and basins.max() > 1:
        sizes = np.bincount(basins.ravel())
        small = sizes < min_size
        small[0] = False
        if small.any() and not small[1:].all():
            kept = np.where(small[basins], 0, basins)
            basins = segmentation.watershed(-dist, kept, mask=f)
    out[box] = segmentation.relabel_sequential(basins)[0]
    return out


def instance_scores(instance_map: np.ndarray) -> np.ndarray:
    """Per-instance confidence in ``[0, 1]`` of an instance-id map (one score per id, in increasing id
    order): solidity (area / convex-hull area) times ``sqrt(area / largest area)``."""
    props = measure.regionprops(np.asarray(instance_map))
    if not props:
        return np.zeros(0, np.float32)
    area = np.array([p.area for p in props], np.float64)
    solidity = np.array([p.solidity for p in props], np.float64)
    return np.clip(solidity * np.sqrt(area / area.max()), 0.0, 1.0).astype(np.float32)


@register("watershed_instances", paper="Soille 2003 (distance-transform watershed)")
class WatershedInstances(ClassicalSegmenter):
    """Instances by a channel threshold and a distance-transform watershed (tuned: channel, threshold,
    h-maxima height). Options ``sigma`` (distance smoothing, pixels, default 2), ``min_size`` (pixels,
    default 50), ``compactness`` (default 0) and ``tune_metric`` (``"sbd"``, ``"ap"`` or ``"ap50"``)."""

    name = "watershed_instances"
    task = "instance"
    param_grid: ClassVar[dict[str, list[Any]]] = {
        "channel": ["exg", "grey"],
        "threshold": ["otsu", 0.4, 0.5, 0.6, 0.7],
        "h": [1.0, 2.0],
    }
    extra_options = ("sigma", "min_size", "compactness", "tune_metric")
    default_max_trials: ClassVar[int] = 20  # the whole grid: a candidate takes 0.1-0.3 s per image

    def __init__(self, num_classes: int = 2, **options: Any) -> None:
        metric = options.get("tune_metric", "sbd")
        if metric not in TUNE_METRICS:
            raise UserError(f"{self.name}: tune_metric must be one of {TUNE_METRICS}, got {metric!r}")
        for key in ("sigma", "min_size", "compactness"):
            if key in options and (not isinstance(options[key], (int, float)) or options[key] < 0):
                raise UserError(f"{self.name}: option {key} must be a number >= 0, got {options[key]!r}")
        super().__init__(num_classes, **options)

    # -- the method ---------------------------------------------------------------------------
    def instance_map(self, image: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        """Pre-processed ``(H, W, C)`` uint8 image -> ``(H, W)`` int64 instance ids (0 = background)."""
        min_size = int(self.options.get("min_size", 50))
        fg = object_foreground(
            object_channel(image, params["channel"]), params["threshold"], min_size=min_size
        )
        steps = self.options.get("postprocess")
        if steps:
            fg = postprocess(fg.astype(np.int64), steps, foreground=1, background=0) == 1
        return distance_watershed(
            fg,
            sigma=float(self.options.get("sigma", 2.0)),
            h=float(params["h"]),
            min_size=min_size,
            compactness=float(self.options.get("compactness", 0.0)),
        )

    def _instances(self, image: np.ndarray, params: dict[str, Any]) -> Instances:
        ids = self.instance_map(image, params)
        inst = Instances.from_label_map(ids)
        return Instances(inst.masks, inst.labels, instance_scores(ids), inst.boxes)

    def segment_labels(self, image, params, model):
        """The semantic view (object class 1 where any instance is), for code that wants a label map."""
        return (self.instance_map(image, params) > 0).astype(np.int64)

    def predict(self, image: np.ndarray) -> Instances:
        """``(H, W, C)`` (or ``(H, W)``) uint8 image -> :class:`~segscope.types.Instances` (class 1,
        scores from :func:`instance_scores`)."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(
                f"{self.name}: expected an (H, W[, C]) uint8 image, got {image.dtype} {image.shape}"
            )
        image = preprocess(image if image.ndim == 3 else image[..., None], self.options.get("preprocess"))
        return self._instances(image, self.params)

    # -- tuning -------------------------------------------------------------------------------
    def fit(
        self,
        train: SegmentationDataset,
        val: SegmentationDataset | None = None,
        *,
        time_budget_s: float | None = None,
        out_dir: str | Path | None = None,
        progress: bool = True,
    ) -> WatershedInstances:
        """Tune the parameters not fixed by options on ``train``'s instances (``val`` is not used):
        the candidate with the best ``tune_metric`` on ``tune_images`` evenly spaced training images."""
        from segscope.metrics.instance_evaluator import InstanceEvaluator

        if len(train) == 0:
            raise UserError(f"{self.name}: the training set is empty")
        if getattr(train, "task", "semantic") != "instance":
            raise UserError(
                f"{self.name} is tuned on instance labels: open an instance dataset "
                "(images/ + instances/ instance-id PNGs)"
            )
        budget = time_budget_s if time_budget_s is not None else self.options.get("time_budget_s")
        deadline = time.perf_counter() + (budget if budget else float("inf"))
        tune_idx = evenly_spaced(len(train), self.options.get("tune_images", self.default_tune_images))
        steps = self.options.get("preprocess")
        samples = []
        metric = self.options.get("tune_metric", "sbd")
        for i in tune_idx:
            image = train.load_image(i)
            target = train.load_instances(i, image_shape=image.shape)
            samples.append((preprocess(image, steps), target.to_label_map() if metric == "sbd" else target))
        key = f"train_{metric}"
        best, best_score = self.params, -1.0
        self.history = []
        for params in tqdm(self.candidates(), desc=f"tune {self.name}", disable=not progress, leave=False):
            if metric == "sbd":  # straight from the instance maps: no masks, no COCO
                score = float(
                    np.mean([symmetric_best_dice(t, self.instance_map(im, params)) for im, t in samples])
                )
            else:
                evaluator = InstanceEvaluator()
                for image, target in samples:
                    evaluator.add(self._instances(image, params), target)
                score = evaluator.mask_ap()["mask_ap" if metric == "ap" else "mask_ap50"]
                score = -1.0 if np.isnan(score) else float(score)
            self.history.append({"trial": len(self.history) + 1, **params, key: score})
            if score > best_score:
                best, best_score = params, score
            if time.perf_counter() > deadline:
                break
        self.params, self.model = dict(best), None
        if out_dir is not None:
            self.save(out_dir)
        return self


__all__ = [
    "CHANNELS",
    "WatershedInstances",
    "distance_watershed",
    "object_channel",
    "object_foreground",
    "instance_scores",
]
