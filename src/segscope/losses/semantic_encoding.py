"""EncNet's Semantic Encoding loss (SE-loss; Zhang et al. CVPR 2018, Sec. 3.2).

The SE head predicts, from the image's global encoding, which classes are present anywhere in it; the
loss is the binary cross-entropy of those ``(N, C)`` logits against the 0/1 presence vector of each
target mask. Pixels outside ``[0, num_classes)`` (the ignore index 255 among them) count for no class,
as in the authors' ``_get_batch_label_vector`` (a histogram over ``[0, C - 1]``). The mean runs over all
``N x C`` entries (``nn.BCELoss``'s default there); computed from the logits
(``binary_cross_entropy_with_logits``), which equals ``BCELoss(sigmoid(logits))`` but stays finite.

It is not a loss-spec term: spec terms see the pixel logits only, never the SE head's output. A model
applies it in its own ``training_loss`` (:class:`~segscope.models.semantic.encnet.EncNet`: weight
``se_loss_weight``, 0.2 by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def semantic_encoding_targets(
    target: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """``(N, H, W)`` int masks -> ``(N, num_classes)`` float 0/1: does class ``c`` occur in image ``n``.

    ``ignore_index`` pixels, and any value outside ``[0, num_classes)``, are not counted."""
    if target.ndim < 2:
        raise ValueError(f"target must be (N, H, W) masks, got size {tuple(target.shape)}")
    flat = target.reshape(target.shape[0], -1).long()
    valid = (flat >= 0) & (flat < num_classes) & (flat != ignore_index)
    index = torch.where(valid, flat, torch.full_like(flat, num_classes))  # invalid -> a spare column
    present = torch.zeros(flat.shape[0], num_classes + 1, device=flat.device)
    present.scatter_(1, index, 1.0)
    return present[:, :num_classes]


def semantic_encoding_loss(
    se_logits: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """Mean binary cross-entropy of ``se_logits`` ``(N, C)`` against the classes present in ``target``."""
    if se_logits.shape != (target.shape[0], num_classes):
        raise ValueError(
            f"se_logits must be (N, num_classes) = ({target.shape[0]}, {num_classes}), "
            f"got size {tuple(se_logits.shape)}"
        )
    presence = semantic_encoding_targets(target, num_classes, ignore_index)
    return F.binary_cross_entropy_with_logits(se_logits.float(), presence)
