"""Thresholding: Otsu (global) and local (adaptive) thresholds, from scikit-image.

References
----------
.. [1] N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. SMC 9(1), 1979.
.. [2] scikit-image ``filters.threshold_otsu`` and ``filters.threshold_local``.
"""

from __future__ import annotations

import numpy as np
from skimage import filters

from segscope.classical.segmenter import ClassicalSegmenter
from segscope.registry import register


def otsu_foreground(grey: np.ndarray, *, smoothing: float = 0.0) -> np.ndarray:
    """Pixels brighter than Otsu's threshold, after optional Gaussian smoothing (sigma in pixels)."""
    if smoothing > 0:
        grey = filters.gaussian(grey, sigma=smoothing)
    return grey > filters.threshold_otsu(grey)


def adaptive_foreground(grey: np.ndarray, *, block_size: int = 51, offset: float = 0.0) -> np.ndarray:
    """Pixels brighter than the Gaussian-weighted mean of their ``block_size`` neighbourhood, minus
    ``offset``."""
    if block_size % 2 == 0 or block_size < 3:
        raise ValueError(f"block_size must be an odd integer >= 3, got {block_size}")
    return grey > filters.threshold_local(grey, block_size=block_size, offset=offset)


@register("otsu", family="classical", task="binary", paper="Otsu, IEEE Trans. SMC 1979")
class Otsu(ClassicalSegmenter):
    """Otsu's global threshold (tuned: smoothing, polarity)."""

    name = "otsu"
    param_grid = {"smoothing": [0.0, 1.0, 2.0]}
    segment = staticmethod(otsu_foreground)


@register("adaptive_threshold", family="classical", task="binary", paper="scikit-image threshold_local")
class AdaptiveThreshold(ClassicalSegmenter):
    """Local (adaptive) threshold (tuned: block size, offset, polarity)."""

    name = "adaptive_threshold"
    param_grid = {"block_size": [25, 51, 101], "offset": [-0.02, 0.0, 0.02]}
    segment = staticmethod(adaptive_foreground)
