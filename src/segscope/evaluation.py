"""Run a fitted Segmenter over a labelled dataset and score it with the evaluator of its task.

Semantic and binary methods are scored by :class:`~segscope.metrics.Evaluator` (confusion-matrix scores,
boundary F, and on binary data pixel and Rand error) against the dataset's label maps; instance methods by
:class:`~segscope.metrics.instance_evaluator.InstanceEvaluator` (COCO mask AP, symmetric best Dice, |DiC|,
Rand error of the instance map) against its instances. Which metrics exist, and their direction, is
:mod:`segscope.metrics.specs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from segscope.data.dataset import SegmentationDataset
from segscope.errors import UserError
from segscope.metrics.specs import headline_metrics
from segscope.segmenter import Segmenter


def binary_foreground(dataset: SegmentationDataset) -> int | None:
    """The foreground class of a binary dataset (class 1), or ``None`` for multi-class data."""
    return 1 if dataset.num_classes == 2 else None


def evaluate_segmenter(
    segmenter: Segmenter,
    dataset: SegmentationDataset,
    *,
    progress: bool = True,
    keep_predictions: int | set[str] = 0,
    on_prediction: Callable[[str, np.ndarray, np.ndarray], None] | None = None,
) -> dict[str, Any]:
    """Predict every image of ``dataset`` and return the result of the evaluator of ``segmenter.task``.

    Adds ``task``, ``seconds_per_image`` (inference time) and the outputs asked for by
    ``keep_predictions`` (the first N images, or a set of image stems) under ``"predictions"`` (for
    overlays; a stem -> output dict when stems were given; instance output as its instance-id map).
    ``on_prediction(stem, image, prediction)``, if given, is called with every image and its label map
    (instance output as its instance-id map) after it is scored, outside the timed inference.
    """
    instance = segmenter.task == "instance"
    if instance:
        from segscope.metrics.instance_evaluator import InstanceEvaluator

        if not hasattr(dataset, "load_instances") or getattr(dataset, "task", "semantic") != "instance":
            raise UserError(
                f"{segmenter.name} is an instance method; {dataset.root or dataset.name} has no instance "
                "masks (an instance layout: images/ + instances/)"
            )
        evaluator = InstanceEvaluator()
    else:
        from segscope.metrics import Evaluator

        volume = getattr(dataset, "ndim", 2) == 3  # surface distances in the volume's voxel spacing
        evaluator = Evaluator(
            dataset.num_classes,
            dataset.ignore_index,
            dataset.classes,
            foreground=binary_foreground(dataset),
            spacing=getattr(dataset, "spacing", None) if volume else None,
        )
    kept: list[np.ndarray] = []
    kept_by_stem: dict[str, np.ndarray] = {}
    seconds = 0.0
    for i in tqdm(range(len(dataset)), desc=f"evaluate {segmenter.name}", disable=not progress, leave=False):
        image = dataset.load_image(i)
        target = dataset.load_instances(i) if instance else dataset.load_mask(i, image_shape=image.shape)
        t0 = time.perf_counter()
        output = segmenter.predict(image)
        seconds += time.perf_counter() - t0
        evaluator.add(output, target, name=dataset.stems[i])
        pred = output.to_label_map() if instance else output
        if on_prediction is not None:
            on_prediction(dataset.stems[i], image, pred)
        if isinstance(keep_predictions, set):
            if dataset.stems[i] in keep_predictions:
                kept_by_stem[dataset.stems[i]] = pred
        elif len(kept) < keep_predictions:
            kept.append(pred)
    result = evaluator.result()
    result["task"] = segmenter.task
    result["seconds_per_image"] = seconds / max(len(dataset), 1)
    if isinstance(keep_predictions, set):
        result["predictions"] = kept_by_stem
    elif keep_predictions:
        result["predictions"] = kept
    return result


def format_metrics_table(result: dict[str, Any]) -> str:
    """A plain-text table of the headline metrics and per-class IoU."""
    lines = []
    for key in headline_metrics():
        if key in result and result[key] is not None:
            lines.append(f"{key:<22}{result[key]:.4f}")
    if isinstance(result.get("iou"), dict):
        lines.append("")
        lines.append(f"{'class':<22}{'IoU':>8}{'Dice':>8}")
        for name, v in result["iou"].items():
            dice = result.get("dice", {}).get(name, float("nan"))
            lines.append(f"{name:<22}{v:>8.4f}{dice:>8.4f}")
    return "\n".join(lines)
