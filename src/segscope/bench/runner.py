"""Run many methods under one protocol: the same splits, preprocessing, metrics and time budget.

A *cell* is one method on one fold (:mod:`segscope.bench.cell`). :func:`run_bench` draws the splits once
(``BENCH_DIR/splits.json``, reused on every resume so that a method added later sees the same folds),
runs every cell that has no result yet and writes ``results.json``, ``leaderboard.csv`` and
``report.html``. With ``plan.oracle`` set, each fold's quality oracle is trained first
(:mod:`segscope.bench.oracle`), on that fold's training part only.

Scheduling: classical cells run first, in a process pool of ``workers`` processes (one torch thread
each); deep cells (registry family ``"deep"``) then run one at a time in this process with every core,
so a deep method's time budget means the same whatever else is in the bench.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from segscope.bench.cell import CellTask, is_finished, record_failure, run_cell, torch_threads
from segscope.bench.oracle import fold_oracle_dir, train_fold_oracles
from segscope.bench.plan import BenchPlan, check_protocol, not_applicable
from segscope.data.dataset import SegmentationDataset
from segscope.data.formats import open_dataset
from segscope.data.splits import (
    Split,
    fold_datasets,
    load_splits,
    make_splits,
    named_splits,
    save_splits,
)
from segscope.errors import UserError
from segscope.io import write_json_atomic
from segscope.registry import Entry

Fold = tuple[Split, SegmentationDataset, SegmentationDataset]


def run_bench(plan: BenchPlan, out_dir: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Run every pending cell of ``plan`` into ``out_dir`` and write the results (``results.json``,
    ``leaderboard.csv``); :func:`segscope.report.render_bench_report` turns them into ``report.html``.

    Returns the aggregated results (see :func:`segscope.bench.results.collect_results`).
    Raises :class:`UserError` when ``out_dir`` holds a bench run with another protocol.
    """
    import json

    from segscope.bench.results import collect_results
    from segscope.factory import ensure_registered, get_entry

    ensure_registered()
    plan = replace(plan, data=str(Path(plan.data).resolve()), cv=None if plan.split else plan.cv)
    plan.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = json.loads((out / "bench.json").read_text()) if (out / "bench.json").is_file() else None
    if saved is not None:
        check_protocol(saved, plan, str(out / "bench.json"))
    folds = prepare_folds(plan, out)
    num_classes = folds[0][1].num_classes
    if plan.primary in ("pixel_error", "rand_error") and num_classes != 2:
        raise UserError(f"--primary {plan.primary} needs binary data; the dataset has {num_classes} classes")
    data_task = getattr(folds[0][1], "task", "semantic")
    data_ndim = getattr(folds[0][1], "ndim", 2)
    skipped = {m: why for m in plan.methods if (why := not_applicable(m, num_classes, data_task, data_ndim))}
    methods = [m for m in plan.methods if m not in skipped]
    gallery = (saved or {}).get("gallery")  # chosen once: resumed cells already saved these images
    if gallery is None:
        gallery = choose_gallery(folds, plan.gallery)
    record = {
        **asdict(plan),
        "skipped": skipped,
        "gallery": gallery,
        "classes": folds[0][1].classes,
        "ndim": data_ndim,
        "tasks": {m: get_entry(m).task for m in methods},
        "folds": {s.name: {"train": len(s.train), "test": len(s.test)} for s, _, _ in folds},
        "environment": environment(),
    }
    write_json_atomic(out / "bench.json", record)  # the protocol, before the first (long) step
    cores = os.cpu_count() or 1
    if plan.oracle is not None:  # one oracle per fold, on its training part only, before any cell
        with torch_threads(plan.threads or cores):
            record["oracles"] = train_fold_oracles(plan, out, folds, ndim=data_ndim)
        write_json_atomic(out / "bench.json", record)
    tasks = [
        CellTask(
            method=m,
            fold=s.name,
            options=dict(plan.options.get(m, {})),
            train=train,
            test=test,
            cell_dir=out / "cells" / m / s.name,
            time_budget_s=plan.time_budget_s,
            holdout=plan.holdout,
            seed=plan.seed,
            gallery=tuple(stem for stem in gallery if stem in set(test.stems)),
            threads=plan.threads or cores,
            oracle_dir=fold_oracle_dir(out, s.name) if plan.oracle is not None else None,
            guard_refine_oracle=plan.split is None,
        )
        for m in methods
        for s, train, test in folds
        if not is_finished(out / "cells" / m / s.name, plan.options.get(m, {}), plan.time_budget_s)
    ]
    deep = [t for t in tasks if get_entry(t.method).family == "deep"]
    classical = [t for t in tasks if get_entry(t.method).family != "deep"]
    bar = tqdm(total=len(tasks), desc="bench", unit="cell", disable=not progress)
    try:
        run_in_pool(classical, plan.workers or cores, bar)
        for task in deep:
            bar.set_postfix_str(f"{task.method} / {task.fold}")
            _note(bar, run_cell(task))
    finally:
        bar.close()
    return collect_results(out)


