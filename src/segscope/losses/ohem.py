"""Online hard example mining (OHEM) for pixel-wise cross-entropy."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from segscope.losses.functional import as_float, match_target


def ohem_mask(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    thresh: float = 0.7,
    min_kept: int | None = None,
    keep: float | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Boolean ``(N, H, W)`` mask of the pixels :func:`ohem_cross_entropy` keeps (no gradient).

    Threshold mode (``keep=None``): the valid pixels whose true-class probability is below ``thresh``,
    topped up with the next-hardest ones to at least ``min_kept`` (default 100 000, per batch). Top-k mode
    (``keep`` in (0, 1]): the ``ceil(keep * n_valid)`` hardest valid pixels, at least ``min_kept``
    (default 1). Hardness is the unweighted ``-log p_y``. Ignored pixels are never kept; ties at the cut
    are broken arbitrarily.
    """
    if not 0.0 <= thresh <= 1.0:
        raise ValueError(f"ohem thresh must be in [0, 1], got {thresh}")
    if keep is not None and not 0.0 < keep <= 1.0:
        raise ValueError(f"ohem keep must be in (0, 1], got {keep}")
    if min_kept is not None and min_kept < 0:
        raise ValueError(f"ohem min_kept must be >= 0, got {min_kept}")
    target = match_target(logits, target)
    with torch.no_grad():
        x = as_float(logits.detach())
        valid = target != ignore_index
        nll = F.cross_entropy(x, target.clamp(0, x.shape[1] - 1), reduction="none")  # (N, H, W)
        hardness = torch.where(valid, nll, torch.full_like(nll, -math.inf)).flatten()
        n_valid = int(valid.sum())
        if keep is None:
            kept = valid.flatten() & ((-nll).exp().flatten() < thresh)
            floor = 100_000 if min_kept is None else min_kept
        else:
            kept = torch.zeros_like(valid.flatten())
            floor = max(math.ceil(keep * n_valid), 1 if min_kept is None else min_kept)
        k = min(floor, n_valid)
        if int(kept.sum()) < k:
            kept[hardness.topk(k).indices] = True
    return kept.view_as(valid)


def ohem_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    thresh: float = 0.7,
    min_kept: int | None = None,
    keep: float | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Cross-entropy over the hardest pixels only, ``sum_kept w_y (-log p_y) / sum_kept w_y``.

    The kept pixels are :func:`ohem_mask`'s: those with ``p_y < thresh`` (at least ``min_kept``), as in
    the PSPNet / HRNet / mmsegmentation code, or the top fraction ``keep`` by loss (bootstrapped CE).
    Departure: the sum is normalised by ``sum w_y`` over the kept pixels (those codebases divide by
    their count), so ``keep=1`` equals :func:`~segscope.losses.functional.cross_entropy` with the same
    ``weight``.

    References: Shrivastava, Gupta & Girshick, "Training region-based object detectors with online hard
    example mining", CVPR 2016; Wu, Shen & van den Hengel, "High-performance semantic segmentation using
    very deep fully convolutional networks", arXiv 2016 (online bootstrapping, the top-k variant).
    """
    target = match_target(logits, target)
    kept = ohem_mask(logits, target, thresh=thresh, min_kept=min_kept, keep=keep, ignore_index=ignore_index)
    x = as_float(logits)
    nll = F.cross_entropy(x, target.clamp(0, x.shape[1] - 1), reduction="none")  # (N, H, W)
    w = kept.to(x.dtype)
    if weight is not None:
        w = w * weight.to(x.device, x.dtype)[target.clamp(0, x.shape[1] - 1)]
    return (w * nll).sum() / w.sum().clamp_min(torch.finfo(x.dtype).tiny)
