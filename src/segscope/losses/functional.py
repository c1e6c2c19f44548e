"""Segmentation losses as pure functions of ``logits (N, C, H, W)`` and ``target (N, H, W)`` (int64).

Pixels equal to ``ignore_index`` contribute nothing. When the logits are smaller than the target (a
valid-padding U-Net), the target is centre-cropped to the logits, as in the U-Net paper. Losses are
computed in float32 (float64 inputs stay float64, so ``torch.autograd.gradcheck`` works); half-precision
logits under autocast are upcast first.

This module holds the pixel-wise and region (overlap) losses; Lovász-softmax, OHEM and the boundary
losses live in :mod:`~segscope.losses.lovasz`, :mod:`~segscope.losses.ohem` and
:mod:`~segscope.losses.boundary`. All are re-exported from :mod:`segscope.losses`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-7  # floor of overlap-loss denominators, so an all-ignored batch gives a finite loss


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


def as_float(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or float64 if it already is (half precision is never used for a loss)."""
    return x if x.dtype == torch.float64 else x.float()


def onehot_target(
    target: torch.Tensor, num_classes: int, ignore_index: int, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(onehot (N, C, H, W), valid (N, 1, H, W))``; ignored pixels are all-zero in ``onehot``."""
    valid = (target != ignore_index).unsqueeze(1)
    onehot = F.one_hot(target.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2)
    return onehot.to(dtype) * valid, valid


def soft_confusion(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft per-class ``(TP, FP, FN)``, each ``(C,)``, summed over the batch and all valid pixels.

    ``TP_c = sum p_c t_c``, ``FP_c = sum p_c (1 - t_c)``, ``FN_c = sum (1 - p_c) t_c`` with ``p`` the
    softmax and ``t`` the one-hot target.
    """
    target = match_target(logits, target)
    x = as_float(logits)
    onehot, valid = onehot_target(target, x.shape[1], ignore_index, x.dtype)
    probs = x.softmax(1) * valid
    dims = (0, 2, 3)
    tp = (probs * onehot).sum(dims)
    return tp, probs.sum(dims) - tp, onehot.sum(dims) - tp


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """(Class-weighted) pixel-wise cross-entropy ``-w_y log p_y``, divided by ``sum w_y`` over valid pixels.

    This is :func:`torch.nn.functional.cross_entropy` (``label_smoothing`` as Szegedy et al., CVPR 2016).
    For the weighting schemes see :func:`segscope.losses.class_weights`.
    """
    target = match_target(logits, target)
    x = as_float(logits)
    w = None if weight is None else weight.to(x.device, x.dtype)
    return F.cross_entropy(x, target, weight=w, ignore_index=ignore_index, label_smoothing=label_smoothing)


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = 255,
    smooth: float = 1.0,
) -> torch.Tensor:
    """1 - mean over classes of the soft Dice ``(2|P∩T| + s) / (|P| + |T| + s)``.

    Sums run over the whole batch; with ``smooth > 0`` classes absent from both prediction and target
    score 1.

    References: Milletari, Navab & Ahmadi, "V-Net", 3DV 2016.
    """
    tp, fp, fn = soft_confusion(logits, target, ignore_index)
    score = (2 * tp + smooth) / (2 * tp + fp + fn + smooth).clamp_min(EPS)
    return 1.0 - score.mean()


def generalized_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = 255,
    smooth: float = 1e-6,
) -> torch.Tensor:
    """Generalised Dice loss ``1 - (2 sum_c w_c |P_c∩T_c| + s) / (sum_c w_c (|P_c| + |T_c|) + s)``.

    ``w_c = 1 / |T_c|^2`` (target pixels of class ``c`` in the batch), so every class counts about
    equally whatever its size. Departures from the paper, which leaves them open: a class absent from the
    target gets the largest weight of the present classes (as MONAI does), so predicting it is still
    penalised; the weights are normalised to sum to 1 (the ratio does not change, but ``smooth`` stays
    negligible whatever the image size).

    References: Sudre et al., "Generalised Dice overlap as a deep learning loss function for highly
    unbalanced segmentations", DLMIA 2017.
    """
    tp, fp, fn = soft_confusion(logits, target, ignore_index)
    counts = tp + fn  # |T_c|
    w = 1.0 / counts.detach() ** 2
    finite = torch.isfinite(w)
    fill = torch.where(finite, w, torch.zeros_like(w)).max()
    w = torch.where(finite, w, torch.where(finite.any(), fill, torch.ones_like(w)))
    w = w / w.sum()
    score = (2 * (w * tp).sum() + smooth) / ((w * (2 * tp + fp + fn)).sum() + smooth).clamp_min(EPS)
    return 1.0 - score


def tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 0.3,
    beta: float = 0.7,
    ignore_index: int = 255,
    smooth: float = 1.0,
) -> torch.Tensor:
    """1 - mean over classes of the Tversky index ``(TP + s) / (TP + alpha FP + beta FN + s)``.

    ``beta > alpha`` penalises false negatives more (recall of small structures); the paper's best was
    ``alpha=0.3, beta=0.7``. ``alpha = beta = 0.5`` is the soft Dice loss with smoothing ``2 s``.
    Sums run over the whole batch.

    References: Salehi, Erdogmus & Gholipour, "Tversky loss function for image segmentation using 3D
    fully convolutional deep networks", MLMI 2017.
    """
    if alpha < 0 or beta < 0:
        raise ValueError(f"tversky alpha and beta must be >= 0, got alpha={alpha}, beta={beta}")
    tp, fp, fn = soft_confusion(logits, target, ignore_index)
    score = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth).clamp_min(EPS)
    return 1.0 - score.mean()


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Focal loss ``-w_y (1 - p_y)^gamma log p_y``, mean over non-ignored pixels.

    ``gamma = 0`` is cross-entropy (normalised by the pixel count rather than by ``sum w_y``). The
    softmax (multi-class) form; the paper's ``alpha`` balance is the class ``weight``.

    References: Lin et al., "Focal loss for dense object detection", ICCV 2017.
    """
    if gamma < 0:
        raise ValueError(f"focal gamma must be >= 0, got {gamma}")
    target = match_target(logits, target)
    logp = F.log_softmax(as_float(logits), 1)
    valid = target != ignore_index
    t = target.clamp(0, logits.shape[1] - 1)
    logp_t = logp.gather(1, t.unsqueeze(1)).squeeze(1)
    # clamped so that gamma < 1 gives a zero, not NaN, gradient where p_y rounds to 1
    loss = -((1 - logp_t.exp()).clamp_min(1e-12) ** gamma) * logp_t
    if weight is not None:
        loss = loss * weight.to(loss.device, loss.dtype)[t]
    return loss[valid].sum() / valid.sum().clamp(min=1)


def cost_sensitive_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    cost_matrix: torch.Tensor,
    *,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Expected misclassification cost ``sum_j p_j C[y, j]``, mean over non-ignored pixels.

    ``cost_matrix`` is ``(C, C)`` with ``C[true, predicted]``, usually 0 on the diagonal; a large
    ``C[rare, common]`` makes missing the rare class expensive. With ``C = 1 - I`` the loss is the
    expected pixel error ``1 - p_y``. It is bounded, so its gradient vanishes on confidently wrong
    pixels: combine it with cross-entropy (``"ce+cost"``). Minimising expected cost is the
    decision-theoretic criterion of Elkan; training a network on it follows Kukar & Kononenko.

    References: Elkan, "The foundations of cost-sensitive learning", IJCAI 2001; Kukar & Kononenko,
    "Cost-sensitive learning with neural networks", ECAI 1998.
    """
    target = match_target(logits, target)
    x = as_float(logits)
    num_classes = x.shape[1]
    if tuple(cost_matrix.shape) != (num_classes, num_classes):
        raise ValueError(
            f"cost matrix is {tuple(cost_matrix.shape)} but the logits have {num_classes} classes; "
            f"it must be ({num_classes}, {num_classes})"
        )
    cost = cost_matrix.to(x.device, x.dtype)
    valid = target != ignore_index
    rows = cost[target.clamp(0, num_classes - 1)]  # (N, H, W, C): C[y, :] per pixel
    expected = (x.softmax(1).permute(0, 2, 3, 1) * rows).sum(-1)  # (N, H, W)
    return expected[valid].sum() / valid.sum().clamp(min=1)