def prepare_folds(plan: BenchPlan, out: Path) -> list[Fold]:
    """The bench's folds: loaded from ``out/splits.json`` when present, else drawn and saved there."""
    path = out / "splits.json"
    if plan.split:
        spec = f"split:{plan.split}"
        splits = named_splits(plan.data, plan.split, format=plan.format, **plan.open_options)
        n = len(splits[0].train) + len(splits[0].test)
    else:
        spec = plan.cv or "kfold:5"
        dataset = open_dataset(plan.data, None, format=plan.format, **plan.open_options)
        n = len(dataset)
        splits = None
    if path.is_file():
        saved = load_splits(path)
        if saved.spec != spec or saved.n != n or saved.seed not in (None, plan.seed):
            raise UserError(
                f"{path}: saved splits are {saved.spec} over {saved.n} images (seed {saved.seed}), "
                f"not {spec} over {n} (seed {plan.seed}); use a new --out"
            )
        splits = saved.splits
    else:
        if splits is None:
            splits = make_splits(dataset, spec, seed=plan.seed, max_splits=plan.max_splits)
        save_splits(path, splits, spec=spec, n=n, seed=plan.seed)
    return fold_datasets(splits, plan.data, format=plan.format, **plan.open_options)


def choose_gallery(folds: list[Fold], count: int) -> list[str]:
    """``count`` test images spread evenly over all the folds' test images (stems, in fold order)."""
    stems = list(dict.fromkeys(stem for _, _, test in folds for stem in test.stems))
    if count <= 0 or not stems:
        return []
    picks = np.linspace(0, len(stems) - 1, min(count, len(stems))).round().astype(int)
    return [stems[i] for i in dict.fromkeys(picks.tolist())]


def run_in_pool(tasks: list[CellTask], workers: int, bar: tqdm) -> None:
    """Run classical cells in ``workers`` processes (in this process when one is enough)."""
    if not tasks:
        return
    single = [replace(t, threads=1) for t in tasks]
    if workers <= 1 or len(tasks) == 1:
        for task in single:
            bar.set_postfix_str(f"{task.method} / {task.fold}")
            _note(bar, run_cell(task))
        return
    entries = _shippable_entries({t.method for t in tasks})
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=_process_context(entries),
        initializer=_init_worker,
        initargs=(entries,),
    )
    try:
        futures = {pool.submit(run_cell, t): t for t in single}
        for future in as_completed(futures):
            try:
                record = future.result()
            except Exception as exc:  # the worker died (killed, out of memory): only its cells fail
                record = record_failure(futures[future], exc)
            _note(bar, record)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _process_context(entries: list[Entry]) -> multiprocessing.context.BaseContext:
    """Never plain fork (torch may have started threads). A fork server imports segscope once and
    forks every worker from it, so workers start in milliseconds; where there is none, spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    preload = [
        "segscope.factory",
        "segscope.classical",
        "segscope.models",
        "segscope.evaluation",
        "segscope.bench.cell",
    ]
    preload += sorted({e.builder.__module__ for e in entries})  # "__main__": a script's own methods
    context.set_forkserver_preload(preload)
    return context


def _shippable_entries(methods: Iterable[str]) -> list[Entry]:
    """Registry entries of ``methods`` that a worker must register itself: those registered at run time
    (a worker starts with the built-in methods only). Their builders must be module-level functions."""
    import pickle

    from segscope.registry import REGISTRY

    entries = []
    for name in sorted(methods):
        entry = REGISTRY.get(name)
        if entry.builder.__module__.startswith("segscope."):
            continue
        try:
            pickle.dumps(entry)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise UserError(
                f"method {name!r}: its builder cannot be sent to worker processes ({exc}); "
                "define it at module level or use --workers 1"
            ) from None
        entries.append(entry)
    return entries


def _init_worker(entries: list[Entry]) -> None:
    """One thread per worker process (the pool already uses every core), and the methods registered."""
    import cv2
    from threadpoolctl import threadpool_limits

    from segscope.factory import ensure_registered
    from segscope.registry import REGISTRY

    cv2.setNumThreads(1)
    threadpool_limits(1)  # BLAS / OpenMP pools of numpy, scipy, scikit-learn
    ensure_registered()
    for e in entries:
        if e.name not in REGISTRY:
            REGISTRY.add(e)


def _note(bar: tqdm, record: dict[str, Any]) -> None:
    bar.update(1)
    if record["status"] != "ok" and not bar.disable:
        bar.write(f"  {record['method']} / {record['fold']} failed: {record['message']}", file=sys.stderr)


def environment() -> dict[str, Any]:
    """Machine and library versions, so a bench can be reproduced."""
    from importlib.metadata import PackageNotFoundError, version

    import numpy
    import scipy
    import skimage
    import sklearn
    import torch

    try:
        __version__ = version("segscope")
    except PackageNotFoundError:
        __version__ = "unknown"

    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        memory_gb = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "segscope": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "scikit-learn": sklearn.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
