"""One metric suite for every method: global confusion-matrix scores plus per-image scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segscope.metrics.boundary import boundary_f1
from segscope.metrics.confusion import ConfusionMatrix
from segscope.metrics.rand import _to_numpy, foreground_rand_error, pixel_error
from segscope.metrics.specs import metric, per_image_means
from segscope.metrics.surface import surface_scores


class Evaluator:
    """Score label maps image by image and summarise them.

    Parameters
    ----------
    num_classes : number of classes ``K``.
    ignore_index : target value left out of every score, or ``None``.
    class_names : ``K`` names keying the per-class dicts (default ``"0" .. "K-1"``).
    foreground : for a binary task, the foreground label (ISBI 2012: 1 = cell interior); adds
        ``pixel_error`` and ``rand_error`` (adapted Rand error of the foreground's face-connected
        components, 4-connected in 2-D and 6-connected in 3-D,
        :func:`~segscope.metrics.foreground_rand_error`).
    boundary_tolerance : pixel (voxel) tolerance of :func:`~segscope.metrics.boundary_f1`; it ignores
        ``spacing``.
    spacing : voxel size per axis of every image (e.g. ``(z, y, x)`` in mm) for the surface distances;
        default 1 (distances in voxels).
    surface : add ``hd95`` and ``surface_distance`` (:func:`~segscope.metrics.surface_scores`: HD95 and
        average symmetric surface distance, each averaged over the foreground classes ``1 .. K-1`` present
        in prediction or target, ``nan`` skipped) to each image's scores; ``None`` (default): for 3-D
        ``(D, H, W)`` images only, so 2-D results keep their keys unless ``surface=True``.

    Notes
    -----
    :meth:`result` holds the confusion-matrix scores over all pixels of all images
    (``pixel_accuracy``, ``mean_class_accuracy``, ``mean_iou``, ``fw_iou``, per-class ``iou`` and
    ``dice``, ``confusion_matrix`` as nested lists), the mean over images of ``boundary_f1`` (and of
    ``pixel_error`` and ``rand_error`` when ``foreground`` is set, of ``hd95`` and ``surface_distance``
    when some image had them, ``nan`` skipped), ``num_images`` and ``per_image``, the
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
        spacing: Sequence[float] | None = None,
        surface: bool | None = None,
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
        self.spacing = (
            None if spacing is None else tuple(np.asarray(spacing, np.float64).reshape(-1).tolist())
        )
        self.surface = surface
        self.confusion = ConfusionMatrix(self.num_classes, ignore_index)
        self.per_image: list[dict[str, Any]] = []

    def add(self, pred: Any, target: Any, name: str | None = None) -> dict[str, Any]:
        """Score one image's label map ``pred`` against ``target`` (equal ``(H, W)`` or ``(D, H, W)``
        shapes, numpy or torch) and return its scores: ``name``, ``pixel_accuracy``, ``mean_iou``,
        ``boundary_f1``; with ``foreground`` set, ``pixel_error`` and ``rand_error``; with surface scores
        on (see the class parameters), ``hd95`` and ``surface_distance``."""
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
        if self.foreground is not None:
            row.update(_foreground_overlap(image, self.foreground))
        if self.surface or (self.surface is None and pred.ndim == 3):
            scores = surface_scores(
                pred, target, self.num_classes, spacing=self.spacing, ignore_index=self.ignore_index
            )
            row["hd95"] = scores["mean_hd95"]
            row["surface_distance"] = scores["mean_surface_distance"]
        self.per_image.append(row)
        return row

    def result(self) -> dict[str, Any]:
        """The summary described in the class notes (plain Python values, ready for JSON)."""
        out = self.confusion.summary(self.class_names)
        out["confusion_matrix"] = self.confusion.matrix.tolist()
        for key in per_image_means("semantic"):  # boundary_f1, pixel/Rand error, surface distances
            spec = metric(key)
            if spec.binary_only and self.foreground is None:
                continue
            if spec.surface and not (self.surface or any(key in row for row in self.per_image)):
                continue
            values = np.array([row[key] for row in self.per_image if key in row], np.float64)
            values = values[~np.isnan(values)]
            out[key] = float(values.mean()) if values.size else float("nan")
        if self.foreground is not None:
            out.update(_foreground_overlap(self.confusion, self.foreground))
        out["num_images"] = len(self.per_image)
        out["per_image"] = [dict(row) for row in self.per_image]
        return out


def _foreground_overlap(confusion: ConfusionMatrix, foreground: int) -> dict[str, float]:
    """``foreground_dice`` and ``foreground_iou`` of class ``foreground`` in ``confusion``."""
    return {
        "foreground_dice": float(confusion.dice()[foreground]),
        "foreground_iou": float(confusion.iou()[foreground]),
    }
