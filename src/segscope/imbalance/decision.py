"""The decision rule that turns a deep model's logits into labels: argmax, or an imbalance correction.

==========================  =====================================================================
``decision``                rule (``logits`` ``(K, H, W)`` -> labels ``(H, W)``)
==========================  =====================================================================
``argmax``                  ``argmax_c logits_c`` (the default)
``prior`` / ``prior:tau=T``  ``argmax_c logits_c - T log pi_c``: post-hoc prior correction with the
                            training class frequencies ``pi`` (:func:`prior_correction_bias`)
``bias``                    ``argmax_c logits_c + b_c``, ``b`` tuned on validation for mean IoU
                            (:func:`tune_class_bias`, started from the prior correction)
``threshold[:metric=M]``    binary data: foreground where ``softmax_1 >= t``, ``t`` tuned on
                            validation for M = ``f1`` (default), ``dice`` or ``iou``
``cost``                    ``argmin_j sum_i p_i C[i, j]``: minimum expected cost under the user's
                            cost matrix ``C[true, pred]`` (``cost_matrix`` option)
==========================  =====================================================================

``bias`` and ``threshold`` are tuned on the validation images given to ``fit``; scored on those same
images they are optimistic, so benchmarks tune them on a split of their own (or use ``prior``, which
needs no tuning).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from segscope.errors import UserError
from segscope.imbalance.cost import load_cost_matrix, min_expected_cost_decision
from segscope.imbalance.thresholds import prior_correction_bias, tune_binary_threshold, tune_class_bias

RULES = ("argmax", "prior", "bias", "threshold", "cost")
_OPTIONS = {"prior": {"tau": float}, "threshold": {"metric": str}}


def parse_decision(spec: str | None) -> tuple[str, dict[str, Any]]:
    """``"prior:tau=0.5"`` -> ``("prior", {"tau": 0.5})``; ``None`` -> ``("argmax", {})``."""
    name, _, rest = str(spec or "argmax").strip().partition(":")
    if name not in RULES:
        raise UserError(f"unknown decision {spec!r}; choose from {', '.join(RULES)}")
    allowed = _OPTIONS.get(name, {})
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in allowed:
            raise UserError(
                f"decision {spec!r}: bad option {part!r} (options of {name}: {', '.join(allowed) or 'none'})"
            )
        try:
            options[key.strip()] = allowed[key.strip()](value.strip())
        except ValueError:
            raise UserError(f"decision {spec!r}: {key.strip()} cannot be {value!r}") from None
    return name, options


class DecisionRule:
    """A decision rule with its fitted state (biases or threshold), saved in ``segmenter.json``."""

    def __init__(self, spec: str | None = "argmax", *, num_classes: int, cost_matrix: Any = None) -> None:
        self.spec = str(spec or "argmax")
        self.rule, self.options = parse_decision(self.spec)
        self.num_classes = num_classes
        self.bias: np.ndarray | None = None
        self.threshold: float | None = None
        self.cost: np.ndarray | None = None
        if self.rule == "threshold" and num_classes != 2:
            raise UserError(f"decision threshold needs binary data, the model has {num_classes} classes")
        if self.rule == "cost":
            if cost_matrix is None:
                raise UserError(
                    "decision cost needs a cost matrix (option cost_matrix=FILE or a nested list)"
                )
            self.cost = load_cost_matrix(cost_matrix, num_classes)

    @property
    def needs_validation(self) -> bool:
        return self.rule in ("bias", "threshold")

    def fit(
        self,
        class_pixel_counts: np.ndarray,
        val_logits: Sequence[torch.Tensor] = (),
        val_targets: Sequence[np.ndarray] = (),
        *,
        ignore_index: int | None = None,
    ) -> DecisionRule:
        """Set the rule's state from the training class counts and validation ``(K, H, W)`` logits."""
        counts = np.maximum(np.asarray(class_pixel_counts, np.float64), 1.0)  # no log 0 for absent classes
        if self.rule in ("prior", "bias"):
            self.bias = prior_correction_bias(counts, tau=self.options.get("tau", 1.0))
        if self.needs_validation:
            if not len(val_logits):
                raise UserError(f"decision {self.spec} is tuned on validation images; give fit() a val set")
            if self.rule == "bias":
                self.bias, _ = tune_class_bias(
                    [lo.numpy() for lo in val_logits],
                    list(val_targets),
                    ignore_index=ignore_index,
                    init=self.bias,
                )
            else:
                probs = [lo.softmax(0)[1].numpy() for lo in val_logits]
                self.threshold, _ = tune_binary_threshold(
                    probs,
                    list(val_targets),
                    metric=self.options.get("metric", "f1"),
                    ignore_index=ignore_index,
                )
        return self

    def __call__(self, logits: torch.Tensor) -> np.ndarray:
        """``(K, H, W)`` logits -> ``(H, W)`` int64 labels."""
        if self.rule in ("prior", "bias") and self.bias is not None:
            logits = logits + torch.as_tensor(self.bias, dtype=logits.dtype).view(-1, 1, 1)
        elif self.rule == "threshold" and self.threshold is not None:
            return (logits.softmax(0)[1] >= self.threshold).numpy().astype(np.int64)
        elif self.rule == "cost" and self.cost is not None:
            return np.asarray(min_expected_cost_decision(logits.softmax(0).numpy(), self.cost), np.int64)
        return logits.argmax(0).numpy().astype(np.int64)

    def state(self) -> dict[str, Any]:
        return {
            "decision": self.spec,
            "decision_bias": None if self.bias is None else [round(float(b), 6) for b in self.bias],
            "decision_threshold": self.threshold,
            "cost_matrix": None if self.cost is None else self.cost.tolist(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("decision_bias") is not None:
            self.bias = np.asarray(state["decision_bias"], np.float64)
        if state.get("decision_threshold") is not None:
            self.threshold = float(state["decision_threshold"])
