"""Losses: pure functions in :mod:`segscope.losses.functional`, composed by a spec like ``"ce+dice"``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from segscope.errors import UserError
from segscope.losses import functional

LOSSES = ("ce", "dice", "focal")
WEIGHT_SCHEMES = ("inverse", "median_freq", "enet")


def class_weights(pixel_counts: np.ndarray, scheme: str) -> torch.Tensor:
    """Per-class loss weights from pixel counts.

    ``inverse``: ``1 / f_c`` normalised to mean 1; ``median_freq``: ``median(f) / f_c`` (Eigen & Fergus
    2015, used by SegNet); ``enet``: ``1 / ln(1.02 + f_c)`` (Paszke et al. 2016). Absent classes get 0.
    """
    counts = np.asarray(pixel_counts, dtype=np.float64)
    present = counts > 0
    freq = counts / max(counts.sum(), 1.0)
    w = np.zeros_like(freq)
    if scheme == "inverse":
        w[present] = 1.0 / freq[present]
        w /= w[present].mean()
    elif scheme == "median_freq":
        w[present] = np.median(freq[present]) / freq[present]
    elif scheme == "enet":
        w[present] = 1.0 / np.log(1.02 + freq[present])
    else:
        raise UserError(f"unknown class weighting {scheme!r}; choose from {', '.join(WEIGHT_SCHEMES)}")
    return torch.tensor(w, dtype=torch.float32)


def build_loss(
    spec: str,
    *,
    ignore_index: int = 255,
    weight: torch.Tensor | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A loss from a ``+``-separated spec, e.g. ``"ce"``, ``"ce+dice"``, ``"focal+dice"`` (terms summed)."""
    terms = [t.strip() for t in spec.split("+") if t.strip()]
    unknown = [t for t in terms if t not in LOSSES]
    if not terms or unknown:
        raise UserError(f"unknown loss {spec!r}; combine {', '.join(LOSSES)} with '+'")

    def term(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        if name == "ce":
            return lambda lo, t: functional.cross_entropy(
                lo, t, weight=_to(weight, lo), ignore_index=ignore_index
            )
        if name == "focal":
            return lambda lo, t: functional.focal_loss(
                lo, t, weight=_to(weight, lo), ignore_index=ignore_index
            )
        return lambda lo, t: functional.soft_dice_loss(lo, t, ignore_index=ignore_index)

    fns = [term(t) for t in terms]

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(f(logits, target) for f in fns)  # type: ignore[return-value]

    loss.spec = spec  # type: ignore[attr-defined]
    return loss


def _to(w: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    return None if w is None else w.to(like.device)


__all__ = ["LOSSES", "WEIGHT_SCHEMES", "build_loss", "class_weights", "functional"]
