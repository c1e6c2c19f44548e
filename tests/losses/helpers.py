"""Tiny hand-checkable inputs shared by the loss tests."""

from __future__ import annotations

import numpy as np
import torch

# One image, 2 classes, 1x3 pixels. Softmax probabilities chosen as round numbers (logits = log p).
PROBS = np.array([[0.8, 0.4, 0.3], [0.2, 0.6, 0.7]])  # (C, W): class 0 row, class 1 row
LABELS = np.array([0, 1, 0])


def logits_from_probs(probs: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``(1, C, 1, W)`` logits whose softmax is ``probs`` (``(C, W)``, columns summing to 1)."""
    return torch.tensor(np.log(probs), dtype=dtype).reshape(1, probs.shape[0], 1, probs.shape[1])


def target_from_labels(labels: np.ndarray | list[int]) -> torch.Tensor:
    """``(1, 1, W)`` int64 target."""
    return torch.tensor(np.asarray(labels), dtype=torch.int64).reshape(1, 1, -1)


def tiny() -> tuple[torch.Tensor, torch.Tensor]:
    """The shared 1x3-pixel example as float64 logits (requiring grad) and its target."""
    return logits_from_probs(PROBS).requires_grad_(), target_from_labels(LABELS)


def random_case(
    n: int = 2, c: int = 3, h: int = 5, w: int = 6, *, seed: int = 0, ignore: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random float64 logits and a target with every class present and a few ignored (255) pixels."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    target = torch.randint(0, c, (n, h, w), generator=g)
    target.view(-1)[:c] = torch.arange(c)
    if ignore:
        target[:, 0, -2:] = 255
    return logits, target
