"""Boundary F-score (Csurka, Larlus & Perronnin, "What is a good evaluation measure for semantic
segmentation?", BMVC 2013): precision/recall of boundary pixels matched within a pixel tolerance."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the inner contour)."""
    return mask & ~ndimage.binary_erosion(
        mask, structure=ndimage.generate_binary_structure(2, 1), border_value=1
    )


def boundary_f1(
    pred: np.ndarray,
    target: np.ndarray,
    *,
    tolerance: float = 2.0,
    num_classes: int | None = None,
    ignore_index: int | None = None,
) -> float:
    """Mean over classes present (in prediction or target) of the boundary F1 at ``tolerance`` pixels.

    A predicted boundary pixel is correct if a true boundary pixel of the same class lies within
    ``tolerance`` (Euclidean distance transform), and vice versa for recall. Ignored target pixels are
    removed from both maps first.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    valid = np.ones(target.shape, bool) if ignore_index is None else target != ignore_index
    k = (
        num_classes
        if num_classes is not None
        else int(max(pred.max(initial=0), target[valid].max(initial=0))) + 1
    )
    scores = []
    for c in range(k):
        pb = _boundary((pred == c) & valid)
        tb = _boundary((target == c) & valid)
        if not pb.any() and not tb.any():
            continue
        if not pb.any() or not tb.any():
            scores.append(0.0)
            continue
        dist_to_t = ndimage.distance_transform_edt(~tb)
        dist_to_p = ndimage.distance_transform_edt(~pb)
        precision = float((dist_to_t[pb] <= tolerance).mean())
        recall = float((dist_to_p[tb] <= tolerance).mean())
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(scores)) if scores else 1.0
