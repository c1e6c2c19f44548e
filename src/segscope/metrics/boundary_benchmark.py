"""The BSDS boundary benchmark: precision/recall of a boundary map against several human annotations at
once, summarised as ODS, OIS and AP (Arbeláez, Maire, Fowlkes & Malik, "Contour Detection and Hierarchical
Image Segmentation", TPAMI 2011, section 3; Martin, Fowlkes & Malik, TPAMI 2004 for the matching).

Per image and threshold ``t`` the soft map is cut at ``t`` and thinned to one pixel width
(``skimage.morphology.thin``, as the benchmark's ``bwmorph(..., 'thin', inf)``); then against every human
boundary map in turn, predicted and human boundary pixels are matched one to one within ``max_dist`` pixels
(``tolerance`` x the image diagonal, 0.0075 in the benchmark). Recall pools the matched human pixels over
all annotators (``cnt_r / sum_r``); a predicted pixel counts as correct when it matched in any annotator
(``cnt_p / sum_p``).

* **ODS**: counts summed over the images at each threshold, the best F over thresholds (one threshold for
  the whole dataset);
* **OIS**: each image at its own best threshold, counts summed, then F;
* **AP**: area under the dataset's precision-recall curve.

Departures from the benchmark's code, stated: the one-to-one matching is a maximum-cardinality bipartite
matching over the pixel pairs within ``max_dist`` (a unit-capacity maximum flow, Dinic's algorithm in
``scipy.sparse.csgraph.maximum_flow``; SciPy's ``maximum_bipartite_matching`` took minutes on some
human-vs-human pairs), where the benchmark's ``correspondPixels`` solves a min-cost assignment with
outlier nodes; both maximise the number of matched pixels, only which pixels pair up may differ. ODS
is the best F at the sampled thresholds (the benchmark also interpolates between neighbouring
thresholds), and AP integrates the sampled curve by the trapezoid rule over recall (the benchmark
interpolates precision on a recall grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import maximum_flow
from skimage.morphology import thin

TOLERANCE = 0.0075  # the benchmark's maxDist, as a fraction of the image diagonal


def max_distance(shape: Sequence[int], tolerance: float = TOLERANCE) -> float:
    """The matching radius in pixels for an image of ``shape``: ``tolerance`` x its diagonal."""
    return tolerance * float(np.hypot(shape[0], shape[1]))


def match_boundaries(pred: np.ndarray, truth: np.ndarray, max_dist: float) -> tuple[np.ndarray, int]:
    """Match boundary pixels one to one within ``max_dist`` (Euclidean, pixels).

    Returns the bool map of predicted pixels that found a partner and the number of matched ``truth``
    pixels (equal to that map's sum: the matching is one to one)."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"boundary maps differ in shape: {pred.shape} vs {truth.shape}")
    matched = np.zeros(pred.shape, bool)
    py, px = np.nonzero(pred)
    if len(py) == 0 or not truth.any():
        return matched, 0
    truth_index = np.full(truth.shape, -1, np.int64)
    truth_index[truth] = np.arange(int(truth.sum()))
    r = int(np.floor(max_dist))
    rows, cols = [], []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx > max_dist * max_dist:
                continue
            ty, tx = py + dy, px + dx
            inside = (ty >= 0) & (ty < truth.shape[0]) & (tx >= 0) & (tx < truth.shape[1])
            idx = np.full(len(py), -1, np.int64)
            idx[inside] = truth_index[ty[inside], tx[inside]]
            hit = np.nonzero(idx >= 0)[0]
            rows.append(hit)
            cols.append(idx[hit])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    if len(rows) == 0:
        return matched, 0
    # maximum bipartite matching as a unit-capacity maximum flow: source -> predicted -> true -> sink
    n_pred, n_true = len(py), int(truth.sum())
    source, sink = n_pred + n_true, n_pred + n_true + 1
    tail = np.concatenate([np.full(n_pred, source), rows, n_pred + np.arange(n_true)])
    head = np.concatenate([np.arange(n_pred), n_pred + cols, np.full(n_true, sink)])
    size = n_pred + n_true + 2
    graph = sparse.csr_matrix((np.ones(len(tail), np.int32), (tail, head)), shape=(size, size))
    flow = maximum_flow(graph, source, sink, method="dinic").flow.tocoo()
    found = np.zeros(n_pred, bool)
    found[flow.row[(flow.data > 0) & (flow.row < n_pred)]] = True  # predicted pixels sending their unit
    matched[py[found], px[found]] = True
    return matched, int(found.sum())


def boundary_counts(
    soft: np.ndarray, truths: Sequence[np.ndarray], thresholds: np.ndarray, tolerance: float = TOLERANCE
) -> np.ndarray:
    """``(T, 4)`` counts ``cnt_r, sum_r, cnt_p, sum_p`` of one image at each threshold (pixels with
    ``soft >= t`` are boundary), against every annotation in ``truths`` (bool maps)."""
    soft = np.asarray(soft, np.float64)
    max_dist = max_distance(soft.shape, tolerance)
    truths = [np.asarray(t, bool) for t in truths]
    sum_r = sum(int(t.sum()) for t in truths)
    out = np.zeros((len(thresholds), 4), np.int64)
    for i, t in enumerate(thresholds):
        pred = thin(soft >= t)
        any_match = np.zeros(pred.shape, bool)
        cnt_r = 0
        for truth in truths:
            matched, n = match_boundaries(pred, truth, max_dist)
            any_match |= matched
            cnt_r += n
        out[i] = cnt_r, sum_r, int(any_match.sum()), int(pred.sum())
    return out


def _prf(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = np.asarray(counts, np.float64)
    recall = np.divide(
        counts[..., 0], counts[..., 1], out=np.zeros(counts.shape[:-1]), where=counts[..., 1] > 0
    )
    precision = np.divide(
        counts[..., 2], counts[..., 3], out=np.ones(counts.shape[:-1]), where=counts[..., 3] > 0
    )
    total = precision + recall
    f = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return precision, recall, f


def ods_ois_ap(per_image: Sequence[np.ndarray], thresholds: np.ndarray) -> dict[str, Any]:
    """ODS, OIS and AP from the per-image ``(T, 4)`` counts of :func:`boundary_counts`."""
    stack = np.stack([np.asarray(c) for c in per_image])  # (N, T, 4)
    precision, recall, f = _prf(stack.sum(axis=0))
    best = int(np.argmax(f))
    _, _, f_image = _prf(stack)  # (N, T)
    chosen = stack[np.arange(len(stack)), np.argmax(f_image, axis=1)]  # each image at its best threshold
    ois_p, ois_r, ois_f = _prf(chosen.sum(axis=0))
    order = np.argsort(recall)
    ap = float(np.trapezoid(precision[order], recall[order]))
    return {
        "ods_f": float(f[best]),
        "ods_precision": float(precision[best]),
        "ods_recall": float(recall[best]),
        "ods_threshold": float(thresholds[best]),
        "ois_f": float(ois_f),
        "ois_precision": float(ois_p),
        "ois_recall": float(ois_r),
        "ap": ap,
        "curve": {
            "threshold": thresholds.tolist(),
            "precision": precision.tolist(),
            "recall": recall.tolist(),
        },
    }


def human_counts(truths: Sequence[np.ndarray], tolerance: float = TOLERANCE) -> np.ndarray:
    """``(1, 4)`` counts of the annotators against each other: each annotation in turn is the prediction,
    the others the truth (leave one annotator out), summed. Its F is the **human ceiling** of the image."""
    total = np.zeros((1, 4), np.int64)
    for k, truth in enumerate(truths):
        others = [t for j, t in enumerate(truths) if j != k]
        if others:
            total += boundary_counts(np.asarray(truth, np.float64), others, np.array([0.5]), tolerance)
    return total
