"""The one interface every segscope method implements, classical or deep.

``bench``, ``evaluate``, ``predict`` and the report only ever talk to a :class:`Segmenter`:

* ``fit(train, val)`` learns (a deep model) or tunes its few parameters (a classical method) on the
  training split only; ``val`` is for early stopping / model selection and may be ``None``.
* ``predict(image)`` maps one ``(H, W, C)`` uint8 image to an ``(H, W)`` int64 label map whose values
  are the dataset's class indices.
* ``predict_proba(image)`` gives ``(num_classes, H, W)`` float32 scores (one-hot by default).
* ``save(run_dir)`` / :func:`segscope.load` round-trip a fitted method.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from segscope.data.dataset import SegmentationDataset


class Segmenter(ABC):
    """Base class: subclasses set ``name`` and implement ``fit``/``predict``."""

    name: str = "segmenter"
    family: str = "classical"

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
    def predict(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, C)`` uint8 image -> ``(H, W)`` int64 label map."""

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """``(num_classes, H, W)`` float32 class scores; one-hot of :meth:`predict` by default."""
        labels = self.predict(image)
        return np.eye(self.num_classes, dtype=np.float32)[labels].transpose(2, 0, 1)

    def predict_many(self, images: list[np.ndarray], *, workers: int = 1) -> list[np.ndarray]:
        """Predict a list of images; classical methods override this with a process pool."""
        return [self.predict(im) for im in images]

    # -- persistence --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON-serialisable description that :meth:`from_state` rebuilds the method from."""
        return {"name": self.name, "num_classes": self.num_classes, "options": self.options}

    def save(self, run_dir: str | Path) -> Path:
        from segscope.io import write_json_atomic

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "segmenter.json", {"family": self.family, **self.state()})
        return run_dir

    @property
    def num_parameters(self) -> int:
        """Number of learned scalars (0 for an untrained classical method)."""
        return 0

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({self.name!r}, num_classes={self.num_classes}{opts})"


def read_segmenter_json(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "segmenter.json"
    if not path.is_file():
        from segscope.errors import UserError

        raise UserError(f"{run_dir}: not a segscope run (no segmenter.json)")
    return json.loads(path.read_text())
