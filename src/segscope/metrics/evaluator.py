"""One metric suite for every method: global confusion-matrix scores plus per-image scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segscope.metrics.boundary import boundary_f1
from segscope.metrics.confusion import ConfusionMatrix
from segscope.metrics.rand import foreground_rand_error, pixel_error


class Evaluator:
    """Accumulate predictions and targets image by image.

    ``result()`` gives the confusion-matrix scores over all pixels (``pixel_accuracy``,
    ``mean_class_accuracy``, ``mean_iou``, ``fw_iou``, per-class ``iou`` and ``dice``), the mean over
    images of ``boundary_f1`` and, for a binary task (``foreground`` set), of ``pixel_error`` and
    ``rand_error`` (ISBI-style adapted Rand error of the foreground's connected components), plus
    ``per_image``, the list of every image's scores.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = None,
        class_names: Sequence[str] | None = None,
        *,
        foreground: int | None = None,
        boundary_tolerance: float = 2.0,
    ) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = (
            list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        )
        self.foreground = foreground
        self.boundary_tolerance = boundary_tolerance
        self.confusion = ConfusionMatrix(num_classes, ignore_index)
        self.per_image: list[dict[str, Any]] = []

    def add(self, pred: np.ndarray, target: np.ndarray, name: str | None = None) -> dict[str, Any]:
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
        cm = ConfusionMatrix(self.num_classes, self.ignore_index).update(pred, target)
        self.confusion.merge(cm)
        row: dict[str, Any] = {
            "name": name if name is not None else str(len(self.per_image)),
            "pixel_accuracy": cm.pixel_accuracy(),
            "mean_iou": cm.mean_iou(),
            "boundary_f1": boundary_f1(
                pred,
                target,
                tolerance=self.boundary_tolerance,
                num_classes=self.num_classes,
                ignore_index=self.ignore_index,
            ),
        }
        if self.foreground is not None:
            row["pixel_error"] = pixel_error(pred, target, self.ignore_index)
            row["rand_error"] = foreground_rand_error(pred, target, self.foreground)
        self.per_image.append(row)
        return row

    def result(self) -> dict[str, Any]:
        out = self.confusion.summary(self.class_names)
        out["confusion_matrix"] = self.confusion.matrix.tolist()
        for key in ("boundary_f1", "pixel_error", "rand_error"):
            values = [r[key] for r in self.per_image if key in r]
            if values:
                out[key] = float(np.nanmean(values))
        out["num_images"] = len(self.per_image)
        out["per_image"] = list(self.per_image)
        return out
