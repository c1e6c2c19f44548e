"""Masked average pooling and cosine similarity: the two operations of prototype segmentation.

PANet (Wang, Liew, Zou, Zhou & Feng, "PANet: Few-Shot Image Semantic Segmentation with Prototype
Alignment", ICCV 2019, Eq. 1-3): a class prototype is the mean of the support features under the class
mask, features first upsampled (bilinear) to the mask's size; each query pixel is scored by the cosine
similarity of its feature to every prototype, times a scale (alpha = 20 in the paper).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def masked_average_pooling(features: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``(N, D, h, w)`` features and ``(N, H, W)`` weights in [0, 1] -> ``(N, D)`` prototypes.

    ``sum(up(f)(x) * m(x)) / (sum(m(x)) + eps)`` over the mask's pixels, ``up`` the bilinear upsampling
    of ``f`` to ``(H, W)`` (PANet Eq. 1); a mask with no pixel gives a zero prototype.

    Computed without upsampling the features: ``up`` is linear, so ``sum(up(f) * m) = sum(f * up^T(m))``
    with ``up^T`` its adjoint, applied to the one-channel mask (autograd's backward of the upsampling).
    The result is the paper's formula; the cost falls from ``D x H x W`` to ``D x h x w``.
    """
    if features.ndim != 4 or mask.ndim != 3 or features.shape[0] != mask.shape[0]:
        raise ValueError(
            f"need (N, D, h, w) features and (N, H, W) masks, got {features.shape}, {mask.shape}"
        )
    m = mask.to(features.dtype).detach()
    weights = upsampling_adjoint(m, features.shape[-2:])  # (N, h, w)
    return torch.einsum("ndhw,nhw->nd", features, weights) / (m.sum((1, 2))[:, None] + eps)


def upsampling_adjoint(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``up^T(mask)``: the ``(N, h, w)`` weights with ``<up(x), mask> = <x, up^T(mask)>`` for every ``x``,
    ``up`` = bilinear (``align_corners=False``) upsampling from ``size`` to the mask's size."""
    with torch.enable_grad():
        x = torch.zeros((mask.shape[0], 1, *size), dtype=mask.dtype, device=mask.device, requires_grad=True)
        up = F.interpolate(x, size=mask.shape[-2:], mode="bilinear", align_corners=False)
        (grad,) = torch.autograd.grad((up[:, 0] * mask).sum(), x)
    return grad[:, 0]


def cosine_scores(features: torch.Tensor, prototypes: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """``(Q, D, h, w)`` features and ``(P, D)`` prototypes -> ``(Q, P, h, w)`` ``scale * cos``."""
    f = F.normalize(features, dim=1, eps=1e-6)
    p = F.normalize(prototypes, dim=1, eps=1e-6)
    return scale * torch.einsum("qdhw,pd->qphw", f, p)
