"""Morphological post-processing stages that any method can chain after its segmentation.

Binary masks go through scikit-image's operators directly. Multi-class label maps are cleaned class by
class: ``opening``, ``white_tophat`` (keeps only the thin parts) and ``remove_small_objects`` shrink
each class, and the pixels no class keeps take the label of the nearest kept pixel (SciPy's distance
transform); ``closing`` and ``remove_small_holes`` are their duals and apply to binary masks only.

References
----------
.. [1] J. Serra, "Image Analysis and Mathematical Morphology", Academic Press, 1982.
.. [2] scikit-image ``morphology`` (``opening``, ``closing``, ``remove_small_objects``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage
from skimage import morphology

from segscope.classical.preprocess import parse_steps


def _disk(radius: int) -> np.ndarray:
    if int(radius) < 1:
        raise ValueError(f"radius must be an integer >= 1, got {radius}")
    return morphology.disk(int(radius))


def opening(mask: np.ndarray, *, radius: int = 1) -> np.ndarray:
    """Opening of a binary mask with a disk: removes specks and thin protrusions narrower than the disk."""
    return morphology.opening(mask.astype(bool), _disk(radius))


def closing(mask: np.ndarray, *, radius: int = 1) -> np.ndarray:
    """Closing of a binary mask with a disk: fills gaps and notches narrower than the disk."""
    return morphology.closing(mask.astype(bool), _disk(radius))


def white_tophat(mask: np.ndarray, *, radius: int = 3) -> np.ndarray:
    """Mask minus its opening: keeps only the structures thinner than the disk (e.g. membranes)."""
    mask = mask.astype(bool)
    return mask & ~opening(mask, radius=radius)


def remove_small_objects(mask: np.ndarray, *, max_size: int = 64, connectivity: int = 1) -> np.ndarray:
    """Drop connected components of at most ``max_size`` pixels (scikit-image)."""
    if max_size < 0:
        raise ValueError(f"max_size must be >= 0, got {max_size}")
    return morphology.remove_small_objects(
        mask.astype(bool), max_size=int(max_size), connectivity=connectivity
    )


def remove_small_holes(mask: np.ndarray, *, max_size: int = 64, connectivity: int = 1) -> np.ndarray:
    """Fill holes (background components enclosed by foreground) of at most ``max_size`` pixels."""
    if max_size < 0:
        raise ValueError(f"max_size must be >= 0, got {max_size}")
    return morphology.remove_small_holes(mask.astype(bool), max_size=int(max_size), connectivity=connectivity)


POSTPROCESSORS = {
    "opening": opening,
    "closing": closing,
    "white_tophat": white_tophat,
    "remove_small_objects": remove_small_objects,
    "remove_small_holes": remove_small_holes,
}
_SHRINKING = {opening, white_tophat, remove_small_objects}


def fill_from_nearest(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Give every pixel outside ``keep`` the label of its nearest pixel inside ``keep``."""
    if keep.all() or not keep.any():
        return labels.copy()
    _, (rows, cols) = ndimage.distance_transform_edt(~keep, return_indices=True)
    return labels[rows, cols]


def postprocess(
    labels: np.ndarray,
    steps: Sequence[Any] | None,
    *,
    foreground: int | None = None,
    background: int | None = None,
) -> np.ndarray:
    """Apply morphological ``steps`` in order to a label map.

    Parameters
    ----------
    labels : (H, W) int array
        A binary (``foreground`` given) or multi-class label map.
    steps : list
        Step names or ``{name: {option: value}}``: ``opening``, ``closing``, ``white_tophat``,
        ``remove_small_objects``, ``remove_small_holes``.
    foreground : int, optional
        For a binary map, the foreground class: the stages act on ``labels == foreground`` and every
        other pixel becomes ``background``. ``None``: treat ``labels`` as multi-class.
    background : int, optional
        The binary map's other class (default: the other value present, else 0, or 1 if
        ``foreground`` is 0).
    """
    parsed = parse_steps(steps, POSTPROCESSORS, "postprocess")
    if not parsed:
        return labels
    labels = np.asarray(labels)
    if foreground is not None:
        if background is None:
            others = np.unique(labels[labels != foreground])
            background = int(others[0]) if others.size else (0 if foreground != 0 else 1)
        mask = labels == foreground
        for fn, kwargs in parsed:
            mask = fn(mask, **kwargs)
        return np.where(mask, foreground, background).astype(labels.dtype)
    for fn, kwargs in parsed:
        if fn not in _SHRINKING:
            raise ValueError(f"postprocess step {fn.__name__!r} applies to binary masks only")
        keep = np.zeros(labels.shape, bool)
        for k in np.unique(labels):
            keep |= fn(labels == k, **kwargs)
        labels = fill_from_nearest(labels, keep)
    return labels
