"""Class imbalance at the decision level: tuned thresholds and logit biases, prior correction,
cost-sensitive decisions, and one-class (normal-only) anomaly segmentation.

Data-level tools (repeat-factor / class-balanced samplers, max-ratio crops) live in
:mod:`segscope.data.samplers` and :class:`segscope.data.transforms.MaxRatioCrop`. Importing this
package registers the ``one_class`` method.
"""

from segscope.imbalance.cost import expected_cost, load_cost_matrix, min_expected_cost_decision
from segscope.imbalance.one_class import OneClassSegmenter, normality_score
from segscope.imbalance.thresholds import (
    apply_bias,
    prior_correction_bias,
    tune_binary_threshold,
    tune_class_bias,
)

__all__ = [
    "OneClassSegmenter",
    "apply_bias",
    "expected_cost",
    "load_cost_matrix",
    "min_expected_cost_decision",
    "normality_score",
    "prior_correction_bias",
    "tune_binary_threshold",
    "tune_class_bias",
]
