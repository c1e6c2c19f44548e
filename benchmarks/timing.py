"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``, so this module
is importable as ``timing``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_ms(
    fn: Callable[[torch.Tensor], object],
    x: torch.Tensor,
    repeats: int,
    *,
    warmup: int = 1,
    autocast: bool = False,
) -> float:
    """Median wall time of ``fn(x)`` in milliseconds over ``repeats`` calls after ``warmup`` calls, under
    ``torch.inference_mode`` (and bf16 CPU autocast when ``autocast``)."""
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for _ in range(warmup):
            fn(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


class Logits(torch.nn.Module):
    """torchvision's segmentation models return ``{"out": ...}``; time and compare the tensor."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out["out"] if isinstance(out, dict) else out
