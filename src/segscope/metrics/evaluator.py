"""One metric suite for every method: global confusion-matrix scores plus per-image scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segscope.metrics.boundary import boundary_f1
from segscope.metrics.confusion import ConfusionMatrix
from segscope.metrics.rand import _to_numpy, foreground_rand_error, pixel_error
from segscope.metrics.specs import metric, per_image_means


class Evaluator:
    """Score label maps image by image and summarise them.

    Parameters
    ----------
    num_classes : number of classes ``K``.
    ignore_index : target value left out of every score, or ``None``.
    class_names : ``K`` names keying the per-class dicts (default ``"0" .. "K-1"``).
    foreground : for a binary task, the foreground label (ISBI 2012: 1 = cell interior); adds
        ``pixel_error`` and ``rand_error`` (adapted Rand error of the foreground's 4-connected
        components, :func:`~segscope.metrics.foreground_rand_error`).
    boundary_tolerance : pixel tolerance of :func:`~segscope.metrics.boundary_f1`.

    Notes
    -----
    :meth:`result` holds the confusion-matrix scores over all pixels of all images
    (``pixel_accuracy``, ``mean_class_accuracy``, ``mean_iou``, ``fw_iou``, per-class ``iou`` and
    ``dice``, ``confusion_matrix`` as nested lists), the mean over images of ``boundary_f1`` (and of
    ``pixel_error`` and ``rand_error`` when ``foreground`` is set), ``num_images`` and ``per_image``, the
    list of every image's dict from :meth:`add`. Csurka et al. (BMVC 2013) argue for looking at the
    per-image scores as well as the dataset-wide ones: both are kept.

    References
    ----------
    Csurka, Larlus & Perronnin, "What is a good evaluation measure for semantic segmentation?",
    BMVC 2013. Arganda-Carreras et al., Front. Neuroanat. 9:142, 2015 (ISBI 2012 pixel and Rand error).
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = None,
        class_names: Sequence[str] | None = None,
        *,
        foreground: int | None = None,
        boundary_tolerance: float = 2,
    ) -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.class_names = (
            [str(i) for i in range(self.num_classes)] if class_names is None else list(class_names)
        )
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"got {len(self.class_names)} class names for {self.num_classes} classes")
        if foreground is not None and not 0 <= foreground < self.num_classes:
            raise ValueError(f"foreground={foreground} is not a class in [0, {self.num_classes})")
        self.foreground = foreground
        self.boundary_tolerance = boundary_tolerance
        self.confusion = ConfusionMatrix(self.num_classes, ignore_index)
        self.per_image: list[dict[str, Any]] = []

    def add(self, pred: Any, target: Any, name: str | None = None) -> dict[str, Any]:
        """Score one image's label map ``pred`` against ``target`` (equal ``(H, W)`` shapes, numpy or
        torch) and return its scores: ``name``, ``pixel_accuracy``, ``mean_iou``, ``boundary_f1`` and,
        with ``foreground`` set, ``pixel_error`` and ``rand_error``."""
        pred, target = _to_numpy(pred), _to_numpy(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
        image = ConfusionMatrix(self.num_classes, self.ignore_index).update(pred, target)
        self.confusion.merge(image)
        row: dict[str, Any] = {
            "name": str(len(self.per_image)) if name is None else name,
            "pixel_accuracy": image.pixel_accuracy(),
            "mean_iou": image.mean_iou(),
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
            row["rand_error"] = foreground_rand_error(
                pred, target, self.foreground, ignore_index=self.ignore_index
            )
        self.per_image.append(row)
        return row

    def result(self) -> dict[str, Any]:
        """The summary described in the class notes (plain Python values, ready for JSON)."""
        out = self.confusion.summary(self.class_names)
        out["confusion_matrix"] = self.confusion.matrix.tolist()
        for key in per_image_means("semantic"):  # boundary_f1, and pixel/Rand error on binary data
            if metric(key).binary_only and self.foreground is None:
                continue
            values = np.array([row[key] for row in self.per_image], np.float64)
            values = values[~np.isnan(values)]
            out[key] = float(values.mean()) if values.size else float("nan")
        out["num_images"] = len(self.per_image)
        out["per_image"] = [dict(row) for row in self.per_image]
        return out
