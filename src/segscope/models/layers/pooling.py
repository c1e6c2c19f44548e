"""Adaptive average pooling that also exports to ONNX at any size.

ONNX has no adaptive pooling; torch's exporter handles output sizes that divide the input only (PSPNet's
3 and 6 bins on CamVid's 22x30 stride-8 map do not). Under tracing (ONNX export),
:func:`adaptive_avg_pool2d` computes the same average as ``P_h @ x @ P_w^T`` with constant pooling matrices
(row ``i`` averages input ``floor(i h / b) .. ceil((i + 1) h / b) - 1``, torch's bin edges), which every
runtime supports - for the traced size only, so such a graph is exported with a fixed input size. Eager
calls go to ``F.adaptive_avg_pool2d``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def pooling_matrix(size: int, bins: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(bins, size)``: row ``i`` averages the inputs of adaptive pooling's ``i``-th bin."""
    out = torch.zeros(bins, size, dtype=dtype)
    for i in range(bins):
        start, stop = (i * size) // bins, math.ceil((i + 1) * size / bins)
        out[i, start:stop] = 1.0 / (stop - start)
    return out


def adaptive_avg_pool2d(x: torch.Tensor, bins: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, bins)`` for ``(N, C, H, W)``; an ONNX-exportable form when tracing."""
    if not torch.jit.is_tracing():
        return F.adaptive_avg_pool2d(x, bins)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    rows = pooling_matrix(h, bins, dtype=x.dtype).to(x.device)
    cols = pooling_matrix(w, bins, dtype=x.dtype).to(x.device)
    return rows @ x @ cols.T
