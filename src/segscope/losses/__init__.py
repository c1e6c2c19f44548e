"""Segmentation losses: pure functions, thin modules, class weighting, and specs like ``"ce+dice"``.

Every loss takes ``logits (N, C, H, W)`` and an int64 ``target (N, H, W)`` with ``ignore_index`` pixels
excluded. Functions: :mod:`~segscope.losses.functional` (cross-entropy, Dice, generalised Dice, Tversky,
focal, cost-sensitive), :mod:`~segscope.losses.lovasz`, :mod:`~segscope.losses.ohem`,
:mod:`~segscope.losses.boundary`, :mod:`~segscope.losses.triplet` (pixel embeddings; the logits serve as
one); modules in :mod:`~segscope.losses.modules`; :func:`build_loss` parses a spec (see ``docs/losses.md``).
"""

from __future__ import annotations

from segscope.losses import functional
from segscope.losses.boundary import (
    boundary_loss,
    boundary_weight_map,
    boundary_weighted_cross_entropy,
    signed_distance_maps,
)
from segscope.losses.functional import (
    cost_sensitive_loss,
    cross_entropy,
    focal_loss,
    generalized_dice_loss,
    soft_dice_loss,
    tversky_loss,
)
from segscope.losses.lovasz import lovasz_softmax_loss
from segscope.losses.modules import (
    BoundaryLoss,
    BoundaryWeightedCrossEntropy,
    CompositeLoss,
    CostSensitiveLoss,
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    GeneralizedDiceLoss,
    LovaszSoftmaxLoss,
    OHEMCrossEntropy,
    TverskyLoss,
)
from segscope.losses.ohem import ohem_cross_entropy, ohem_mask
from segscope.losses.spec import LOSSES, build_loss, parse_spec
from segscope.losses.triplet import TripletLoss, pixel_triplet_loss
from segscope.losses.weights import WEIGHT_SCHEMES, class_weights

__all__ = [
    "LOSSES",
    "WEIGHT_SCHEMES",
    "BoundaryLoss",
    "BoundaryWeightedCrossEntropy",
    "CompositeLoss",
    "CostSensitiveLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "GeneralizedDiceLoss",
    "LovaszSoftmaxLoss",
    "OHEMCrossEntropy",
    "TripletLoss",
    "TverskyLoss",
    "boundary_loss",
    "boundary_weight_map",
    "boundary_weighted_cross_entropy",
    "build_loss",
    "class_weights",
    "cost_sensitive_loss",
    "cross_entropy",
    "focal_loss",
    "functional",
    "generalized_dice_loss",
    "lovasz_softmax_loss",
    "ohem_cross_entropy",
    "ohem_mask",
    "parse_spec",
    "pixel_triplet_loss",
    "signed_distance_maps",
    "soft_dice_loss",
    "tversky_loss",
]
