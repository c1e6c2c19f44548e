"""Segmentation losses as pure functions of ``logits (N, C, H, W)`` and ``target (N, H, W)``.

Pixels equal to ``ignore_index`` contribute nothing. When the logits are smaller than the target (a
valid-padding U-Net), the target is centre-cropped to the logits, as in the U-Net paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def match_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Centre-crop ``target`` to the spatial size of ``logits`` (no-op when equal)."""
    h, w = logits.shape[-2:]
    if target.shape[-2:] == (h, w):
        return target
    top, left = (target.shape[-2] - h) // 2, (target.shape[-1] - w) // 2
    if top < 0 or left < 0:
        raise ValueError(
            f"logits {tuple(logits.shape[-2:])} are larger than the target {tuple(target.shape[-2:])}"
        )
    return target[..., top : top + h, left : left + w]


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """(Class-weighted) pixel-wise cross-entropy, mean over non-ignored pixels."""
    target = match_target(logits, target)
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index)


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = 255,
    smooth: float = 1.0,
) -> torch.Tensor:
    """1 - mean over classes of the soft Dice ``(2|P∩T| + s) / (|P| + |T| + s)`` (Milletari et al., 2016).

    Sums run over the whole batch; classes absent from both prediction and target score 1.
    """
    target = match_target(logits, target)
    num_classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)  # (N, 1, H, W)
    probs = logits.float().softmax(1) * valid
    onehot = F.one_hot(target.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2) * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return 1.0 - ((2 * inter + smooth) / (denom + smooth)).mean()


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Focal loss ``-(1 - p_t)^gamma log p_t`` (Lin et al., ICCV 2017), mean over non-ignored pixels."""
    target = match_target(logits, target)
    logp = F.log_softmax(logits.float(), 1)
    valid = target != ignore_index
    t = target.clamp(0, logits.shape[1] - 1)
    logp_t = logp.gather(1, t.unsqueeze(1)).squeeze(1)
    loss = -((1 - logp_t.exp()) ** gamma) * logp_t
    if weight is not None:
        loss = loss * weight[t]
    return loss[valid].sum() / valid.sum().clamp(min=1)
