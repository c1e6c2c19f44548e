"""L2 normalisation across channels with a learned per-channel scale (ParseNet, Sec. 3.3; SSD's conv4_3_norm).

W. Liu, A. Rabinovich, A. C. Berg, "ParseNet: Looking Wider to See Better", arXiv 1506.04579 (ICLR 2016
workshop): features of different layers (or a global pooled vector and a local map) have very different
magnitudes, so each is L2-normalised per position across its channels, ``x_hat = x / ||x||_2``, and then
rescaled by a learned vector ``gamma`` (one value per channel), ``y_i = gamma_i * x_hat_i``, trained by
back-propagation. Normalising to unit norm alone "can hardly train the network because the features become
very small"; scaling to "e.g. 10 or 20" lets it learn (the paper's wording, as quoted by several public
implementations), hence the default initial scale of 10 (SSD uses 20 for conv4_3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class L2Norm(nn.Module):
    """``(N, C, *) -> (N, C, *)``: ``scale[c] * x[:, c] / max(||x[:, :]||_2, eps)`` (norm over the channels).

    Parameters
    ----------
    channels : int
        Number of channels ``C`` (one learned scale per channel).
    scale : float
        Initial value of every scale (ParseNet: "e.g. 10 or 20"; 10 here).
    eps : float
        Lower bound of the norm (an all-zero position stays zero instead of dividing by zero).
    """

    def __init__(self, channels: int, scale: float = 10.0, *, eps: float = 1e-10) -> None:
        super().__init__()
        self.channels = channels
        self.initial_scale = float(scale)
        self.eps = eps
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.weight, self.initial_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, self.channels) + (1,) * (x.dim() - 2)
        return F.normalize(x, p=2.0, dim=1, eps=self.eps) * self.weight.view(shape)

    def extra_repr(self) -> str:
        return f"{self.channels}, scale={self.initial_scale}"
