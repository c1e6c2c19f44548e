"""Thresholding: Otsu (global), multi-Otsu and local (adaptive) thresholds, from scikit-image.

References
----------
.. [1] N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. SMC 9(1), 1979.
.. [2] P.-S. Liao, T.-S. Chen and P.-C. Chung, "A fast algorithm for multilevel thresholding",
   J. Inf. Sci. Eng. 17(5), 2001 (multi-Otsu).
.. [3] scikit-image ``filters.threshold_otsu``, ``threshold_multiotsu`` and ``threshold_local``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage import filters

from segscope.classical.preprocess import to_grey
from segscope.classical.segmenter import BinarySegmenter, SemanticSegmenter
from segscope.registry import register


def _smooth(grey: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    return filters.gaussian(grey, sigma=sigma) if sigma > 0 else grey


def otsu_mask(grey: np.ndarray, *, sigma: float = 0.0) -> np.ndarray:
    """Pixels brighter than Otsu's threshold [1]_ after optional Gaussian smoothing.

    Parameters
    ----------
    grey : (H, W) float array
    sigma : float
        Gaussian standard deviation in pixels (0: none).

    Returns
    -------
    (H, W) bool array
    """
    grey = _smooth(grey, sigma)
    return grey > filters.threshold_otsu(grey)


def multiotsu_regions(grey: np.ndarray, *, classes: int = 3, sigma: float = 0.0) -> np.ndarray:
    """Intensity bins ``0 .. classes-1`` (darkest to brightest) from the multi-Otsu thresholds [2]_.

    Returns
    -------
    (H, W) int64 array
    """
    if not 2 <= classes <= 5:
        raise ValueError(f"classes must be between 2 and 5, got {classes}")
    grey = _smooth(grey, sigma)
    return np.digitize(grey, filters.threshold_multiotsu(grey, classes=classes)).astype(np.int64)


def adaptive_mask(
    grey: np.ndarray, *, block_size: int = 51, offset: float = 0.0, method: str = "gaussian"
) -> np.ndarray:
    """Pixels brighter than the local mean of their ``block_size`` neighbourhood minus ``offset`` [3]_.

    ``method`` is scikit-image's: ``"gaussian"``, ``"mean"`` or ``"median"``.
    """
    if block_size % 2 == 0 or block_size < 3:
        raise ValueError(f"block_size must be an odd integer >= 3, got {block_size}")
    if method not in ("gaussian", "mean", "median"):
        raise ValueError(f"method must be 'gaussian', 'mean' or 'median', got {method!r}")
    return grey > filters.threshold_local(grey, block_size=block_size, offset=offset, method=method)


@register("otsu", paper="Otsu, IEEE Trans. SMC 1979")
class Otsu(BinarySegmenter):
    """Otsu's global threshold (tuned: smoothing, polarity)."""

    name = "otsu"
    param_grid = {"sigma": [0.0, 1.0, 2.0, 4.0]}

    def segment_mask(self, image, params, model):
        return otsu_mask(to_grey(image), **params)


@register("adaptive_threshold", paper="scikit-image threshold_local")
class AdaptiveThreshold(BinarySegmenter):
    """Local (adaptive) threshold (tuned: block size, offset, polarity)."""

    name = "adaptive_threshold"
    param_grid = {"block_size": [51, 25, 101], "offset": [0.0, -0.02, 0.02], "method": ["gaussian", "mean"]}

    def segment_mask(self, image, params, model):
        return adaptive_mask(to_grey(image), **params)


@register("multiotsu", paper="Liao, Chen & Chung, JISE 2001")
class MultiOtsu(SemanticSegmenter):
    """Multi-Otsu intensity bins, each mapped to the class most of its training pixels have.

    Before fitting, bin ``i`` of ``n`` maps to class ``i * num_classes // n`` (dark to bright).
    Tuned: number of bins, smoothing.
    """

    name = "multiotsu"
    param_grid = {"classes": [3, 2, 4], "sigma": [1.0, 0.0, 2.0]}
    model_keys = ("classes", "sigma")
    learns = True

    def learn(self, train, indices, params):
        counts = np.zeros((params["classes"], self.num_classes), np.int64)
        for i in indices:
            image, mask = self.training_pair(train, i)
            bins = multiotsu_regions(to_grey(image), **params)
            valid = (mask >= 0) & (mask < self.num_classes)
            flat = bins[valid] * self.num_classes + mask[valid]
            counts += np.bincount(flat, minlength=counts.size).reshape(counts.shape)
        mapping = [
            int(np.argmax(c)) if c.sum() else self.untrained_class(b, params) for b, c in enumerate(counts)
        ]
        return {"bin_to_class": mapping}

    def untrained_class(self, b: int, params: dict[str, Any]) -> int:
        return b * self.num_classes // params["classes"]

    def segment_labels(self, image, params, model):
        bins = multiotsu_regions(to_grey(image), **params)
        if model is None:
            mapping = [self.untrained_class(b, params) for b in range(params["classes"])]
        else:
            mapping = model["bin_to_class"]
        return np.asarray(mapping, np.int64)[bins]
