"""Class imbalance at the decision level: tuned thresholds and logit biases, prior correction,
and cost-sensitive decisions.

Data-level tools (repeat-factor / class-balanced samplers, max-ratio crops) live in
:mod:`segscope.data.samplers` and :class:`segscope.data.transforms.MaxRatioCrop`; the one-class
(normal-only) method ``one_class`` in :mod:`segscope.classical.one_class`.
"""

from segscope.imbalance.cost import expected_cost, load_cost_matrix, min_expected_cost_decision
from segscope.imbalance.thresholds import (
    apply_bias,
    prior_correction_bias,
    tune_binary_threshold,
    tune_class_bias,
)

__all__ = [
    "apply_bias",
    "expected_cost",
    "load_cost_matrix",
    "min_expected_cost_decision",
    "prior_correction_bias",
    "tune_binary_threshold",
    "tune_class_bias",
]
