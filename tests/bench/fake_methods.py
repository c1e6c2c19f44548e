"""Test-only methods for the bench tests, under names no real method uses.

They are registered only inside :func:`registered` (the bench and report test packages wrap their tests
in it), so other test packages see the built-in registry. Their builders are module-level functions:
the bench sends them to its worker processes. Each fit appends a line to ``out_dir/fits.log`` so a test
can count how often a cell was fitted, and ``state()`` records the images the method saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from segscope.registry import REGISTRY, Entry
from segscope.segmenter import Segmenter

MEAN = "test_bench_mean_threshold"
DARKER = "test_bench_darker"
BROKEN = "test_bench_broken"
LEVELS = "test_bench_grey_levels"


class MeanThreshold(Segmenter):
    """Foreground where the first channel exceeds the training images' mean grey value (+ ``shift``)."""

    name = MEAN
    task = "binary"
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


def build_mean(num_classes: int = 2, **options) -> MeanThreshold:
    """Test-only: threshold at the training images' mean grey value."""
    return MeanThreshold(num_classes, **options)


def build_darker(num_classes: int = 2, **options) -> Darker:
    """Test-only: a threshold 40 grey levels too low."""
    return Darker(num_classes, **options)


def build_broken(num_classes: int = 2, **options) -> Broken:
    """Test-only: always fails."""
    return Broken(num_classes, **options)


def build_levels(num_classes: int = 2, **options) -> GreyLevels:
    """Test-only: equal-width grey-level bins."""
    return GreyLevels(num_classes, **options)


ENTRIES = {
    MEAN: (build_mean, MeanThreshold),
    DARKER: (build_darker, Darker),
    BROKEN: (build_broken, Broken),
    LEVELS: (build_levels, GreyLevels),
}


@contextmanager
def registered() -> Iterator[None]:
    """Register the test-only methods for the duration of the block, then remove them again.

    The registry has no public way to unregister, so this patches its table and lets
    :class:`pytest.MonkeyPatch` undo it.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name, (builder, segmenter) in ENTRIES.items():
            patch.setitem(REGISTRY._entries, name, Entry(name, builder, segmenter))
        yield
