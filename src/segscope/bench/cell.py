"""One bench cell: one method fitted on one fold's training part and scored on its test part.

The cell writes ``result.json`` (metrics, per-image metrics, confusion matrix, fit and inference time,
parameter count, training history, tuned state; with the bench's oracle on, each per-image record also
holds the fold oracle's label-free ``predicted_quality``) or, if anything in it raised, ``error.json`` (a
one-line message and the traceback), both atomically, plus the label maps of the gallery images as PNGs.
A cell counts as finished when its ``result.json`` exists and was made with the same options and budget.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segscope.bench.oracle import QualityRecorder, resolve_refine_oracle
from segscope.data.dataset import SegmentationDataset
from segscope.data.splits import holdout_split
from segscope.io import write_json_atomic

RESULT = "result.json"
ERROR = "error.json"
GALLERY = "gallery"


@dataclass(frozen=True)
class CellTask:
    """Everything a worker process needs to run one cell (picklable)."""

    method: str
    fold: str
    options: dict[str, Any]
    train: SegmentationDataset
    test: SegmentationDataset
    cell_dir: Path
    time_budget_s: float
    holdout: float
    seed: int
    gallery: tuple[str, ...]
    threads: int
    oracle_dir: Path | None = None  # the fold's quality oracle (BenchPlan.oracle): scores every prediction
    guard_refine_oracle: bool = False  # cross-validation: refuse a refine_oracle trained on test images


def cell_key(options: dict[str, Any], time_budget_s: float) -> dict[str, Any]:
    """What a finished cell must have been run with to be reused (JSON-normalised)."""
    return json.loads(json.dumps({"options": options, "time_budget_s": float(time_budget_s)}, default=str))


def is_finished(cell_dir: Path, options: dict[str, Any], time_budget_s: float) -> bool:
    """True if ``cell_dir`` holds a result made with these options and budget (so it is not re-run)."""
    path = Path(cell_dir) / RESULT
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return False
    if "options" not in record:  # written by the first bench runner, which did not record them
        return True
    return cell_key(record.get("options", {}), record.get("time_budget_s", -1)) == cell_key(
        options, time_budget_s
    )


def run_cell(task: CellTask) -> dict[str, Any]:
    """Fit ``task.method`` on the training part, score it on the test part; never raises.

    Returns the record written to ``result.json`` (``status`` ``"ok"``) or ``error.json``
    (``status`` ``"error"``).
    """
    from segscope.evaluation import evaluate_segmenter
    from segscope.factory import create_segmenter

    cell_dir = Path(task.cell_dir)
    cell_dir.mkdir(parents=True, exist_ok=True)
    for stale in (cell_dir / RESULT, cell_dir / ERROR):
        stale.unlink(missing_ok=True)
    base = {"method": task.method, "fold": task.fold, **cell_key(task.options, task.time_budget_s)}
    try:
        with torch_threads(task.threads):
            # -o METHOD.refine_oracle=DIR adds an oracle-refinement stage (segscope.factory.split_options);
            # refine_oracle=fold is the fold's own oracle
            options = resolve_refine_oracle(
                task.options, task.fold, task.oracle_dir, task.test.stems, task.guard_refine_oracle
            )
            train, val = holdout_split(task.train, task.holdout, task.seed)
            channels = int(train.load_image(0).shape[-1])
            # on volumes a 2-D method runs slice by slice
            segmenter = create_segmenter(
                task.method,
                num_classes=train.num_classes,
                in_channels=channels,
                ndim=getattr(train, "ndim", 2),
                **options,
            )
            t0 = time.perf_counter()
            segmenter.fit(train, val, time_budget_s=task.time_budget_s, out_dir=cell_dir, progress=False)
            fit_seconds = time.perf_counter() - t0
            if not (cell_dir / "segmenter.json").exists():
                segmenter.save(cell_dir)  # every cell is a run that segscope.load(cell_dir) can reopen
            recorder = None
            if task.oracle_dir is not None:
                recorder = QualityRecorder(task.oracle_dir, instance=segmenter.task == "instance")
            kept = set(task.gallery)
            result = evaluate_segmenter(
                segmenter, task.test, progress=False, keep_predictions=kept, on_prediction=recorder
            )
            if recorder is not None:
                recorder.annotate(result["per_image"])
        for stem, labels in result.pop("predictions").items():
            _write_labels(cell_dir / GALLERY / f"{stem}.png", labels)
        record = _jsonable(
            {
                **base,
                "status": "ok",
                "train_images": len(train),
                "val_images": list(val.stems) if val is not None else [],
                "test_images": len(task.test),
                "fit_seconds": fit_seconds,
                "seconds_per_image": result.pop("seconds_per_image"),
                "num_parameters": int(segmenter.num_parameters),
                "per_image": result.pop("per_image"),
                "metrics": result,
                "history": segmenter.history,
                "state": segmenter.state(),
                "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
        )
        write_json_atomic(cell_dir / RESULT, record)
    except Exception as exc:  # isolate the failure: this cell reports it, the others go on
        record = record_failure(task, exc)
    return record


def record_failure(task: CellTask, exc: BaseException) -> dict[str, Any]:
    """Write ``error.json`` for ``task`` (a one-line message and the traceback) and return its record."""
    text = str(exc).strip().splitlines()
    message = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    record = {
        "method": task.method,
        "fold": task.fold,
        **cell_key(task.options, task.time_budget_s),
        "status": "error",
        "message": message[:300],
        "traceback": "".join(traceback.format_exception(exc)),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json_atomic(Path(task.cell_dir) / ERROR, record)
    return record


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Set torch's intra-op thread count for a block and restore it (no lasting global change)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _write_labels(path: Path, labels: np.ndarray) -> None:
    """A gallery label map as PNG; of a volume, its middle z-slice."""
    from segscope.visualize import display_slice, write_png

    labels = display_slice(labels)
    dtype = np.uint8 if int(labels.max(initial=0)) < 256 else np.uint16
    write_png(path, labels.astype(dtype))


def read_labels(path: Path) -> np.ndarray:
    """Read a gallery label map written by a cell as ``(H, W)`` int64."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im).astype(np.int64)


def _jsonable(obj: Any) -> Any:
    return strict_json(json.loads(json.dumps(obj, default=_fallback)))


def strict_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by ``None``, so the file is standard JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    return obj


def _fallback(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
