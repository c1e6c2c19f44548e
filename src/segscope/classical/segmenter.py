"""The Segmenter wrapper shared by classical methods: parameter tuning on the training split, polarity
learning for binary data, and process-pool prediction over many images."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from segscope.errors import UserError
from segscope.segmenter import Segmenter


def to_grey(image: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` uint8 -> ``(H, W)`` float in [0, 1] (luminance for colour)."""
    if image.ndim == 3 and image.shape[2] == 3:
        from skimage.color import rgb2gray

        return rgb2gray(image)
    return (image[..., 0] if image.ndim == 3 else image).astype(np.float64) / 255.0


class ClassicalSegmenter(Segmenter):
    """A binary classical method: ``segment(grey, **params) -> bool foreground`` plus tuning.

    ``fit`` tries every combination of ``param_grid`` (and both polarities: is the object bright or dark?)
    on up to ``tune_images`` training images and keeps the best by mean IoU, within ``time_budget_s``.
    Options given by the user are fixed and not tuned.
    """

    family = "classical"
    param_grid: dict[str, list[Any]] = {}
    segment: Callable[..., np.ndarray]

    def __init__(
        self, num_classes: int = 2, *, foreground: int = 1, tune_images: int = 6, **options: Any
    ) -> None:
        if num_classes != 2:
            raise UserError(
                f"{self.name} segments one foreground class; the dataset has {num_classes} classes"
            )
        unknown = set(options) - set(self.param_grid) - {"invert"}
        if unknown:
            raise UserError(
                f"{self.name}: unknown options {sorted(unknown)} (known: {sorted(self.param_grid)}, invert)"
            )
        super().__init__(num_classes, **options)
        self.foreground = foreground
        self.tune_images = tune_images
        self.params: dict[str, Any] = (
            {k: v[0] for k, v in self.param_grid.items()} | {"invert": False} | options
        )

    def candidates(self) -> list[dict[str, Any]]:
        grid = {k: ([self.options[k]] if k in self.options else v) for k, v in self.param_grid.items()}
        grid["invert"] = [self.options["invert"]] if "invert" in self.options else [False, True]
        keys = list(grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]

    def fit(
        self, train, val=None, *, time_budget_s=None, out_dir=None, progress=True, **_
    ) -> ClassicalSegmenter:
        from segscope.metrics import ConfusionMatrix

        n = min(self.tune_images, len(train))
        pick = np.linspace(0, len(train) - 1, n).round().astype(int)
        data = [(to_grey(train.load_image(i)), train.load_mask(i)) for i in pick]
        deadline = time.perf_counter() + (time_budget_s or float("inf"))
        best, best_score = self.params, -1.0
        self.history = []
        for params in self.candidates():
            cm = ConfusionMatrix(2, train.ignore_index)
            for grey, mask in data:
                cm.update(self._labels(grey, params), mask)
            score = cm.mean_iou()
            self.history.append({"trial": len(self.history) + 1, **params, "train_mean_iou": score})
            if score > best_score:
                best, best_score = params, score
            if time.perf_counter() > deadline:
                break
        self.params = best
        if out_dir is not None:
            self.save(out_dir)
        return self

    def _labels(self, grey: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        p = dict(params)
        invert = p.pop("invert")
        fg = type(self).segment(1.0 - grey if invert else grey, **p)
        return np.where(fg, self.foreground, 1 - self.foreground).astype(np.int64)

    def predict(self, image: np.ndarray) -> np.ndarray:
        return self._labels(to_grey(image), self.params)

    def predict_many(self, images: list[np.ndarray], *, workers: int = 1) -> list[np.ndarray]:
        if workers <= 1 or len(images) < 2:
            return [self.predict(im) for im in images]
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(self.predict, images, chunksize=max(1, len(images) // (4 * workers))))

    def state(self) -> dict[str, Any]:
        return {**super().state(), "params": self.params}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ClassicalSegmenter:
        seg = cls(state["num_classes"], **state.get("options", {}))
        seg.params = dict(state["params"])
        return seg
