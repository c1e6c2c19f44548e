"""Pixel error and the adapted Rand error of the ISBI 2012 challenge."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def pixel_error(pred: np.ndarray, target: np.ndarray, ignore_index: int | None = None) -> float:
    """Fraction of (non-ignored) pixels whose predicted class differs from the target."""
    pred, target = np.asarray(pred), np.asarray(target)
    keep = np.ones(target.shape, bool) if ignore_index is None else target != ignore_index
    n = int(keep.sum())
    return float((pred[keep] != target[keep]).sum() / n) if n else float("nan")


def adapted_rand_error(
    image_true: np.ndarray, image_test: np.ndarray, *, ignore_labels: tuple[int, ...] = (0,)
) -> tuple[float, float, float]:
    """Adapted Rand error ``1 - F`` of the Rand precision/recall (Arganda-Carreras et al. 2015).

    Returns ``(error, precision, recall)``, equal to ``skimage.metrics.adapted_rand_error`` (tested);
    computed here from one sparse contingency table, which is several times faster than scikit-image on
    512x512 slices. Pixels whose *true* label is in ``ignore_labels`` are left out.
    """
    t = np.asarray(image_true).ravel()
    p = np.asarray(image_test).ravel()
    if t.shape != p.shape:
        raise ValueError(
            f"label maps differ in size: {np.asarray(image_true).shape} vs {np.asarray(image_test).shape}"
        )
    keep = ~np.isin(t, ignore_labels) if ignore_labels else np.ones(t.shape, bool)
    t, p = t[keep], p[keep]
    n = t.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    c = sparse.coo_matrix((np.ones(n), (ti, pi))).tocsr()
    c.sum_duplicates()
    sum_p_ij2 = float(c.multiply(c).sum()) - n
    a_i = np.asarray(c.sum(1)).ravel()
    b_i = np.asarray(c.sum(0)).ravel()
    sum_a2 = float((a_i * a_i).sum()) - n
    sum_b2 = float((b_i * b_i).sum()) - n
    # scikit-image's naming: precision against the true segments' pair counts, recall against the test's
    precision = sum_p_ij2 / sum_a2 if sum_a2 else float("nan")
    recall = sum_p_ij2 / sum_b2 if sum_b2 else float("nan")
    denom = sum_a2 + sum_b2
    f = 2 * sum_p_ij2 / denom if denom else 1.0
    return 1.0 - f, precision, recall


def foreground_rand_error(pred: np.ndarray, target: np.ndarray, foreground: int = 1) -> float:
    """ISBI-style Rand error of a boundary map: connected components (4-connected) of the foreground
    class in prediction and truth are the segments; truth background (membrane) pixels are ignored."""
    from skimage.measure import label

    true_seg = label(np.asarray(target) == foreground, connectivity=1)
    pred_seg = label(np.asarray(pred) == foreground, connectivity=1)
    return adapted_rand_error(true_seg, pred_seg, ignore_labels=(0,))[0]
