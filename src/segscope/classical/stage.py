"""The ``postprocess`` stage: morphological clean-up of any method's label map (binary or multi-class).

``-o unet.postprocess='[remove_small_objects, {closing: {radius: 2}}]'`` appends it to a deep model; a
classical method's own ``postprocess`` option runs inside its tuning loop instead (its parameters are
tuned with the clean-up in place).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segscope.classical.morphology import POSTPROCESSORS, postprocess
from segscope.classical.preprocess import parse_steps
from segscope.errors import UserError
from segscope.segmenter import Segmenter
from segscope.stages import Stage, register_stage
from segscope.types import LabelMap


@register_stage
class PostprocessStage(Stage):
    """Morphological ``steps`` (see :func:`segscope.classical.morphology.postprocess`) on the label map;
    on 2-class output they act on class ``foreground`` (default 1)."""

    kind = "postprocess"

    def __init__(self, steps: Any, foreground: int | None = None) -> None:
        try:
            parse_steps(steps, POSTPROCESSORS, "postprocess")
        except ValueError as exc:
            raise UserError(f"stage postprocess: {exc}") from None
        self.steps, self.foreground = steps, foreground

    def check(self, base: Segmenter) -> None:
        super().check(base)
        if self.foreground is None and base.num_classes == 2:
            self.foreground = 1

    def refine_labels(self, image: np.ndarray, labels: LabelMap) -> LabelMap:
        background = None if self.foreground is None else 1 - self.foreground
        return postprocess(labels, self.steps, foreground=self.foreground, background=background).astype(
            np.int64
        )

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "steps": self.steps, "foreground": self.foreground}
