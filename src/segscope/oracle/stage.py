"""Oracle refinement as a post-processing stage (Fernandes, Cruz & Cardoso, IJCNN 2018).

:class:`OracleStage` refines any method's class probabilities by gradient ascent on a trained quality
oracle's predicted quality (:func:`~segscope.oracle.refine.refine_proba`); the labels are their argmax.
:class:`RefinedSegmenter` is a method followed by that one stage. Saved runs hold the oracle's directory
and the refinement options in their ``stages`` section, so :func:`segscope.load` reopens them refined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segscope.errors import UserError
from segscope.oracle.local import LocalQualityOracle
from segscope.oracle.network import QualityOracle
from segscope.oracle.quality import load_any_oracle
from segscope.oracle.refine import refine_proba
from segscope.segmenter import Segmenter
from segscope.stages import Stage, StagedSegmenter, register_stage


@register_stage
class OracleStage(Stage):
    """Refine class probabilities with ``oracle`` (a global :class:`QualityOracle`, a
    :class:`~segscope.oracle.local.LocalQualityOracle` or the directory of either); ``options`` go to
    :func:`~segscope.oracle.refine.refine_mask` (global) or
    :func:`~segscope.oracle.local_refine.refine_local` (local: ``iterations``, ``step``, ``update``,
    ``prior_weight``, best chosen by :func:`~segscope.oracle.local_refine.tune_refinement`)."""

    kind = "oracle"
    uses_proba = True

    def __init__(
        self, oracle: QualityOracle | LocalQualityOracle | str | Path | None = None, **options: Any
    ) -> None:
        if oracle is None:
            oracle = options.pop("oracle_dir", None)
        if oracle is None:
            raise UserError("stage oracle: no oracle (the run was saved with an oracle held in memory only)")
        in_memory = isinstance(oracle, QualityOracle | LocalQualityOracle)
        self.oracle_dir = None if in_memory else str(oracle)
        self.oracle = oracle if in_memory else load_any_oracle(oracle)
        self.options = dict(options)

    def check(self, base: Segmenter) -> None:
        super().check(base)
        if self.oracle.num_classes != base.num_classes:
            raise UserError(
                f"oracle {self.oracle_dir or ''} was trained on {self.oracle.num_classes} classes, "
                f"the method predicts {base.num_classes}"
            )

    def refine_proba(self, image: np.ndarray, proba: np.ndarray) -> np.ndarray:
        if isinstance(self.oracle, LocalQualityOracle):
            from segscope.oracle.local_refine import refine_local

            return refine_local(self.oracle, image, proba, **self.options).proba
        return refine_proba(self.oracle, image, proba, **self.options)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "oracle_dir": self.oracle_dir, **self.options}

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.oracle.parameters())


class RefinedSegmenter(StagedSegmenter):
    """``base`` followed by oracle refinement of its class probabilities (``predict`` is their argmax)."""

    def __init__(
        self, base: Segmenter, oracle: QualityOracle | LocalQualityOracle | str | Path, **refine_options: Any
    ) -> None:
        super().__init__(base, [OracleStage(oracle, **refine_options)], name=f"{base.name}+oracle")
        self.refine_options = dict(refine_options)
