"""Any 2-D method on volumes, slice by slice: the baseline every 3-D method is compared with.

:class:`SliceWiseSegmenter` wraps a fitted-or-not 2-D :class:`~segscope.segmenter.Segmenter` (classical or
deep, with its stages) so that it declares ``ndim = 3``: ``fit`` trains the 2-D method on every z-slice of
the training volumes (:meth:`segscope.data.volume_dataset.VolumeDataset.slices`) and ``predict`` segments a
``(D, H, W, C)`` volume one ``(H, W, C)`` slice at a time and stacks the label maps. ``bench`` wraps 2-D
methods this way on volume data (:func:`segscope.factory.create_segmenter` with ``ndim=3``), so 2-D and 3-D
methods meet under the same folds and metrics; the run directory records ``slice_wise`` and
:func:`segscope.load` rebuilds the wrapper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segscope.errors import UserError
from segscope.run_config import RunConfig
from segscope.segmenter import Segmenter
from segscope.types import LabelMap


class SliceWiseSegmenter(Segmenter):
    """A 2-D ``base`` applied to each z-slice of a volume."""

    ndim = 3  # type: ignore[misc]  (per instance: the wrapped method made volumetric)

    def __init__(self, base: Segmenter) -> None:
        if base.ndim != 2:
            raise UserError(f"{base.name} is already a {base.ndim}-D method")
        if base.task == "instance":
            raise UserError(f"{base.name}: instance methods are not run slice by slice (3-D objects)")
        super().__init__(base.num_classes)
        self.base = base
        self.name = base.name
        self.family = base.family
        self.options = base.options

    @property
    def task(self) -> str:  # type: ignore[override]
        return self.base.task

    @property
    def history(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.base.history

    @history.setter
    def history(self, value: list[dict[str, Any]]) -> None:
        if hasattr(self, "base"):
            self.base.history = value

    def fit(self, train, val=None, *, time_budget_s=None, out_dir=None, progress=True) -> SliceWiseSegmenter:
        """Fit the 2-D method on the slices of ``train`` (``val``'s slices for its model selection)."""
        slices = train.slices() if hasattr(train, "slices") else train
        val_slices = val.slices() if val is not None and hasattr(val, "slices") else val
        self.base.fit(slices, val_slices, time_budget_s=time_budget_s, out_dir=out_dir, progress=progress)
        if out_dir is not None:
            self.run_config().write(out_dir)  # the base wrote its own 2-D config there
        return self

    def predict(self, image: np.ndarray) -> LabelMap:
        """``(D, H, W, C)`` (or ``(D, H, W)``) volume -> ``(D, H, W)`` int64 labels."""
        return np.stack([np.asarray(self.base.predict(s), np.int64) for s in _slices(image)])

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """``(num_classes, D, H, W)`` float32: each slice's ``(num_classes, H, W)`` scores."""
        return np.stack([self.base.predict_proba(s) for s in _slices(image)], axis=1)

    @property
    def num_parameters(self) -> int:
        return self.base.num_parameters

    def run_config(self) -> RunConfig:
        config = self.base.run_config()
        config.method = {**config.method, "ndim": 3, "slice_wise": True}
        return config

    def save(self, run_dir: str | Path) -> Path:
        run_dir = Path(self.base.save(run_dir))
        self.run_config().write(run_dir)
        return run_dir


def _slices(volume: np.ndarray) -> list[np.ndarray]:
    volume = np.asarray(volume)
    if volume.ndim == 3:
        volume = volume[..., None]
    if volume.ndim != 4:
        raise UserError(f"expected a (D, H, W, C) volume, got shape {volume.shape}")
    return [volume[z] for z in range(volume.shape[0])]
