"""Run a fitted Segmenter over a labelled dataset and score it with one metric suite."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from segscope.data.dataset import SegmentationDataset
from segscope.segmenter import Segmenter

HEADLINE_METRICS = (
    "mean_iou",
    "pixel_accuracy",
    "mean_class_accuracy",
    "fw_iou",
    "boundary_f1",
    "pixel_error",
    "rand_error",
)


def binary_foreground(dataset: SegmentationDataset) -> int | None:
    """The foreground class of a binary dataset (class 1), or ``None`` for multi-class data."""
    return 1 if dataset.num_classes == 2 else None


def evaluate_segmenter(
    segmenter: Segmenter,
    dataset: SegmentationDataset,
    *,
    progress: bool = True,
    keep_predictions: int | set[str] = 0,
) -> dict[str, Any]:
    """Predict every image of ``dataset`` and return the :class:`~segscope.metrics.Evaluator` result.

    Adds ``seconds_per_image`` (inference time) and the label maps asked for by ``keep_predictions`` (the
    first N images, or a set of image stems) under ``"predictions"`` (for overlays; a stem -> map dict
    when stems were given).
    """
    from segscope.metrics import Evaluator

    evaluator = Evaluator(
        dataset.num_classes, dataset.ignore_index, dataset.classes, foreground=binary_foreground(dataset)
    )
    kept: list[np.ndarray] = []
    kept_by_stem: dict[str, np.ndarray] = {}
    seconds = 0.0
    for i in tqdm(range(len(dataset)), desc=f"evaluate {segmenter.name}", disable=not progress, leave=False):
        image = dataset.load_image(i)
        target = dataset.load_mask(i, image_shape=image.shape)
        t0 = time.perf_counter()
        pred = segmenter.predict(image)
        seconds += time.perf_counter() - t0
        evaluator.add(pred, target, name=dataset.stems[i])
        if isinstance(keep_predictions, set):
            if dataset.stems[i] in keep_predictions:
                kept_by_stem[dataset.stems[i]] = pred
        elif len(kept) < keep_predictions:
            kept.append(pred)
    result = evaluator.result()
    result["seconds_per_image"] = seconds / max(len(dataset), 1)
    if isinstance(keep_predictions, set):
        result["predictions"] = kept_by_stem
    elif keep_predictions:
        result["predictions"] = kept
    return result


def format_metrics_table(result: dict[str, Any]) -> str:
    """A plain-text table of the headline metrics and per-class IoU."""
    lines = []
    for key in HEADLINE_METRICS:
        if key in result and result[key] is not None:
            lines.append(f"{key:<22}{result[key]:.4f}")
    if isinstance(result.get("iou"), dict):
        lines.append("")
        lines.append(f"{'class':<22}{'IoU':>8}{'Dice':>8}")
        for name, v in result["iou"].items():
            dice = result.get("dice", {}).get(name, float("nan"))
            lines.append(f"{name:<22}{v:>8.4f}{dice:>8.4f}")
    return "\n".join(lines)
