"""Boundary F-score: how well the class contours of a prediction line up with the true ones."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from segscope.metrics.rand import _to_numpy


def class_boundaries(labels: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Inner class contours of a label map: pixels with a 4-neighbour (2N-neighbour in N-D) of another
    label, inside the image.

    ``valid`` (bool, same shape) restricts the map first: invalid pixels count as a label of their own,
    so a class touching an ignored region gets a contour there, and invalid pixels are never contours.
    Returns a bool array of ``labels``' shape.
    """
    labels = np.asarray(labels)
    if valid is not None:
        labels = np.where(valid, labels.astype(np.int64, copy=False), -1)
    edge = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        differs = labels[tuple(lo)] != labels[tuple(hi)]
        edge[tuple(lo)] |= differs
        edge[tuple(hi)] |= differs
    if valid is not None:
        edge &= valid
    return edge


def boundary_f1(
    pred: Any,
    target: Any,
    *,
    tolerance: float = 2,
    num_classes: int | None = None,
    ignore_index: int | None = None,
) -> float:
    """Boundary F1 score (BF) of one label map, averaged over the classes present.

    For each class ``c`` present in prediction or target, its contour in each map (the class's pixels
    that have a 4-neighbour of another label, :func:`class_boundaries`) is compared with the other:
    precision is the fraction of predicted contour pixels within ``tolerance`` (Euclidean distance,
    see Notes) of a true contour pixel of ``c``, recall the fraction of
    true contour pixels within ``tolerance`` of a predicted one, and ``BF_c = 2PR / (P + R)``. The score
    is the mean of ``BF_c``. A class whose contour is empty in one map only scores 0; a class with no
    contour in either map (it fills the image) scores 1 if present in both maps, else 0.

    Parameters
    ----------
    pred, target : integer label maps of equal shape (2-D, or N-D with N-D distances); numpy arrays or
        torch tensors.
    tolerance : matching distance in pixels. Csurka et al. tie it to the image size (a fraction of the
        diagonal); a fixed 2 px is the default here so that scores are comparable across methods on one
        dataset.
    num_classes : labels ``>= num_classes`` in ``pred`` raise ``ValueError``; ``None`` accepts any label.
    ignore_index : target value whose pixels are removed from both maps before the contours are
        taken (an ignored region then borders every class that touches it, in both maps alike).

    Returns
    -------
    The mean boundary F1 in ``[0, 1]``; ``nan`` when every pixel is ignored.

    Notes
    -----
    "Within ``tolerance``" is tested by dilating each contour with a disc (ball) of that radius
    (``cv2.dilate`` in 2-D, ``scipy.ndimage.binary_dilation`` in N-D), which equals thresholding its
    Euclidean distance transform (tested against ``scipy.ndimage.distance_transform_edt``) at a
    fraction of the cost; per class, only the bounding box of that class's contour pixels is processed.

    References
    ----------
    Csurka, Larlus & Perronnin, "What is a good evaluation measure for semantic segmentation?",
    BMVC 2013 (the per-image, per-class BF score); contour matching as in Martin, Fowlkes &
    Malik, TPAMI 2004, with a distance tolerance instead of bipartite matching.
    """
    pred, target = _to_numpy(pred), _to_numpy(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    valid = np.ones(target.shape, bool) if ignore_index is None else target != ignore_index
    if not valid.any():
        return float("nan")
    if num_classes is not None and pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"predicted labels lie outside [0, {num_classes})")
    pred_edge = class_boundaries(pred, valid)
    true_edge = class_boundaries(target, valid)
    pred_classes = _labels_present(pred if ignore_index is None else pred[valid])
    true_classes = _labels_present(target if ignore_index is None else target[valid])
    pred_points = _points_by_class(pred, pred_edge)
    true_points = _points_by_class(target, true_edge)
    footprint = _ball(tolerance, pred.ndim)
    scores = []
    for c in sorted(pred_classes | true_classes):
        p, t = pred_points.get(c), true_points.get(c)
        if p is None and t is None:
            scores.append(1.0 if c in pred_classes and c in true_classes else 0.0)
        elif p is None or t is None:
            scores.append(0.0)
        else:
            precision, recall = _matched_fractions(p, t, footprint)
            scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(scores))


def _labels_present(labels: np.ndarray) -> set[int]:
    """The distinct labels (``bincount`` for small non-negative labels, 10x faster than ``np.unique``)."""
    if labels.size and np.issubdtype(labels.dtype, np.integer):
        lo, hi = int(labels.min()), int(labels.max())
        if lo >= 0 and hi < 1 << 16:
            return set(np.flatnonzero(np.bincount(labels.reshape(-1), minlength=hi + 1)).tolist())
    return set(np.unique(labels).tolist())


def _points_by_class(labels: np.ndarray, edge: np.ndarray) -> dict[int, np.ndarray]:
    """Coordinates ``(n, ndim)`` of the contour pixels of each class."""
    coords = np.argwhere(edge)
    classes = labels[edge]
    order = np.argsort(classes, kind="stable")
    coords, classes = coords[order], classes[order]
    values, starts = np.unique(classes, return_index=True)
    return {int(v): part for v, part in zip(values, np.split(coords, starts[1:]))}


def _ball(tolerance: float, ndim: int) -> np.ndarray:
    """Boolean footprint of the offsets within Euclidean distance ``tolerance``."""
    r = int(np.floor(tolerance))
    grid = np.indices((2 * r + 1,) * ndim) - r
    return (grid**2).sum(0) <= tolerance**2


def _dilate(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    if mask.ndim == 2:  # OpenCV: ~300x faster than an exact distance transform on 512x512
        out = cv2.dilate(mask.view(np.uint8), footprint.view(np.uint8))
        return out.view(bool)
    return ndimage.binary_dilation(mask, structure=footprint)


def _matched_fractions(p: np.ndarray, t: np.ndarray, footprint: np.ndarray) -> tuple[float, float]:
    """Fraction of points ``p`` within the footprint of a point of ``t``, and vice versa."""
    lo = np.minimum(p.min(0), t.min(0))
    shape = tuple(np.maximum(p.max(0), t.max(0)) - lo + 1)
    p, t = tuple((p - lo).T), tuple((t - lo).T)
    p_mask = np.zeros(shape, bool)
    t_mask = np.zeros(shape, bool)
    p_mask[p] = True
    t_mask[t] = True
    precision = float(_dilate(t_mask, footprint)[p].mean())
    recall = float(_dilate(p_mask, footprint)[t].mean())
    return precision, recall
