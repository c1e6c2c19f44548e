"""Shared input handling: numpy or torch in, flat ``(P, K)`` scores and ``(P,)`` targets out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """A numpy view/copy of a numpy array, torch tensor (any device) or nested list."""
    if is_torch(x):
        x = x.detach().cpu().float().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def class_axis(ndim: int) -> int:
    """The class axis of ``(K, H, W)`` (0) or ``(N, K, H, W)`` (1) scores."""
    if ndim == 3:
        return 0
    if ndim == 4:
        return 1
    raise ValueError(f"expected (K, H, W) or (N, K, H, W) scores, got {ndim} dimensions")


def _pieces(x: Any) -> list[Any]:
    if isinstance(x, Sequence) and not isinstance(x, str | bytes) and len(x) and not np.isscalar(x[0]):
        if all(hasattr(p, "shape") for p in x):
            return list(x)
    return [x]


def flatten_scores(scores: Any, target: Any, *, ignore_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(K, H, W)`` / ``(N, K, H, W)`` scores (or a list of ``(K, H, W)``) and matching targets ->
    ``(P, K)`` float64 scores and ``(P,)`` int64 targets of the labelled pixels (ignore index and
    negative values dropped)."""
    s_list, t_list = _pieces(scores), _pieces(target)
    if len(s_list) != len(t_list):
        raise ValueError(f"{len(s_list)} score maps but {len(t_list)} targets")
    xs, ys = [], []
    for s, t in zip(s_list, t_list):
        s, t = to_numpy(s, np.float64), to_numpy(t).astype(np.int64)
        axis = class_axis(s.ndim)
        s = np.moveaxis(s, axis, -1)
        if s.shape[:-1] != t.shape:
            raise ValueError(f"scores of shape {s.shape[:-1]} (classes moved last) vs target {t.shape}")
        s, t = s.reshape(-1, s.shape[-1]), t.reshape(-1)
        keep = t >= 0
        if ignore_index is not None:
            keep &= t != ignore_index
        xs.append(s[keep])
        ys.append(t[keep])
    return np.concatenate(xs), np.concatenate(ys)


def flatten_binary(
    prob: Any, target: Any, *, ignore_index: int | None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-image flat foreground probabilities and bool targets (nonzero = foreground), ignore dropped.

    ``prob`` is one array (any shape; an ``(N, H, W)`` stack is ``N`` images) or a list of arrays.
    """
    p_list, t_list = _pieces(prob), _pieces(target)
    if len(p_list) != len(t_list):
        raise ValueError(f"{len(p_list)} probability maps but {len(t_list)} targets")
    ps, ts = [], []
    for p, t in zip(p_list, t_list):
        p, t = to_numpy(p, np.float64), to_numpy(t).astype(np.int64)
        if p.shape != t.shape:
            raise ValueError(f"probabilities of shape {p.shape} vs target {t.shape}")
        stack = p.ndim == 3 and len(p_list) == 1
        for pi, ti in zip(p if stack else [p], t if stack else [t]):
            pi, ti = pi.reshape(-1), ti.reshape(-1)
            keep = ti >= 0 if ignore_index is None else (ti >= 0) & (ti != ignore_index)
            ps.append(pi[keep])
            ts.append(ti[keep] != 0)
    return ps, ts
