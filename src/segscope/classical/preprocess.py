"""Pre-processing before any classical method: illumination correction and denoising.

Every function maps an ``(H, W)`` or ``(H, W, C)`` uint8 image to a uint8 image of the same shape, so
steps chain freely (``preprocess(image, ["clahe", "nl_means"])``) and any method can follow them.
The algorithms are scikit-image's and OpenCV's; this module only gives them one calling convention.

References
----------
.. [1] K. Zuiderveld, "Contrast limited adaptive histogram equalization", Graphics Gems IV, 1994.
.. [2] S. R. Sternberg, "Biomedical image processing", IEEE Computer 16(1), 1983 (rolling ball).
.. [3] A. Buades, B. Coll and J.-M. Morel, "A non-local algorithm for image denoising", CVPR 2005.
.. [4] C. Tomasi and R. Manduchi, "Bilateral filtering for gray and color images", ICCV 1998.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
from scipy import ndimage
from skimage import exposure, restoration


def to_grey(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` uint8 -> ``(H, W)`` float64 in [0, 1] (luminance for colour)."""
    if image.ndim == 3 and image.shape[2] >= 3:
        from skimage.color import rgb2gray

        return rgb2gray(image[..., :3])
    grey = image[..., 0] if image.ndim == 3 else image
    return grey.astype(np.float64) / 255.0


def _check_uint8(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) uint8 image, got {image.dtype} {image.shape}")


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def clahe(image: np.ndarray, *, clip_limit: float = 0.01, kernel_size: int | None = None) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (scikit-image ``equalize_adapthist``) [1]_.

    ``kernel_size`` is the tile size in pixels (default: 1/8 of the image); colour images are equalised
    on their lightness, as scikit-image does.
    """
    _check_uint8(image)
    if clip_limit <= 0:
        raise ValueError(f"clip_limit must be > 0, got {clip_limit}")
    squeeze = image.ndim == 3 and image.shape[2] == 1
    x = image[..., 0] if squeeze else image
    out = _to_uint8(exposure.equalize_adapthist(x, kernel_size=kernel_size, clip_limit=clip_limit))
    return out[..., None] if squeeze else out


def subtract_background(
    image: np.ndarray, *, radius: float = 30.0, method: str = "rolling_ball"
) -> np.ndarray:
    """Flatten uneven illumination: subtract a smooth background estimate, then rescale to [0, 255].

    ``method="rolling_ball"`` uses scikit-image ``restoration.rolling_ball`` [2]_ (bright objects on a
    dark background; exact but slow for large radii); ``"gaussian"`` subtracts a Gaussian blur of
    standard deviation ``radius`` (fast). Colour channels are corrected independently.
    """
    _check_uint8(image)
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    if method not in ("rolling_ball", "gaussian"):
        raise ValueError(f"method must be 'rolling_ball' or 'gaussian', got {method!r}")
    planes = image[..., None] if image.ndim == 2 else image
    out = np.empty(planes.shape, np.uint8)
    for c in range(planes.shape[2]):
        x = planes[..., c].astype(np.float64)
        if method == "rolling_ball":
            flat = x - restoration.rolling_ball(x, radius=radius)
        else:
            flat = x - ndimage.gaussian_filter(x, radius)
        lo, hi = flat.min(), flat.max()
        out[..., c] = _to_uint8((flat - lo) / (hi - lo)) if hi > lo else 0
    return out[..., 0] if image.ndim == 2 else out


def denoise_nl_means(
    image: np.ndarray, *, h: float = 10.0, patch_size: int = 7, search_size: int = 21
) -> np.ndarray:
    """Non-local means denoising (OpenCV ``fastNlMeansDenoising[Colored]``) [3]_; ``h`` is the filter
    strength in grey levels."""
    _check_uint8(image)
    if h <= 0 or patch_size < 1 or search_size < patch_size:
        raise ValueError(
            f"need h > 0 and search_size >= patch_size >= 1, got {h}, {patch_size}, {search_size}"
        )
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.fastNlMeansDenoisingColored(image, None, h, h, patch_size, search_size)
    grey = np.ascontiguousarray(image[..., 0] if image.ndim == 3 else image)
    out = cv2.fastNlMeansDenoising(grey, None, h, patch_size, search_size)
    return out.reshape(image.shape)


def denoise_bilateral(
    image: np.ndarray, *, diameter: int = 9, sigma_color: float = 50.0, sigma_space: float = 5.0
) -> np.ndarray:
    """Edge-preserving bilateral filter (OpenCV ``bilateralFilter``) [4]_; sigmas in grey levels and
    pixels."""
    _check_uint8(image)
    if diameter < 1 or sigma_color <= 0 or sigma_space <= 0:
        raise ValueError("bilateral filter needs diameter >= 1 and positive sigmas")
    if image.ndim == 3 and image.shape[2] not in (1, 3):
        raise ValueError(f"bilateral filter takes 1 or 3 channels, got {image.shape[2]}")
    x = np.ascontiguousarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    return cv2.bilateralFilter(x, diameter, sigma_color, sigma_space).reshape(image.shape)


PREPROCESSORS: dict[str, Callable[..., np.ndarray]] = {
    "clahe": clahe,
    "subtract_background": subtract_background,
    "nl_means": denoise_nl_means,
    "bilateral": denoise_bilateral,
}


def parse_steps(steps: Sequence[Any] | None, table: Mapping[str, Callable[..., Any]], what: str) -> list:
    """Normalise a step list: each item is ``"name"`` or ``{"name": {option: value}}``.

    Returns ``[(function, kwargs), ...]``; raises ``ValueError`` naming the first unknown step.
    """
    if steps is None:
        return []
    if isinstance(steps, (str, Mapping)):
        steps = [steps]
    out = []
    for step in steps:
        if isinstance(step, str):
            name, kwargs = step, {}
        elif isinstance(step, Mapping) and len(step) == 1:
            name, kwargs = next(iter(step.items()))
            kwargs = dict(kwargs or {})
        else:
            raise ValueError(f"{what} step {step!r}: expected a name or {{name: {{option: value}}}}")
        if name not in table:
            raise ValueError(f"unknown {what} step {name!r} (known: {', '.join(sorted(table))})")
        out.append((table[name], kwargs))
    return out


def preprocess(image: np.ndarray, steps: Sequence[Any] | None) -> np.ndarray:
    """Apply ``steps`` in order (see :func:`parse_steps`) to a uint8 image; ``None``/``[]`` is identity.

    Step names: ``clahe``, ``subtract_background``, ``nl_means``, ``bilateral``.
    """
    for fn, kwargs in parse_steps(steps, PREPROCESSORS, "preprocess"):
        image = fn(image, **kwargs)
    return image
