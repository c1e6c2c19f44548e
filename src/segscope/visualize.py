"""Colour label maps and blend them over images (numpy only; matplotlib figures live in report/)."""

from __future__ import annotations

import numpy as np


def colorize(labels: np.ndarray, palette: np.ndarray, *, ignore_index: int | None = None) -> np.ndarray:
    """``(H, W)`` class indices -> ``(H, W, 3)`` uint8 colours; out-of-range and ignored pixels are black."""
    palette = np.asarray(palette, np.uint8)
    valid = (labels >= 0) & (labels < len(palette))
    if ignore_index is not None:
        valid &= labels != ignore_index
    out = np.zeros(labels.shape + (3,), np.uint8)
    out[valid] = palette[labels[valid]]
    return out


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    palette: np.ndarray,
    *,
    alpha: float = 0.5,
    ignore_index: int | None = None,
) -> np.ndarray:
    """Blend the colourised ``labels`` over ``image`` ((H, W), (H, W, 1) or (H, W, 3) uint8).

    ``alpha`` weighs the class colour (0: the image only, 1: the colours only); ignored and
    out-of-range labels are drawn black. Returns ``(H, W, 3)`` uint8.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if labels.shape != image.shape[:2]:
        raise ValueError(f"labels {labels.shape} and image {image.shape[:2]} differ in size")
    if image.ndim == 2:
        image = image[..., None]
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]
    colours = colorize(labels, palette, ignore_index=ignore_index)
    blended = (1 - alpha) * rgb.astype(np.float32) + alpha * colours.astype(np.float32)
    return blended.round().clip(0, 255).astype(np.uint8)


def write_png(path, array: np.ndarray) -> None:
    """Write a uint8 array as PNG atomically (grey for 2-D, RGB for 3-channel)."""
    from PIL import Image

    from segscope.io import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(
            np.ascontiguousarray(array.squeeze() if array.ndim == 3 and array.shape[2] == 1 else array)
        ).save(tmp, format="PNG")


def display_slice(array: np.ndarray, spatial_ndim: int | None = None) -> np.ndarray:
    """The 2-D view a picture shows: ``array`` itself for an image, the middle z-slice of a volume
    (``(D, H, W)`` labels, or a ``(D, H, W, C)`` image when ``spatial_ndim=3``)."""
    nd = array.ndim if spatial_ndim is None else spatial_ndim
    return array[array.shape[0] // 2] if nd == 3 else array
