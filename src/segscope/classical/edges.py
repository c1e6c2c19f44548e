"""Soft boundary maps from classical methods, for the BSDS boundary benchmark
(:mod:`segscope.metrics.boundary_benchmark`): each returns a ``(H, W)`` float map in [0, 1] whose high
values are likely boundaries, so the benchmark can sweep a threshold over it.

* ``sobel``: Sobel gradient magnitude of the Gaussian-smoothed grey image;
* ``canny``: the same magnitude kept only on Canny's non-maximum-suppressed ridges (Canny, TPAMI 1986);
* ``slic`` / ``watershed``: region boundaries of superpixels at several scales, as the fraction of scales
  in which a pixel lies on a boundary (a cheap stand-in for a segmentation hierarchy; SLIC: Achanta et al.,
  TPAMI 2012; marker watershed on the gradient: Meyer 1994).

Colour images are converted to grey for the gradients (ITU-R 601 luma); SLIC works in Lab colour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from skimage import feature, filters, segmentation
from skimage.color import rgb2gray

SCALES = (25, 50, 100, 200, 400)  # superpixels per image, coarse to fine


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return rgb2gray(image)
    return image.reshape(image.shape[:2]).astype(np.float64) / (255.0 if image.dtype == np.uint8 else 1.0)


def _unit(a: np.ndarray) -> np.ndarray:
    top = float(a.max())
    return a / top if top > 0 else a


def sobel_edges(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    return _unit(filters.sobel(filters.gaussian(_grey(image), sigma)))


def canny_edges(image: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    grey = _grey(image)
    ridges = feature.canny(grey, sigma=sigma, low_threshold=0.0, high_threshold=0.0)
    return _unit(filters.sobel(filters.gaussian(grey, sigma)) * ridges)


def _multiscale(image: np.ndarray, segment: Callable[[int], np.ndarray], scales: Sequence[int]) -> np.ndarray:
    votes = np.zeros(np.asarray(image).shape[:2])
    for n in scales:
        votes += segmentation.find_boundaries(segment(n), mode="thick")
    return votes / len(scales)


def slic_boundaries(image: np.ndarray, scales: Sequence[int] = SCALES) -> np.ndarray:
    rgb = np.asarray(image)
    rgb = (
        rgb if rgb.ndim == 3 and rgb.shape[2] == 3 else np.repeat(rgb.reshape(rgb.shape[:2])[..., None], 3, 2)
    )
    return _multiscale(
        rgb, lambda n: segmentation.slic(rgb, n_segments=n, compactness=10, start_label=1), scales
    )


def watershed_boundaries(image: np.ndarray, scales: Sequence[int] = SCALES) -> np.ndarray:
    gradient = filters.sobel(filters.gaussian(_grey(image), 1.0))
    return _multiscale(image, lambda n: segmentation.watershed(gradient, markers=n), scales)


EDGE_METHODS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sobel": sobel_edges,
    "canny": canny_edges,
    "slic": slic_boundaries,
    "watershed": watershed_boundaries,
}
