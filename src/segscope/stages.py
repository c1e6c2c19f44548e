"""Post-processing stages: declared steps after a method's prediction, saved in its run directory.

A :class:`Stage` either refines class scores (``uses_proba``: the quality-oracle refinement) or a label map
(morphological clean-up). :class:`StagedSegmenter` runs a base Segmenter and then its stages; it saves the
stages in the ``stages`` section of ``segmenter.json``, so :func:`segscope.load`, ``bench``, export and a
web page rebuild the very same predictor. Stage kinds register themselves with :func:`register_stage`
(``oracle`` in :mod:`segscope.oracle.stage`, ``postprocess`` in :mod:`segscope.classical.stage`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from segscope.errors import UserError
from segscope.prompts import Prompt
from segscope.run_config import RunConfig
from segscope.segmenter import Segmenter
from segscope.types import LabelMap

STAGE_KINDS: dict[str, type[Stage]] = {}


def register_stage(cls: type[Stage]) -> type[Stage]:
    """Class decorator: make ``cls`` buildable from its saved state by its ``kind``."""
    if cls.kind in STAGE_KINDS:
        raise ValueError(f"stage kind {cls.kind!r} is already registered")
    STAGE_KINDS[cls.kind] = cls
    return cls


class Stage:
    """One post-processing step. Subclasses set ``kind`` and implement one of the two ``refine_*``."""

    kind: ClassVar[str] = ""
    uses_proba: ClassVar[bool] = False

    def refine_proba(self, image: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """``(K, *spatial)`` class scores -> refined scores (stages with ``uses_proba``)."""
        raise TypeError(f"{type(self).__name__} refines label maps, not scores")

    def refine_labels(self, image: np.ndarray, labels: LabelMap) -> LabelMap:
        """Label map -> refined label map (stages without ``uses_proba``)."""
        raise TypeError(f"{type(self).__name__} refines scores, not label maps")

    def check(self, base: Segmenter) -> None:
        """Raise :class:`UserError` if this stage cannot follow ``base`` (class count, task)."""
        if base.task == "instance":
            raise UserError(f"stage {self.kind} refines semantic output; {base.name} is an instance method")

    def state(self) -> dict[str, Any]:
        """``{"kind": ..., **options}``: what :func:`build_stage` rebuilds it from."""
        return {"kind": self.kind}

    @property
    def num_parameters(self) -> int:
        return 0


def build_stage(state: dict[str, Any]) -> Stage:
    """A stage from its saved ``{"kind": ..., **options}``."""
    options = dict(state)
    kind = options.pop("kind", None)
    if kind not in STAGE_KINDS:
        raise UserError(f"unknown stage kind {kind!r}; known: {', '.join(sorted(STAGE_KINDS)) or 'none'}")
    try:
        return STAGE_KINDS[kind](**options)
    except TypeError as exc:
        raise UserError(f"stage {kind}: bad option ({exc})") from None


class StagedSegmenter(Segmenter):
    """``base`` followed by ``stages``: score stages first (on ``base.predict_proba``, then argmax), then
    label-map stages. ``fit`` fits the base (stages are fitted beforehand, e.g. an oracle on training
    images only)."""

    def __init__(self, base: Segmenter, stages: Sequence[Stage], *, name: str | None = None) -> None:
        stages = list(stages)
        kinds = [s.uses_proba for s in stages]
        if kinds != sorted(kinds, reverse=True):
            raise UserError("score stages (oracle) must come before label-map stages (postprocess)")
        for stage in stages:
            stage.check(base)
        super().__init__(base.num_classes)
        self.base, self.stages = base, stages
        self.name = name or "+".join([base.name, *(s.kind for s in stages)])
        self.family = base.family
        self.history = base.history

    @property
    def task(self) -> str:  # type: ignore[override]  (the base's, per instance)
        return self.base.task

    @property
    def ndim(self) -> int:  # type: ignore[override]
        return self.base.ndim

    def fit(self, train, val=None, *, time_budget_s=None, out_dir=None, progress=True) -> StagedSegmenter:
        self.base.fit(train, val, time_budget_s=time_budget_s, out_dir=out_dir, progress=progress)
        self.history = self.base.history
        if out_dir is not None:
            self.save(out_dir)
        return self

    def _scores(self, image: np.ndarray) -> np.ndarray | None:
        score_stages = [s for s in self.stages if s.uses_proba]
        if not score_stages:
            return None
        proba = self.base.predict_proba(image)
        for stage in score_stages:
            proba = stage.refine_proba(image, proba)
        return proba

    @property
    def prompts(self) -> tuple[str, ...]:  # type: ignore[override]
        """The base's prompt kinds when only label-map stages follow it (score stages read
        ``predict_proba``, which takes no prompt)."""
        return () if any(s.uses_proba for s in self.stages) else tuple(self.base.prompts)

    def predict(self, image: np.ndarray, *, prompt: Prompt | None = None) -> LabelMap:
        if prompt:
            if not self.prompts:
                raise UserError(
                    f"{self.name} takes no prompt"
                    + (" through its score stages" if self.base.prompts else "")
                )
            labels = self.base.predict(image, prompt=prompt)
            proba = None
        else:
            proba = self._scores(image)
            labels = self.base.predict(image) if proba is None else proba.argmax(0).astype(np.int64)
        for stage in self.stages:
            if not stage.uses_proba:
                labels = stage.refine_labels(image, labels)
        return labels

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        if any(not s.uses_proba for s in self.stages):
            return super().predict_proba(image)  # one-hot of the post-processed labels
        return self._scores(image)

    def run_config(self) -> RunConfig:
        config = self.base.run_config()
        config.stages = [s.state() for s in self.stages]
        return config

    def save(self, run_dir: str | Path) -> Path:
        run_dir = Path(self.base.save(run_dir))
        self.run_config().write(run_dir)
        return run_dir

    @property
    def num_parameters(self) -> int:
        return self.base.num_parameters + sum(s.num_parameters for s in self.stages)
