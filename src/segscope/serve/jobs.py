"""Background jobs for the web page: queued, running with progress, cancellable, timed out.

A job is a function ``work(job) -> result`` run on a small thread pool, so no request waits on a slow
method. The page polls :meth:`Job.snapshot`. Work that has steps (the oracle's gradient ascent) reports
``progress`` in [0, 1] and calls :meth:`Job.checkpoint`, which raises :class:`Cancelled` once the job is
cancelled or past its deadline; one-call methods (a classical algorithm, a network's forward pass) report
no fraction, and a cancel or timeout there discards their result when the call returns.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from segscope.errors import DataError, UserError

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL = ("done", "failed", "cancelled")


class Cancelled(Exception):
    """Raised inside a job's work by :meth:`Job.checkpoint` once the job is cancelled or timed out."""


@dataclass
class Job:
    job_id: str
    title: str
    timeout_s: float
    state: str = "queued"
    progress: float | None = None  # None: no fraction known (a one-call method)
    message: str = ""
    result: Any = None
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def checkpoint(self, progress: float | None = None) -> None:
        """Record ``progress`` and raise :class:`Cancelled` if the job should stop."""
        if progress is not None:
            self.progress = min(max(float(progress), 0.0), 1.0)
        self.expire()
        if self.cancel_event.is_set():
            raise Cancelled(self.message or "cancelled")

    def expire(self) -> None:
        """Past its deadline while queued or running: fail it with a timeout message."""
        if self.state in ("queued", "running") and time.monotonic() - self.created > self.timeout_s:
            self._finish("failed", f"timed out after {self.timeout_s:.0f} s")
            self.cancel_event.set()

    def cancel(self) -> None:
        if self.state in ("queued", "running"):
            self._finish("cancelled", "cancelled")
            self.cancel_event.set()

    def _finish(self, state: str, message: str, result: Any = None) -> None:
        """Move to a final state once: a cancel racing the end of the work keeps whichever came first."""
        with self._lock:
            if self.state in FINAL:
                return
            self.state, self.message, self.result, self.finished = state, message, result, time.monotonic()

    def snapshot(self) -> dict[str, Any]:
        """The JSON the page polls (without the result: the app adds its public form)."""
        self.expire()
        now = self.finished or time.monotonic()
        return {
            "job_id": self.job_id,
            "title": self.title,
            "state": self.state,
            "progress": self.progress,
            "message": self.message,
            "elapsed_s": round(now - (self.started or self.created), 2),
        }


class JobManager:
    """Runs jobs on ``workers`` threads; keeps the last ``keep`` jobs for polling."""

    def __init__(self, *, workers: int = 1, timeout_s: float = 300.0, keep: int = 256) -> None:
        self.timeout_s = float(timeout_s)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segscope-job")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._keep = keep

    def submit(self, title: str, work: Callable[[Job], Any]) -> Job:
        job = Job(f"j{next(self._ids):06d}", title, self.timeout_s)
        with self._lock:
            self._jobs[job.job_id] = job
            while len(self._jobs) > self._keep:
                self._jobs.popitem(last=False)
        self._pool.submit(self._run, job, work)
        return job

    def finished(self, title: str, result: Any) -> Job:
        """A job that is already done (a cached result): the page handles it like any other."""
        job = Job(f"j{next(self._ids):06d}", title, self.timeout_s, progress=1.0)
        job._finish("done", "cached", result)
        with self._lock:
            self._jobs[job.job_id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
        job.expire()
        with job._lock:
            if job.state != "queued":  # cancelled or timed out in the queue
                return
            job.state, job.started = "running", time.monotonic()
        try:
            result = work(job)
        except Cancelled:
            return  # state and message were set by cancel() or expire()
        except (UserError, DataError, ValueError) as exc:
            job._finish("failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return
        except Exception as exc:  # noqa: BLE001 - a method bug: one line for the page, details in the log
            traceback.print_exc()
            job._finish("failed", f"internal error in {job.title}: {type(exc).__name__}: {exc}"[:300])
            return
        job.expire()
        if job.cancel_event.is_set():
            return  # cancelled or timed out while the one-call method ran: its result is dropped
        job.progress = 1.0 if job.progress is not None else None
        job._finish("done", "", result)

    def shutdown(self) -> None:
        for job in list(self._jobs.values()):
            job.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
