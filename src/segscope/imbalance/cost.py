"""Cost-sensitive decisions: predict the class of minimum expected cost under a user cost matrix.

With class posteriors ``p(i | x)`` and a cost matrix ``C[i, j]`` = the cost of predicting ``j`` when
the true class is ``i``, the Bayes-optimal decision is ``argmin_j sum_i p(i | x) C[i, j]`` [1]_. For the
0-1 cost (``C = 1 - I``) this is the argmax; making a missed rare class expensive (a large
``C[rare, other]``) moves the decision towards it without retraining.

References
----------
.. [1] C. Elkan, "The foundations of cost-sensitive learning", IJCAI 2001, Sec. 2. Note Elkan writes
   ``C(i, j)`` for predicting ``i`` when the truth is ``j``: his table is the transpose of ours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from segscope.errors import UserError
from segscope.imbalance._arrays import class_axis, is_torch, to_numpy


def expected_cost(probs: Any, cost_matrix: Any) -> Any:
    """``E[cost of predicting j] = sum_i p_i C[i, j]``: same shape as ``probs`` (``(K, H, W)`` or
    ``(N, K, H, W)``), numpy or torch."""
    c = to_numpy(cost_matrix, np.float64)
    ax = class_axis(probs.ndim)
    k = probs.shape[ax]
    if c.shape != (k, k):
        raise ValueError(f"cost matrix of shape {c.shape} for {k} classes")
    if is_torch(probs):
        import torch

        ct = torch.as_tensor(c, dtype=probs.dtype if probs.is_floating_point() else torch.float32)
        ct = ct.to(probs.device)
        return torch.movedim(torch.tensordot(torch.movedim(probs, ax, -1).to(ct.dtype), ct, dims=1), -1, ax)
    p = np.moveaxis(np.asarray(probs, np.float64), ax, -1)
    return np.moveaxis(p @ c, -1, ax)


def min_expected_cost_decision(probs: Any, cost_matrix: Any) -> Any:
    """Labels ``argmin_j sum_i p(i | x) C[true=i, pred=j]`` per pixel.

    Parameters
    ----------
    probs : ``(K, H, W)`` or ``(N, K, H, W)`` class probabilities (numpy or torch; softmax first if
        you hold logits - expected cost is linear in probabilities, not in logits).
    cost_matrix : ``(K, K)``, ``C[true, pred]`` (see :func:`load_cost_matrix`).

    Returns
    -------
    ``(H, W)`` / ``(N, H, W)`` int64 labels, numpy or torch as the input. Ties go to the lower class.

    References
    ----------
    .. [1] Elkan, "The foundations of cost-sensitive learning", IJCAI 2001.
    """
    cost = expected_cost(probs, cost_matrix)
    ax = class_axis(probs.ndim)
    if is_torch(cost):
        return cost.argmin(dim=ax)
    return cost.argmin(axis=ax).astype(np.int64)


def load_cost_matrix(source: Any, num_classes: int | None = None) -> np.ndarray:
    """Read and validate a ``(K, K)`` cost matrix ``C[true, pred]``.

    Parameters
    ----------
    source : a nested list / array, an inline JSON string (``"[[0, 1], [5, 0]]"``), or the path of a
        ``.json`` / ``.yaml`` / ``.yml`` file holding the nested list (or a mapping with key
        ``cost_matrix`` or ``matrix``).
    num_classes : ``K``; ``None`` accepts any square matrix (a loss spec does not know ``K``).

    Returns
    -------
    ``(K, K)`` float64. Raises :class:`~segscope.errors.UserError` (one line naming the source) unless
    the matrix is ``K x K``, finite and non-negative.
    """
    where, data = _read(source)
    try:
        c = np.asarray(data, np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{where}: the cost matrix must be a nested list of numbers") from None
    k = int(num_classes) if num_classes is not None else (c.shape[0] if c.ndim == 2 else -1)
    if c.ndim != 2 or c.shape != (k, k) or c.size == 0:
        if num_classes is None:
            raise UserError(f"{where}: the cost matrix must be square, C[true][pred]; got shape {c.shape}")
        raise UserError(f"{where}: cost matrix has shape {c.shape}, expected ({k}, {k}) for {k} classes")
    if not np.isfinite(c).all():
        raise UserError(f"{where}: cost matrix entries must be finite numbers")
    if (c < 0).any():
        i, j = np.argwhere(c < 0)[0]
        raise UserError(f"{where}: cost matrix entries must be >= 0, C[{i}, {j}] = {c[i, j]:g}")
    return c


def _read(source: Any) -> tuple[str, Any]:
    if isinstance(source, str) and source.lstrip().startswith("["):
        try:
            return "cost matrix", json.loads(source)
        except json.JSONDecodeError as exc:
            raise UserError(f"cost matrix {source[:40]!r}: not valid JSON ({exc.msg})") from None
    if not isinstance(source, str | Path):
        return "cost matrix", source
    path = Path(source)
    if not path.is_file():
        raise UserError(f"{path}: cost matrix file not found")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError: one line naming the file
        raise UserError(f"{path}: cannot parse the cost matrix ({str(exc).splitlines()[0][:120]})") from None
    if isinstance(data, dict):
        key = next((k for k in ("cost_matrix", "matrix") if k in data), None)
        if key is None:
            raise UserError(f"{path}: expected a nested list or a mapping with key 'cost_matrix'")
        data = data[key]
    return str(path), data


__all__ = ["expected_cost", "load_cost_matrix", "min_expected_cost_decision"]
