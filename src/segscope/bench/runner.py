"""Run many methods under one protocol: the same splits, preprocessing, metrics and time budget.

A *cell* is one method on one fold. Each cell fits on the fold's training part only, predicts every test
image and is scored by :class:`segscope.metrics.Evaluator`; its result goes to
``BENCH_DIR/cells/<method>/<fold>/result.json`` (or ``error.json`` if it failed), written atomically.
Finished cells are never re-run, so an interrupted bench resumes where it stopped, and one failing
method leaves the others untouched. Classical cells run in a process pool; deep cells run one at a time
with every torch thread.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from segscope.data import SegmentationDataset, open_dataset
from segscope.engine.validation import Split, load_splits, make_splits, save_splits
from segscope.errors import UserError
from segscope.io import write_json_atomic


@dataclass
class BenchPlan:
    """What to run: dataset, methods, validation scheme and budgets (saved as ``bench.json``)."""

    data: str
    methods: list[str]
    cv: str | None = "kfold:5"
    split: str | None = None  # "train/val": fit on one split of the dataset, test on another
    format: str = "auto"
    time_budget_s: float = 600.0
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    holdout: float = 0.0
    gallery: int = 4
    workers: int = 0  # 0: one per core
    seed: int = 0
    command: str = ""


def default_methods(num_classes: int) -> list[str]:
    """A sensible default comparison for binary or multi-class data (only registered names)."""
    from segscope.methods import list_models

    wanted = (
        ["otsu", "watershed", "slic", "graphcut", "unet_small"]
        if num_classes == 2
        else ["slic", "alpha_expansion", "unet_small", "unet_resnet18"]
    )
    available = set(list_models())
    return [m for m in wanted if m in available]


def expand_methods(spec: str, num_classes: int) -> list[str]:
    from segscope.methods import list_models

    if spec in ("", "default"):
        return default_methods(num_classes)
    if spec == "all-semantic":
        return list_models(task="semantic") + (list_models(task="binary") if num_classes == 2 else [])
    if spec == "all-instance":
        return list_models(task="instance")
    if spec == "all-classical":
        return list_models(family="classical")
    names = [m.strip() for m in spec.split(",") if m.strip()]
    known = set(list_models())
    for m in names:
        if m not in known:
            from segscope.registry import REGISTRY

            REGISTRY.get(m)  # raises with the close matches
    return names


# -- folds ---------------------------------------------------------------------------------------
def fold_datasets(plan: BenchPlan, out: Path) -> list[tuple[Split, SegmentationDataset, SegmentationDataset]]:
    """``(split, train part, test part)`` per fold; the splits are saved once and reused on resume."""
    if plan.split:
        train_name, _, test_name = plan.split.partition("/")
        if not test_name:
            raise UserError(f"--split {plan.split}: expected TRAIN/TEST split names, e.g. train/val")
        train = open_dataset(plan.data, train_name, format=plan.format)
        test = open_dataset(plan.data, test_name, format=plan.format)
        return [
            (Split(f"{train_name}-{test_name}", list(range(len(train))), list(range(len(test)))), train, test)
        ]
    ds = open_dataset(plan.data, None, format=plan.format)
    path = out / "splits.json"
    if path.exists():
        spec, n, splits = load_splits(path)
        if spec != plan.cv or n != len(ds):
            raise UserError(f"{path}: saved splits are {spec} over {n} images; use a new --out for {plan.cv}")
    else:
        groups = ds.groups if plan.cv and plan.cv.startswith("group") else None
        splits = make_splits(len(ds), plan.cv or "kfold:5", groups=groups, seed=plan.seed)
        save_splits(path, splits, spec=plan.cv or "kfold:5", n=len(ds))
    return [(s, ds.subset(s.train), ds.subset(s.test)) for s in splits]


def applicable(method: str, num_classes: int) -> str | None:
    """``None`` if ``method`` can run on data with ``num_classes`` classes, else the reason it cannot."""
    from segscope.registry import REGISTRY

    entry = REGISTRY.get(method)
    if entry.task == "binary" and num_classes != 2:
        return f"{method} is a binary method; the dataset has {num_classes} classes"
    if entry.task == "instance":
        return f"{method} is an instance method; bench scores semantic label maps"
    return None


# -- one cell ------------------------------------------------------------------------------------
def run_cell(
    method: str,
    options: dict[str, Any],
    fold: str,
    train: SegmentationDataset,
    test: SegmentationDataset,
    cell_dir: Path,
    *,
    time_budget_s: float,
    holdout: float,
    gallery: list[str],
    seed: int,
    threads: int,
) -> dict[str, Any]:
    """Fit ``method`` on ``train``, score it on ``test``; write ``result.json`` or ``error.json``."""
    import torch

    from segscope.evaluation import evaluate_segmenter
    from segscope.methods import create_segmenter
    from segscope.visualize import write_png

    torch.set_num_threads(max(1, threads))
    cell_dir.mkdir(parents=True, exist_ok=True)
    try:
        val = None
        if holdout > 0 and len(train) > 2:
            order = np.random.default_rng(seed).permutation(len(train))
            k = max(1, round(len(train) * holdout))
            train, val = train.subset(sorted(order[k:])), train.subset(sorted(order[:k]))
        channels = train.load_image(0).shape[2]
        seg = create_segmenter(method, num_classes=train.num_classes, in_channels=channels, **options)
        t0 = time.perf_counter()
        seg.fit(train, val, time_budget_s=time_budget_s, progress=False)
        fit_s = time.perf_counter() - t0
        result = evaluate_segmenter(seg, test, progress=False, keep_predictions=set(gallery))
        for stem, pred in result.pop("predictions").items():
            write_png(cell_dir / "gallery" / f"{stem}.png", pred.astype(np.uint8))
        record = {
            "method": method,
            "fold": fold,
            "status": "ok",
            "fit_seconds": fit_s,
            "seconds_per_image": result.pop("seconds_per_image"),
            "num_parameters": seg.num_parameters,
            "per_image": result.pop("per_image"),
            "metrics": result,
            "history": seg.history,
            "state": _jsonable(seg.state()),
        }
        write_json_atomic(cell_dir / "result.json", record)
        return record
    except Exception as exc:  # isolate the failure: this cell reports it, the others go on
        record = {
            "method": method,
            "fold": fold,
            "status": "error",
            "message": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300],
            "traceback": traceback.format_exc(),
        }
        write_json_atomic(cell_dir / "error.json", record)
        return record


def _jsonable(obj: Any) -> Any:
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        return json.loads(json.dumps(obj, default=str))


# -- the bench -----------------------------------------------------------------------------------
def run_bench(plan: BenchPlan, out_dir: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Run every pending cell of ``plan`` into ``out_dir``; write results and ``report.html``."""
    from segscope.bench.report import collect_results, render_bench_report
    from segscope.registry import REGISTRY

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folds = fold_datasets(plan, out)
    reference = folds[0][1]
    skipped = {m: why for m in plan.methods if (why := applicable(m, reference.num_classes))}
    methods = [m for m in plan.methods if m not in skipped]
    gallery = folds[0][2].stems[: plan.gallery]
    write_json_atomic(
        out / "bench.json",
        {**asdict(plan), "skipped": skipped, "gallery": gallery, "environment": environment()},
    )
    cores = os.cpu_count() or 1
    workers = plan.workers or cores
    pending = [
        (m, s, tr, te)
        for m in methods
        for s, tr, te in folds
        if not (out / "cells" / m / s.name / "result.json").exists()
    ]
    deep = [c for c in pending if REGISTRY.get(c[0]).family == "deep"]
    classical = [c for c in pending if REGISTRY.get(c[0]).family != "deep"]
    bar = tqdm(total=len(pending), desc="bench cells", disable=not progress)

    def kwargs(method: str, threads: int) -> dict[str, Any]:
        return dict(
            time_budget_s=plan.time_budget_s,
            holdout=plan.holdout,
            gallery=gallery,
            seed=plan.seed,
            threads=threads,
        )

    if classical and workers > 1:
        import multiprocessing

        spawn = multiprocessing.get_context("spawn")  # no fork after torch has started its thread pool
        with ProcessPoolExecutor(max_workers=min(workers, len(classical)), mp_context=spawn) as pool:
            futures = [
                pool.submit(
                    run_cell,
                    m,
                    plan.options.get(m, {}),
                    s.name,
                    tr,
                    te,
                    out / "cells" / m / s.name,
                    **kwargs(m, 1),
                )
                for m, s, tr, te in classical
            ]
            for f in as_completed(futures):
                _note(bar, f.result())
    else:
        for m, s, tr, te in classical:
            _note(
                bar,
                run_cell(
                    m, plan.options.get(m, {}), s.name, tr, te, out / "cells" / m / s.name, **kwargs(m, cores)
                ),
            )
    for m, s, tr, te in deep:
        _note(
            bar,
            run_cell(
                m, plan.options.get(m, {}), s.name, tr, te, out / "cells" / m / s.name, **kwargs(m, cores)
            ),
        )
    bar.close()
    results = collect_results(out)
    render_bench_report(out)
    return results


def _note(bar, record: dict[str, Any]) -> None:
    bar.update(1)
    if record["status"] != "ok":
        bar.write(f"  {record['method']} / {record['fold']} failed: {record['message']}")


def environment() -> dict[str, Any]:
    """Machine and versions, so a bench can be reproduced."""
    import numpy
    import skimage
    import torch

    from segscope import __version__

    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gb = float("nan")
    return {
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit-image": skimage.__version__,
        "segscope": __version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
