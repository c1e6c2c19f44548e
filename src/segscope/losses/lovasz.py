"""Lovász-softmax: a convex surrogate of the Jaccard (IoU) loss, optimised directly.

Hand-written (after the authors' public PyTorch reference): no library in segscope's dependencies has it.
"""

from __future__ import annotations

from typing import Literal

import torch

from segscope.losses.functional import as_float, match_target


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss along the last dim.

    ``gt_sorted`` (``(..., P)``, 0/1 floats) is the foreground indicator of the pixels sorted by
    decreasing error; entry ``i`` is ``Δ_J(S_i) - Δ_J(S_{i-1})`` with ``S_i`` the first ``i`` pixels and
    ``Δ_J(S) = |S| / |F ∪ S|`` (``F`` the foreground) — the Jaccard loss of mispredicting ``S``.
    """
    gts = gt_sorted.sum(-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(-1)
    union = gts + (1 - gt_sorted).cumsum(-1)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard.diff(dim=-1)], -1)


def lovasz_softmax_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = 255,
    per_image: bool = False,
    classes: Literal["present", "all"] = "present",
) -> torch.Tensor:
    """Lovász-softmax loss: mean over classes of the Lovász extension of the Jaccard loss.

    For class ``c`` the pixel errors ``m_i = |[y_i = c] - p_ic|`` are sorted decreasingly and
    ``loss_c = sum_i m_(i) g_i`` with ``g`` from :func:`lovasz_grad`. On one-hot predictions it equals
    ``1 - IoU_c`` exactly. ``classes="present"`` averages over the classes present in the target (the
    paper's default), ``"all"`` over every class. ``per_image=True`` computes the loss per image and
    averages over images (those without a valid pixel are skipped); otherwise the batch is one image.
    Sorting costs ``O(P log P)`` per class with ``P`` the pixel count.

    References: Berman, Rannen Triki & Blaschko, "The Lovász-softmax loss: a tractable surrogate for the
    optimization of the intersection-over-union measure in neural networks", CVPR 2018.
    """
    if classes not in ("present", "all"):
        raise ValueError(f"lovasz classes must be 'present' or 'all', got {classes!r}")
    target = match_target(logits, target)
    x = as_float(logits)
    num_classes = x.shape[1]
    probs = x.softmax(1).flatten(2)  # (N, C, P)
    labels = target.flatten(1)  # (N, P)
    if not per_image:
        probs, labels = probs.permute(1, 0, 2).reshape(1, num_classes, -1), labels.reshape(1, -1)
    valid = labels != ignore_index  # (B, P), B = N or 1
    per_class = []
    present = []
    for c in range(num_classes):
        fg = ((labels == c) & valid).to(x.dtype)  # (B, P)
        # ignored pixels get error -1 so they sort last; clamping then zeroes their contribution
        errors = torch.where(valid, (fg - probs[:, c]).abs(), torch.full_like(fg, -1.0))
        errors_sorted, perm = errors.sort(-1, descending=True)
        grad = lovasz_grad(fg.gather(-1, perm))
        per_class.append((errors_sorted.clamp_min(0) * grad).sum(-1))  # (B,)
        present.append(fg.sum(-1) > 0 if classes == "present" else valid.any(-1))
    losses, counted = torch.stack(per_class, 1), torch.stack(present, 1).to(x.dtype)  # (B, C)
    n_counted = counted.sum(1)
    per_sample = (losses * counted).sum(1) / n_counted.clamp_min(1)  # (B,)
    used = (n_counted > 0).to(x.dtype)
    return (per_sample * used).sum() / used.sum().clamp_min(1)
