"""Test-only methods for the bench tests, registered under names no real method uses.

Importing this module registers them; the bench's worker processes import it too (it is the builders'
module), so they also work in the process pool. Each fit appends a line to ``out_dir/fits.log`` so a
test can count how often a cell was fitted, and ``state()`` records the images the method saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segscope import register
from segscope.registry import REGISTRY
from segscope.segmenter import Segmenter

MEAN = "test_bench_mean_threshold"
DARKER = "test_bench_darker"
BROKEN = "test_bench_broken"
LEVELS = "test_bench_grey_levels"


class MeanThreshold(Segmenter):
    """Foreground where the first channel exceeds the training images' mean grey value (+ ``shift``)."""

    name = MEAN
    shift = 0.0

    def fit(self, train, val=None, *, time_budget_s=None, out_dir=None, progress=True):
        _log_fit(out_dir, self.name)
        self.train_stems, self.val_stems = list(train.stems), list(val.stems) if val is not None else []
        self.level = float(np.mean([train.load_image(i).mean() for i in range(len(train))])) + self.shift
        self.level += float(self.options.get("offset", 0.0))
        self.history = [{"trial": 0, "level": self.level}]
        return self

    def predict(self, image):
        return (image[..., 0] > self.level).astype(np.int64)

    def state(self):
        return {**super().state(), "train_stems": self.train_stems, "val_stems": self.val_stems}


class Darker(MeanThreshold):
    """A worse threshold: 40 grey levels too low, so much of the background becomes foreground."""

    name = DARKER
    shift = -40.0


class Broken(MeanThreshold):
    """Always raises in ``fit`` (after logging the attempt)."""

    name = BROKEN

    def fit(self, train, val=None, *, time_budget_s=None, out_dir=None, progress=True):
        _log_fit(out_dir, self.name)
        raise RuntimeError("this method always fails\nsecond line of the message")


class GreyLevels(Segmenter):
    """Multi-class: class k where the grey value falls in the k-th of equal-width bins of 0..255."""

    name = LEVELS

    def fit(self, train, val=None, *, time_budget_s=None, out_dir=None, progress=True):
        _log_fit(out_dir, self.name)
        return self

    def predict(self, image):
        return np.minimum(image[..., 0].astype(np.int64) * self.num_classes // 256, self.num_classes - 1)


def _log_fit(out_dir, name: str) -> None:
    if out_dir is not None:
        with open(Path(out_dir) / "fits.log", "a") as log:
            log.write(name + "\n")


def fits(cell_dir: Path) -> int:
    """How many times the cell in ``cell_dir`` was fitted."""
    log = Path(cell_dir) / "fits.log"
    return len(log.read_text().splitlines()) if log.is_file() else 0


def _builder(cls):
    def build(num_classes: int = 2, **options):
        return cls(num_classes, **options)

    build.__doc__ = cls.__doc__
    return build


for _cls, _task in ((MeanThreshold, "binary"), (Darker, "binary"), (Broken, "binary"), (GreyLevels, "semantic")):
    if _cls.name not in REGISTRY:
        register(_cls.name, family="classical", task=_task)(_builder(_cls))
