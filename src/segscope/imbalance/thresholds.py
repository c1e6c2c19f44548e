"""Decision thresholds and logit biases tuned on validation data, and prior correction.

A network trained on imbalanced pixels is calibrated to the training prior: the rare class's posterior
rarely wins the argmax. These functions move the decision, not the network:

* :func:`tune_binary_threshold` - the foreground threshold maximising F1 / Dice / IoU on validation;
* :func:`tune_class_bias` - per-class additive logit biases maximising validation mean IoU;
* :func:`prior_correction_bias` - the bias ``log(pi_target) - log(pi_train)`` that turns a posterior
  under the training prior into one under a target (balanced by default) prior [1]_ [2]_;
* :func:`apply_bias` - ``logits + bias`` along the class axis (numpy or torch).

References
----------
.. [1] M. Saerens, P. Latinne, C. Decaestecker, "Adjusting the outputs of a classifier to new a priori
   probabilities: a simple procedure", Neural Computation 14(1), 2002 (Eq. 2.4).
.. [2] A. K. Menon, S. Jayasumana, A. S. Rawat, H. Jain, A. Veit, S. Kumar, "Long-tail learning via
   logit adjustment", ICLR 2021 (post-hoc logit adjustment, Eq. 3 with tau).
.. [3] Z. C. Lipton, C. Elkan, B. Naryanaswamy, "Optimal thresholding of classifiers to maximize F1
   measure", ECML PKDD 2014 (the F1-optimal threshold is data dependent, not 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segscope.errors import UserError
from segscope.imbalance._arrays import class_axis, flatten_binary, flatten_scores, is_torch, to_numpy

METRICS = ("f1", "dice", "iou")


def _binary_score(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, metric: str) -> np.ndarray:
    tp, fp, fn = (np.asarray(a, np.float64) for a in (tp, fp, fn))
    num, den = (tp, tp + fp + fn) if metric == "iou" else (2 * tp, 2 * tp + fp + fn)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def tune_binary_threshold(
    prob_fg: Any,
    target: Any,
    *,
    metric: str = "f1",
    ignore_index: int | None = None,
    average: str = "pooled",
    bins: int = 256,
) -> tuple[float, float]:
    """The threshold ``t`` (predict foreground where ``prob_fg >= t``) maximising a validation score.

    Parameters
    ----------
    prob_fg : foreground probabilities (or any score, higher = foreground): one array, an ``(N, H, W)``
        stack or a list of per-image arrays (numpy or torch).
    target : matching labels, nonzero = foreground; ``ignore_index`` (and negative values) not counted.
    metric : ``"f1"`` / ``"dice"`` (the same measure, ``2TP / (2TP + FP + FN)``) or ``"iou"``
        (``TP / (TP + FP + FN)``).
    average : ``"pooled"`` counts TP/FP/FN over all pixels (then IoU = F1 / (2 - F1) is monotone in F1
        and all three metrics pick the same threshold) with an exact sweep over every distinct score;
        ``"image"`` maximises the mean per-image score (images with neither foreground nor prediction
        are left out) over ``bins`` quantiles of the scores.

    Returns
    -------
    ``(threshold, score)``; the threshold lies midway between the last included and the first excluded
    distinct score (exact sweep), so it is stable to float round-off.

    References
    ----------
    .. [1] Lipton, Elkan & Naryanaswamy, "Optimal thresholding of classifiers to maximize F1 measure",
       ECML PKDD 2014.
    """
    if metric not in METRICS:
        raise UserError(f"unknown threshold metric {metric!r}; choose from {', '.join(METRICS)}")
    if average not in ("pooled", "image"):
        raise UserError(f"unknown threshold averaging {average!r}; choose pooled or image")
    probs, targets = flatten_binary(prob_fg, target, ignore_index=ignore_index)
    p, y = np.concatenate(probs), np.concatenate(targets)
    if not y.any():
        raise UserError("cannot tune a threshold: the validation target has no foreground pixel")
    if average == "pooled":
        order = np.argsort(-p, kind="stable")
        ps, ys = p[order], y[order]
        tp, fp = np.cumsum(ys), np.cumsum(~ys)
        last = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])  # end of each run of equal scores
        scores = _binary_score(tp[last], fp[last], y.sum() - tp[last], metric)
        best = int(np.nanargmax(scores))
        i = last[best]
        thr = (ps[i] + ps[i + 1]) / 2 if i + 1 < len(ps) else ps[i]
        return float(thr), float(scores[best])
    grid = np.unique(np.quantile(p, np.linspace(0, 1, int(bins) + 1)))
    per_image = []
    for pi, yi in zip(probs, targets):
        pos, neg = np.sort(pi[yi]), np.sort(pi[~yi])
        tp = len(pos) - np.searchsorted(pos, grid, side="left")
        fp = len(neg) - np.searchsorted(neg, grid, side="left")
        per_image.append(_binary_score(tp, fp, len(pos) - tp, metric))
    stack = np.stack(per_image)
    counted = (~np.isnan(stack)).sum(axis=0)
    mean = np.where(counted > 0, np.nansum(stack, axis=0) / np.maximum(counted, 1), np.nan)
    best = int(np.nanargmax(mean))
    return float(grid[best]), float(mean[best])


def _mean_iou(pred: np.ndarray, target: np.ndarray, k: int) -> float:
    """Mean IoU over the classes present in prediction or target (``ConfusionMatrix.mean_iou``)."""
    cm = np.bincount(target * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm)
    den = cm.sum(0) + cm.sum(1) - tp
    return float((tp[den > 0] / den[den > 0]).mean())


def tune_class_bias(
    logits: Any,
    target: Any,
    *,
    ignore_index: int | None = None,
    grid: Sequence[float] | None = None,
    rounds: int = 2,
    init: Any = None,
    max_pixels: int = 200_000,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Per-class additive logit biases ``b`` maximising validation mean IoU of ``argmax(logits + b)``.

    Coordinate ascent: ``rounds`` sweeps over the classes; for class ``c`` every step ``b_c + d``,
    ``d`` in ``grid`` (default ``-3..3`` by 0.25), is scored with the other biases fixed and the best
    kept when it raises the mean IoU. One class's step only moves pixels between ``c`` and their best
    other class, so each step costs one ``bincount`` over the pixels. Work is bounded by
    ``rounds * K * (len(grid) + K)`` passes over at most ``max_pixels`` labelled pixels (a seeded
    uniform subsample).

    Parameters
    ----------
    logits : ``(K, H, W)``, ``(N, K, H, W)`` or a list of ``(K, H, W)`` scores (logits or log
        probabilities; numpy or torch).
    target : matching ``(H, W)`` / ``(N, H, W)`` labels; ``ignore_index`` not counted.
    init : starting biases (e.g. :func:`prior_correction_bias`); zeros by default.

    Returns
    -------
    ``(bias, mean_iou)``: ``(K,)`` float64 biases (shifted to mean 0; ``argmax`` does not see a common
    shift) and the mean IoU they reach on the (subsampled) validation pixels.
    """
    x, y = flatten_scores(logits, target, ignore_index=ignore_index)
    k = x.shape[1]
    if len(y) == 0:
        raise UserError("cannot tune class biases: the validation target has no labelled pixel")
    if y.max() >= k:
        raise UserError(f"target label {int(y.max())} is outside the {k} classes of the logits")
    if len(y) > max_pixels:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), int(max_pixels), replace=False))
        x, y = x[keep], y[keep]
    steps = np.unique(np.r_[np.arange(-3.0, 3.0001, 0.25) if grid is None else np.asarray(grid, float), 0])
    bias = np.zeros(k) if init is None else to_numpy(init, np.float64).reshape(k).copy()
    best = _mean_iou((x + bias).argmax(1), y, k)
    rows = np.arange(len(y))
    for _ in range(int(rounds)):
        for c in range(k):
            z = x + bias
            others = z.copy()
            others[:, c] = -np.inf
            other = others.argmax(1)
            margin = others[rows, other] - z[:, c]  # c wins where its extra bias d exceeds the margin
            scores = [_mean_iou(np.where(margin < d, c, other), y, k) for d in steps]
            j = int(np.argmax(scores))
            if scores[j] > best + 1e-12:
                bias[c] += steps[j]
                best = scores[j]
    bias -= bias.mean()
    return bias, _mean_iou((x + bias).argmax(1), y, k)


