"""The Encoding layer of EncNet (Zhang et al. CVPR 2018, Sec. 3.1; first in Deep TEN, CVPR 2017).

A learnable residual encoder: ``K`` codewords ``d_k`` in ``R^D`` and one smoothing factor per codeword.
For the ``N = H x W`` features ``x_i`` of a map,

* residuals ``r_ik = x_i - d_k``;
* soft-assignment weights ``a_ik = exp(-s_k ||r_ik||^2) / sum_j exp(-s_j ||r_ij||^2)``;
* encoders ``e_k = sum_i a_ik r_ik``; the output is the ``(K, D)`` stack of the ``e_k``.

Sign convention: the parameter ``scale`` is the authors' (PyTorch-Encoding ``encoding.nn.Encoding``,
``softmax(scale * ||x - d||^2)``), i.e. ``scale = -s_k`` of the paper's equation; it is initialised, as
there, uniform in ``(-1, 0)`` (so ``s_k`` in ``(0, 1)``: nearer codewords weigh more), and the codewords
uniform in ``(-1/sqrt(K D), 1/sqrt(K D))``. Parameter names ``codewords``/``scale`` are the authors'.

Vectorised without the ``(batch, N, K, D)`` residual tensor: the distances come from
``||x - d||^2 = ||x||^2 - 2 x.d + ||d||^2`` (one ``(N, D) x (D, K)`` product) and the aggregation from
``sum_i a_ik (x_i - d_k) = (A^T X)_k - (sum_i a_ik) d_k``; the largest intermediate is ``(batch, N, K)``.
The layer computes in float32 even under autocast: in bfloat16 the expansion's cancellation of
``||x||^2`` (hundreds for a 512-channel map) would swamp the distances.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Encoding(nn.Module):
    """``(B, D, H, W)`` or ``(B, D, N)`` features -> ``(B, K, D)`` residual encoders (module docstring).

    Parameters
    ----------
    channels : int
        Feature dimension ``D``.
    codewords : int
        Number of codewords ``K`` (32 in EncNet).
    """

    def __init__(self, channels: int, codewords: int = 32) -> None:
        super().__init__()
        self.channels, self.num_codewords = int(channels), int(codewords)
        self.codewords = nn.Parameter(torch.empty(self.num_codewords, self.channels))
        self.scale = nn.Parameter(torch.empty(self.num_codewords))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' initialisation: codewords ``U(-1/sqrt(KD), 1/sqrt(KD))``, scale ``U(-1, 0)``."""
        bound = 1.0 / math.sqrt(self.num_codewords * self.channels)
        nn.init.uniform_(self.codewords, -bound, bound)
        nn.init.uniform_(self.scale, -1.0, 0.0)

    def assignment(self, x: torch.Tensor) -> torch.Tensor:
        """Soft-assignment weights ``A`` ``(B, N, K)`` of features ``x`` ``(B, N, D)`` (float32)."""
        d = self.codewords.float()
        dist = (x * x).sum(-1, keepdim=True) - 2.0 * (x @ d.t()) + (d * d).sum(-1)  # (B, N, K)
        return torch.softmax(self.scale.float() * dist, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim not in (3, 4) or x.shape[1] != self.channels:
            raise ValueError(
                f"Encoding expects (B, {self.channels}, H, W) or (B, {self.channels}, N) features, "
                f"got size {tuple(x.shape)}"
            )
        with torch.autocast(device_type=x.device.type, enabled=False):
            feats = x.flatten(2).transpose(1, 2).float()  # (B, N, D)
            a = self.assignment(feats)  # (B, N, K)
            return a.transpose(1, 2) @ feats - a.sum(1).unsqueeze(-1) * self.codewords.float()

    def extra_repr(self) -> str:
        return f"channels={self.channels}, codewords={self.num_codewords}"
