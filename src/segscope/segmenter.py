"""The one interface every segscope method implements, classical or deep.

``bench``, ``evaluate``, ``predict`` and the report only ever talk to a :class:`Segmenter`:

* ``fit(train, val)`` learns (a deep model) or tunes its few parameters (a classical method) on the
  training split only; ``val`` is for early stopping / model selection and may be ``None``.
* ``predict(image)`` maps one ``(*spatial, C)`` uint8 image (``(H, W, C)``, or ``(D, H, W, C)`` for a
  volume) to the output type of the method's ``task`` (:mod:`segscope.types`): a :data:`LabelMap` of
  the dataset's class indices for ``"semantic"`` and ``"binary"``, :class:`~segscope.types.Instances`
  for ``"instance"``.
* Interactive methods (``prompts`` non-empty) also take ``predict(image, prompt=Prompt(...))``: a box
  and/or foreground / background points (:mod:`segscope.prompts`).
* ``predict_proba(image)`` gives ``(num_classes, H, W)`` float32 scores (one-hot by default).
* ``save(run_dir)`` / :func:`segscope.load` round-trip a fitted method through its run config
  (:mod:`segscope.run_config`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from segscope.types import Instances, LabelMap

if TYPE_CHECKING:
    from segscope.data.dataset import SegmentationDataset
    from segscope.factory import Sections
    from segscope.registry import Entry
    from segscope.run_config import RunConfig


class Segmenter(ABC):
    """Base class: subclasses set ``name``, ``task`` and ``ndim`` and implement ``fit``/``predict``.

    ``task`` (``"semantic"``, ``"binary"`` or ``"instance"``) and ``ndim`` (2 for images, 3 for volumes)
    are class attributes: the registry, ``bench``'s planner, the evaluator and the report read them.
    """

    name: str = "segmenter"
    family: str = "classical"
    task: ClassVar[str] = "semantic"
    ndim: ClassVar[int] = 2
    # the prompt kinds (``"box"``, ``"points"``; :class:`segscope.prompts.Prompt`) that
    # ``predict(image, prompt=...)`` accepts; empty: the method takes no prompt
    prompts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, num_classes: int = 2, **options: Any) -> None:
        self.num_classes = int(num_classes)
        self.options: dict[str, Any] = dict(options)
        self.history: list[dict[str, Any]] = []  # per-epoch or per-trial log, for the report

    # -- learning -----------------------------------------------------------------------------
    @abstractmethod
    def fit(
        self,
        train: SegmentationDataset,
        val: SegmentationDataset | None = None,
        *,
        time_budget_s: float | None = None,
        out_dir: str | Path | None = None,
        progress: bool = True,
    ) -> Segmenter:
        """Learn or tune on ``train``; return ``self``."""

    @abstractmethod
    def predict(self, image: np.ndarray) -> LabelMap | Instances:
        """``(*spatial, C)`` uint8 image -> a :data:`LabelMap` (semantic, binary) or :class:`Instances`."""

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """``(num_classes, *spatial)`` float32 class scores; one-hot of :meth:`predict` by default."""
        labels = self.predict(image)
        if self.task == "instance":
            labels = labels.to_semantic()
        return np.moveaxis(np.eye(self.num_classes, dtype=np.float32)[labels], -1, 0)

    def predict_many(self, images: list[np.ndarray], *, workers: int = 1) -> list[np.ndarray]:
        """Predict a list of images; classical methods override this with a process pool."""
        return [self.predict(im) for im in images]

    # -- construction and persistence -------------------------------------------------------
    @classmethod
    def create(cls, entry: Entry, num_classes: int, in_channels: int, sections: Sections) -> Segmenter:
        """Build registry ``entry``'s method (the factory calls this; deep adapters override it).

        The default calls the builder with the ``model`` options; a builder's ``TypeError`` or
        ``ValueError`` (a bad option) becomes one line naming the method."""
        from segscope.errors import UserError

        try:
            return entry.builder(num_classes=num_classes, **{**entry.defaults, **sections.model})
        except (TypeError, ValueError) as exc:
            raise UserError(
                f"{entry.name}: bad option ({str(exc).splitlines()[0] if str(exc) else exc})"
            ) from None

    def run_config(self) -> RunConfig:
        """The run directory's config (:mod:`segscope.run_config`); subclasses add their fitted state."""
        from segscope.run_config import RunConfig

        return RunConfig(
            method={"name": self.name, "family": self.family, "task": self.task, "ndim": self.ndim},
            model={"num_classes": self.num_classes, "options": self.options},
            history=self.history,
        )

    @classmethod
    def from_config(cls, config: RunConfig, run_dir: str | Path) -> Segmenter:
        """Rebuild a saved method from its :class:`RunConfig` (and files in ``run_dir``)."""
        seg = cls(config.model["num_classes"], **config.model.get("options", {}))
        seg.history = list(config.history)
        return seg

    def state(self) -> dict[str, Any]:
        """The run config as a JSON-able dict (what ``segmenter.json`` holds; bench cells record it)."""
        return self.run_config().to_dict()

    def save(self, run_dir: str | Path) -> Path:
        """Write ``run_dir/segmenter.json`` (and any weights); :func:`segscope.load` reopens it."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_config().write(run_dir)
        return run_dir

    @property
    def num_parameters(self) -> int:
        """Number of learned scalars (0 for an untrained classical method)."""
        return 0

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({self.name!r}, num_classes={self.num_classes}{opts})"
