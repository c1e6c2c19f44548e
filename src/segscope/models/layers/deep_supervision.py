"""Deep supervision: auxiliary outputs kept by a training forward and scored beside the main logits.

PSPNet's stage-3 head (weight 0.4), DeepLab v3's and EncNet's auxiliary FCN heads and ICNet's cascade
label guidance (0.4 / 0.4) are all the same mechanism: ``forward`` returns the main logits only (so the
trainer, validation, inference and export see one tensor), and in training mode leaves the auxiliary
logits in ``model.aux_logits``; :class:`~segscope.models.segmenter.DeepSegmenter` then trains with the
model's ``training_loss(loss_fn, logits, target)`` (:func:`deep_supervision_loss`). Evaluation mode
never computes (or keeps) them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def deep_supervision_loss(
    loss_fn: LossFn,
    logits: torch.Tensor,
    aux_logits: Sequence[torch.Tensor] | None,
    target: torch.Tensor,
    aux_weights: Sequence[float],
    main_weight: float = 1.0,
) -> torch.Tensor:
    """``main_weight * L(logits) + sum_i aux_weights[i] * L(aux_logits[i])``.

    ``loss_fn(logits, target)`` is any segscope loss. An auxiliary output smaller than ``target`` (ICNet's
    1/16 and 1/8 guidance) is scored against ``target`` down-sampled by nearest neighbour to its size, so
    ignored pixels stay ignored; heads that up-sample their logits to the input (PSPNet, torchvision) are
    scored at full size. ``aux_logits=None`` (eval mode, or no auxiliary head) gives the main term only.
    """
    total = main_weight * loss_fn(logits, target)
    for weight, aux in zip(aux_weights, aux_logits or ()):
        if aux.shape[-2:] != target.shape[-2:]:
            small = F.interpolate(target[:, None].float(), size=aux.shape[-2:], mode="nearest")[:, 0]
            total = total + weight * loss_fn(aux, small.to(target.dtype))
        else:
            total = total + weight * loss_fn(aux, target)
    return total


class DeeplySupervised(nn.Module):
    """Base class of a network with auxiliary training outputs.

    Subclasses set ``aux_weights`` (one weight per auxiliary output, in the order their ``forward`` stores
    them in ``self.aux_logits``) and assign ``self.aux_logits`` in training forwards only.
    """

    aux_weights: tuple[float, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.aux_logits: tuple[torch.Tensor, ...] | None = None

    def training_loss(self, loss_fn: LossFn, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The deep-supervision loss of the last training forward (:func:`deep_supervision_loss`)."""
        return deep_supervision_loss(loss_fn, logits, self.aux_logits, target, self.aux_weights)

    def train(self, mode: bool = True):
        self.aux_logits = None  # never keep a training graph alive (or deep-copy it) past training
        return super().train(mode)
