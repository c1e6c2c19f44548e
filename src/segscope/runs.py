"""What ``segscope train`` does around ``fit``: validation split, final evaluation, run report."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from segscope.data import SegmentationDataset, available_splits, open_dataset
from segscope.errors import UserError
from segscope.io import write_json_atomic


def train_val_datasets(
    data: str | Path,
    *,
    format: str = "auto",
    split: str | None = None,
    val_split: str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[SegmentationDataset, SegmentationDataset | None]:
    """The training set and a validation set: the dataset's ``val`` split when it has one, otherwise a
    seeded ``val_fraction`` of the training images."""
    train = open_dataset(data, split, format=format)
    splits = available_splits(data, format)
    if val_split is None and "val" in splits and train is not None and split in (None, "train"):
        val_split = "val"
    if val_split is not None:
        return train, open_dataset(data, val_split, format=format)
    if val_fraction <= 0 or len(train) < 2:
        return train, None
    if not 0 < val_fraction < 1:
        raise UserError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(train))
    n_val = max(1, round(len(train) * val_fraction))
    return train.subset(sorted(order[n_val:])), train.subset(sorted(order[:n_val]))


def finish_run(
    segmenter,
    run_dir: Path,
    val: SegmentationDataset | None,
    *,
    command: str,
    progress: bool = True,
    fit_seconds: float = 0.0,
    overlays: int = 4,
) -> dict[str, Any]:
    """Save the segmenter, evaluate on ``val``, write ``metrics.json`` and ``report.html`` in ``run_dir``."""
    from segscope.evaluation import evaluate_segmenter

    segmenter.save(run_dir)
    metrics: dict[str, Any] = {}
    predictions: list[np.ndarray] = []
    if val is not None and val.has_masks:
        metrics = evaluate_segmenter(segmenter, val, progress=progress, keep_predictions=overlays)
        predictions = metrics.pop("predictions", [])
    summary = {
        "method": segmenter.name,
        "fit_seconds": round(fit_seconds, 2),
        "num_parameters": segmenter.num_parameters,
        "command": command,
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "metrics": {k: v for k, v in metrics.items() if k != "per_image"},
        "per_image": metrics.get("per_image", []),
    }
    write_json_atomic(run_dir / "metrics.json", summary)
    from segscope.report import render_run_report

    panels = (
        [(val.stems[i], val.load_image(i), val.load_mask(i), p) for i, p in enumerate(predictions)]
        if val
        else []
    )
    render_run_report(
        run_dir,
        run_dir / "report.html",
        metrics=summary,
        history=segmenter.history,
        overlays=panels,
        palette=val.palette if val is not None else None,
        class_names=val.classes if val is not None else None,
    )
    return summary