def prior_correction_bias(train_class_freq: Any, target_prior: Any = None, *, tau: float = 1.0) -> np.ndarray:
    """``tau * (log pi_target - log pi_train)``: the bias that re-targets a posterior to a new prior.

    Bayes' rule with the class-conditional densities unchanged gives
    ``p_target(c | x) ∝ p_train(c | x) pi_target(c) / pi_train(c)``, i.e. adding this bias to the logits
    (or log posteriors) [1]_. With the uniform target prior (the default) it is ``-tau log pi_train`` up
    to a constant: Menon et al.'s post-hoc logit adjustment [2]_, which maximises balanced accuracy.

    Parameters
    ----------
    train_class_freq : ``(K,)`` training class frequencies or pixel counts (normalised here).
    target_prior : ``(K,)`` prior to adjust to (normalised here); uniform when ``None``.
    tau : scaling of the adjustment (1 = exact Bayes correction).

    References
    ----------
    .. [1] Saerens, Latinne & Decaestecker, Neural Computation 2002.
    .. [2] Menon et al., "Long-tail learning via logit adjustment", ICLR 2021.
    """
    pi = _prior(train_class_freq, "train_class_freq")
    target = np.full(len(pi), 1.0 / len(pi)) if target_prior is None else _prior(target_prior, "target_prior")
    if len(target) != len(pi):
        raise UserError(f"target_prior has {len(target)} classes, train_class_freq {len(pi)}")
    return float(tau) * (np.log(target) - np.log(pi))


