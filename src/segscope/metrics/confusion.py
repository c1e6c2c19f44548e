"""The confusion-matrix core of every semantic metric: one ``bincount``, mergeable across batches and
processes (``torch.distributed.all_reduce`` under DDP)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


class ConfusionMatrix:
    """``matrix[t, p]`` counts pixels of true class ``t`` predicted as ``p``; ``ignore_index`` is skipped.

    ``update`` takes numpy arrays or torch tensors (CPU or CUDA; counted on their device) of any shape.
    Per-class scores are ``nan`` for classes absent from both prediction and target; means are nanmeans.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, pred: Any, target: Any) -> ConfusionMatrix:
        k = self.num_classes
        if isinstance(pred, torch.Tensor) or isinstance(target, torch.Tensor):
            p = torch.as_tensor(pred).reshape(-1).long()
            t = torch.as_tensor(target, device=p.device).reshape(-1).long()
            if p.shape != t.shape:
                raise ValueError(f"prediction has {p.numel()} pixels, target {t.numel()}")
            keep = (t >= 0) & (t < k)
            if self.ignore_index is not None:
                keep &= t != self.ignore_index
            p, t = p[keep], t[keep]
            if p.numel() and (int(p.min()) < 0 or int(p.max()) >= k):
                raise ValueError(f"predicted class outside [0, {k})")
            counts = torch.bincount(t * k + p, minlength=k * k).cpu().numpy()
        else:
            p = np.asarray(pred).reshape(-1).astype(np.int64)
            t = np.asarray(target).reshape(-1).astype(np.int64)
            if p.shape != t.shape:
                raise ValueError(f"prediction has {p.size} pixels, target {t.size}")
            keep = (t >= 0) & (t < k)
            if self.ignore_index is not None:
                keep &= t != self.ignore_index
            p, t = p[keep], t[keep]
            if p.size and (p.min() < 0 or p.max() >= k):
                raise ValueError(f"predicted class outside [0, {k})")
            counts = np.bincount(t * k + p, minlength=k * k)
        self.matrix += counts.reshape(k, k)
        return self

    # -- combining ------------------------------------------------------------------------------
    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge confusion matrices of different sizes")
        self.matrix += other.matrix
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        out = ConfusionMatrix(self.num_classes, self.ignore_index)
        out.matrix = self.matrix.copy()
        return out.merge(other)

    __iadd__ = merge

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the matrix over all processes when ``torch.distributed`` is initialised."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            t = torch.from_numpy(self.matrix)
            if dist.get_backend() == "nccl":
                t = t.cuda()
            dist.all_reduce(t)
            self.matrix = t.cpu().numpy()
        return self

    # -- scores ---------------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def pixel_accuracy(self) -> float:
        return float(np.trace(self.matrix) / self.total) if self.total else float("nan")

    def class_accuracy(self) -> np.ndarray:
        """Recall per class (``nan`` where the class never occurs in the target)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.diag(self.matrix) / self.matrix.sum(1)

    def mean_class_accuracy(self) -> float:
        return _nanmean(self.class_accuracy())

    def iou(self) -> np.ndarray:
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def mean_iou(self) -> float:
        return _nanmean(self.iou())

    def frequency_weighted_iou(self) -> float:
        freq = self.matrix.sum(1) / max(self.total, 1)
        iou = self.iou()
        ok = ~np.isnan(iou)
        return float((freq[ok] * iou[ok]).sum())

    def dice(self) -> np.ndarray:
        """Dice / F1 per class: ``2 TP / (2 TP + FP + FN)``."""
        tp = np.diag(self.matrix).astype(np.float64)
        denom = self.matrix.sum(0) + self.matrix.sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denom > 0, 2 * tp / denom, np.nan)

    def summary(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        return {
            "pixel_accuracy": self.pixel_accuracy(),
            "mean_class_accuracy": self.mean_class_accuracy(),
            "mean_iou": self.mean_iou(),
            "fw_iou": self.frequency_weighted_iou(),
            "iou": {n: float(v) for n, v in zip(names, self.iou())},
            "dice": {n: float(v) for n, v in zip(names, self.dice())},
        }


def _nanmean(a: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    return float(np.nanmean(a)) if np.any(~np.isnan(a)) else float("nan")
