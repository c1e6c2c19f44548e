"""Batch prediction over many image files under Ray Data, for a cluster (``pip install 'segscope[ray]'``).

The same outputs as :func:`segscope.inference.batch.predict_files` (``<stem>.png`` and
``<stem>_overlay.png``, written atomically by the same function), with the work spread over a pool of Ray
actors: each loads the run once, then reads, predicts and writes the images of the batches it is given.
Paths are absolute, so on a cluster the run, the images and the output folder must be on a file system
every node sees. Resuming is the same rule: an image whose two outputs exist is not sent to Ray at all.

The actors reopen the run with :func:`segscope.factory.load` (this module sits above ``factory``; the
driver side never needs the method itself, only :class:`~segscope.run_config.RunConfig`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segscope.errors import DataError, UserError
from segscope.inference.batch import BatchSummary, unfinished, write_prediction

RAY_MISSING = "ray is not installed: pip install 'segscope[ray]'"
OK = "ok"
FAILED = "error"


def import_ray():
    """The ``ray`` module, or a one-line :class:`UserError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data]; a bare ray lacks pyarrow)
    except ImportError:
        raise UserError(RAY_MISSING) from None
    return ray


class PredictBatch:
    """The callable class Ray Data runs in each actor: the run is loaded once, in ``__init__``."""

    def __init__(self, run_dir: str, out: str, alpha: float, num_threads: int) -> None:
        import torch

        from segscope.data import default_palette
        from segscope.factory import load

        torch.set_num_threads(max(1, int(num_threads)))
        self.segmenter = load(run_dir)
        self.palette = default_palette(self.segmenter.num_classes)
        self.out, self.alpha = Path(out), alpha

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from segscope.data.images import read_image

        stems, statuses, messages = [], [], []
        for name in batch["path"]:
            path = Path(str(name))
            try:
                image = read_image(path)
                output = self.segmenter.predict(image)
                write_prediction(self.out, path, image, output, self.palette, self.alpha)
                status, message = OK, ""
            except UserError as exc:  # DataError included: a bad file is a row, not a traceback
                status, message = FAILED, str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            stems.append(path.stem)
            statuses.append(status)
            messages.append(message)
        return {"stem": np.array(stems), "status": np.array(statuses), "message": np.array(messages)}


def start_ray(ray, ray_address: str | None, num_cpus: int, *, quiet: bool = False) -> bool:
    """Connect to ``ray_address`` (None: a local Ray with ``num_cpus`` CPUs) unless Ray is already
    initialised; returns whether this call started it (and so should shut it down)."""
    import logging

    if ray.is_initialized():
        return False
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING if quiet else logging.INFO,
    }
    if ray_address is None:
        ray.init(num_cpus=num_cpus, **options)
    else:
        ray.init(address=ray_address, **options)
    return True


def predict_files_ray(
    run_dir: str | Path,
    paths: Sequence[Path],
    out: str | Path,
    *,
    resume: bool = True,
    alpha: float = 0.5,
    batch_size: int = 4,
    concurrency: int = 2,
    num_cpus_per_actor: int = 1,
    ray_address: str | None = None,
    progress: bool = True,
) -> BatchSummary:
    """Write ``<stem>.png`` and ``<stem>_overlay.png`` for every path into ``out`` with Ray Data.

    ``concurrency`` actors, each with ``num_cpus_per_actor`` CPUs (and as many torch threads), predict
    batches of ``batch_size`` paths. With ``resume`` an image whose two outputs exist is skipped.
    ``ray_address`` None starts a local Ray (``concurrency * num_cpus_per_actor`` CPUs) unless one is
    already running; otherwise it is passed to ``ray.init`` (``"auto"``, ``"ray://head:10001"``). A Ray
    started here is shut down at the end, one the caller started is left running. Unreadable images do
    not stop the others: once all are done, a :class:`DataError` names the first (and counts the rest).
    """
    from segscope.run_config import RunConfig

    for name, value in (("batch_size", batch_size), ("concurrency", concurrency)):
        if value < 1:
            raise UserError(f"{name} must be >= 1, got {value}")
    if num_cpus_per_actor <= 0:
        raise UserError(f"num_cpus_per_actor must be > 0, got {num_cpus_per_actor}")
    ray = import_ray()
    RunConfig.read(run_dir)  # a missing or corrupt run is one line here, not an actor's traceback
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = [Path(p).resolve() for p in paths]
    todo = unfinished(out, paths, resume=resume)
    if not todo:
        return BatchSummary(written=0, skipped=len(paths))
    cpus = max(1, round(concurrency * num_cpus_per_actor))
    started = start_ray(ray, ray_address, num_cpus=cpus, quiet=not progress)
    try:
        rows = run_actors(ray, Path(run_dir).resolve(), todo, out, alpha, batch_size, concurrency,
                          num_cpus_per_actor, progress)  # fmt: skip
    finally:
        if started:
            ray.shutdown()
    order = {p.stem: i for i, p in enumerate(todo)}
    failed = sorted((r for r in rows if r["status"] != OK), key=lambda r: order.get(str(r["stem"]), 0))
    if failed:
        first = failed[0]
        more = f"; {len(failed) - 1} more image(s) failed" if len(failed) > 1 else ""
        raise DataError(f"{first['message']}{more} (outputs written so far are kept; rerun to resume)")
    return BatchSummary(written=len(rows), skipped=len(paths) - len(todo))


def run_actors(
    ray,
    run_dir: Path,
    todo: list[Path],
    out: Path,
    alpha: float,
    batch_size: int,
    concurrency: int,
    num_cpus_per_actor: float,
    progress: bool,
) -> list[dict[str, Any]]:
    """One ``(stem, status, message)`` row per path of ``todo``, from a pool of :class:`PredictBatch`."""
    import logging

    context = ray.data.DataContext.get_current()
    shown, context.enable_progress_bars = context.enable_progress_bars, progress
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    if not progress:
        data_logger.setLevel(logging.WARNING)
    try:
        blocks = -(-len(todo) // batch_size)  # one block per batch, so the batches spread over the actors
        dataset = ray.data.from_items([{"path": str(p)} for p in todo], override_num_blocks=blocks)
        predicted = dataset.map_batches(
            PredictBatch,
            fn_constructor_kwargs={
                "run_dir": str(run_dir),
                "out": str(out),
                "alpha": alpha,
                "num_threads": max(1, int(num_cpus_per_actor)),
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(concurrency, blocks)),  # no idle actors
            num_cpus=num_cpus_per_actor,
        )
        return predicted.take_all()
    finally:
        context.enable_progress_bars = shown
        data_logger.setLevel(level)