def _prior(freq: Any, what: str) -> np.ndarray:
    f = to_numpy(freq, np.float64).reshape(-1)
    if len(f) < 2 or not np.isfinite(f).all() or (f < 0).any():
        raise UserError(f"{what} must be at least 2 finite non-negative numbers, got {f.tolist()[:8]}")
    if (f == 0).any():
        raise UserError(f"{what}: class {int(np.flatnonzero(f == 0)[0])} has zero frequency (log 0)")
    return f / f.sum()


def apply_bias(logits: Any, bias: Any, *, axis: int | None = None) -> Any:
    """``logits + bias`` broadcast along the class axis (0 of ``(K, H, W)``, 1 of ``(N, K, H, W)``, or
    ``axis``); numpy in, numpy out; torch in, torch out (same dtype and device)."""
    ax = class_axis(logits.ndim) if axis is None else axis % logits.ndim
    shape = [1] * logits.ndim
    shape[ax] = -1
    if is_torch(logits):
        import torch

        b = torch.as_tensor(to_numpy(bias, np.float64), dtype=logits.dtype, device=logits.device)
        if b.numel() != logits.shape[ax]:
            raise ValueError(f"bias has {b.numel()} entries for {logits.shape[ax]} classes")
        return logits + b.view(shape)
    b = to_numpy(bias, np.float64)
    if b.size != logits.shape[ax]:
        raise ValueError(f"bias has {b.size} entries for {logits.shape[ax]} classes")
    return np.asarray(logits) + b.reshape(shape).astype(np.result_type(logits.dtype, np.float32))


__all__ = ["apply_bias", "prior_correction_bias", "tune_binary_threshold", "tune_class_bias"]
