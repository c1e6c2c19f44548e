"""The ``crf`` stage: a fully connected CRF (:func:`~segscope.crf.dense_crf.dense_crf`) on any method's
class probabilities, as DeepLab v1/v2 use it after the network.

``-o crf=true`` (defaults) or ``-o crf='{iterations: 10, bilateral_sxy: 50}'`` adds it to a deep or
classical method (:func:`segscope.factory.split_options`); it runs after an oracle stage and before any
label-map stage. Its options are saved in the run's ``stages`` section, so :func:`segscope.load` rebuilds
it.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any

import numpy as np

from segscope.crf.dense_crf import BACKENDS, dense_crf, pydensecrf_available
from segscope.errors import UserError
from segscope.segmenter import Segmenter
from segscope.stages import Stage, register_stage

DEFAULTS: dict[str, Any] = {
    name: p.default for name, p in inspect.signature(dense_crf).parameters.items() if p.kind == p.KEYWORD_ONLY
}
"""The stage's options: :func:`dense_crf`'s keyword arguments and their defaults."""


@register_stage
class CRFStage(Stage):
    """Dense CRF refinement of class probabilities; ``options`` are :func:`dense_crf`'s keywords."""

    kind = "crf"
    uses_proba = True

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(DEFAULTS))
        if unknown:
            raise UserError(
                f"stage crf: unknown option(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}"
            )
        opts = {**DEFAULTS, **options}
        try:
            if opts["backend"] not in BACKENDS:
                raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {opts['backend']!r}")
            if opts["backend"] == "pydensecrf" and not pydensecrf_available():
                raise ValueError("backend 'pydensecrf' needs pip install pydensecrf2 (or segscope[crf])")
            iterations = opts["iterations"]
            if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 0:
                raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
            opts["iterations"] = int(iterations)
            for name in (
                "gaussian_sxy",
                "gaussian_weight",
                "bilateral_sxy",
                "bilateral_srgb",
                "bilateral_weight",
            ):
                value = opts[name]
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise ValueError(f"{name} must be a number, got {value!r}")
                opts[name] = float(value)
            dense_crf(np.zeros((1, 1, 3), np.uint8), np.ones((1, 1, 1)), **{**opts, "iterations": 0})
        except ValueError as exc:
            raise UserError(f"stage crf: {str(exc).removeprefix('dense_crf: ')}") from None
        self.options = opts

    def check(self, base: Segmenter) -> None:
        super().check(base)
        if base.ndim != 2:
            raise UserError(f"stage crf refines 2-D images; {base.name} is a {base.ndim}-D method")

    def refine_proba(self, image: np.ndarray, proba: np.ndarray) -> np.ndarray:
        return dense_crf(image, proba, **self.options)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.options}
