"""The confusion matrix behind every semantic-segmentation score.

One ``bincount`` per update (in torch for tensors, on their device; in numpy for arrays), mergeable
across batches (``+``, :meth:`ConfusionMatrix.merge`) and processes (:meth:`ConfusionMatrix.all_reduce`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


class ConfusionMatrix:
    """Pixel confusion matrix of a ``K``-class segmentation: ``matrix[t, p]`` counts pixels of true class
    ``t`` predicted as ``p``.

    Parameters
    ----------
    num_classes : number of classes ``K``; labels are ``0 .. K-1``.
    ignore_index : target value whose pixels are skipped (their prediction is not checked), or ``None``.

    Notes
    -----
    ``update`` raises ``ValueError`` for a predicted or (non-ignored) target label outside ``[0, K)``,
    so an unconverted 0/255 mask or a stray void label is caught instead of being silently dropped.
    Per-class scores are ``nan`` for a class absent from both prediction and target; the means are
    ``nanmean`` over the remaining classes.

    References
    ----------
    Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015,
    Sec. 5 (pixel accuracy, mean class accuracy, mean IU, frequency-weighted IU).
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={self.total})"
        )

    # -- counting -------------------------------------------------------------------------------
    def update(self, pred: Any, target: Any) -> ConfusionMatrix:
        """Count one batch of label maps (any equal shapes; numpy arrays or torch tensors) and return
        ``self``. Tensors are counted with ``torch.bincount`` on the device of the first tensor given,
        with a single device-to-host copy of the ``K*K`` counts."""
        if isinstance(pred, torch.Tensor) or isinstance(target, torch.Tensor):
            counts = self._count_torch(pred, target)
        else:
            counts = self._count_numpy(np.asarray(pred), np.asarray(target))
        k2 = self.num_classes**2
        if counts[k2 + 1]:
            raise ValueError(
                f"{int(counts[k2 + 1])} predicted labels lie outside [0, {self.num_classes}) "
                f"(num_classes={self.num_classes})"
            )
        if counts[k2 + 2]:
            hint = "" if self.ignore_index is None else f" and are not ignore_index={self.ignore_index}"
            raise ValueError(f"{int(counts[k2 + 2])} target labels lie outside [0, {self.num_classes}){hint}")
        self.matrix += counts[:k2].reshape(self.num_classes, self.num_classes)
        return self

    def _count_numpy(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        _check_labels(pred.shape, target.shape, pred.dtype, target.dtype)
        k = self.num_classes
        p = pred.reshape(-1).astype(np.int64, copy=False)
        t = target.reshape(-1).astype(np.int64, copy=False)
        codes = np.where((p >= 0) & (p < k), t * k + p, k * k + 1)  # bin K*K+1: bad prediction
        codes = np.where((t >= 0) & (t < k), codes, k * k + 2)  # bin K*K+2: bad target
        if self.ignore_index is not None:
            codes = np.where(t == self.ignore_index, k * k, codes)  # bin K*K: ignored
        return np.bincount(codes, minlength=k * k + 3)

    def _count_torch(self, pred: Any, target: Any) -> np.ndarray:
        device = pred.device if isinstance(pred, torch.Tensor) else target.device
        p = torch.as_tensor(pred, device=device)
        t = torch.as_tensor(target, device=device)
        _check_labels(tuple(p.shape), tuple(t.shape), p.dtype, t.dtype)
        k = self.num_classes
        p, t = p.reshape(-1).long(), t.reshape(-1).long()
        codes = torch.where((p >= 0) & (p < k), t * k + p, k * k + 1)
        codes = torch.where((t >= 0) & (t < k), codes, k * k + 2)
        if self.ignore_index is not None:
            codes = torch.where(t == self.ignore_index, k * k, codes)
        return torch.bincount(codes, minlength=k * k + 3).cpu().numpy()

    def reset(self) -> ConfusionMatrix:
        """Zero the counts and return ``self``."""
        self.matrix[...] = 0
        return self

    # -- combining ------------------------------------------------------------------------------
    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts into this matrix (in place) and return ``self``."""
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f"cannot merge a ConfusionMatrix with {type(other).__name__}")
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge confusion matrices of {self.num_classes} and {other.num_classes} classes"
            )
        self.matrix += other.matrix
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return self.copy().merge(other)

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return self.merge(other)

    def copy(self) -> ConfusionMatrix:
        """An independent copy."""
        out = ConfusionMatrix(self.num_classes, self.ignore_index)
        out.matrix = self.matrix.copy()
        return out

    def all_reduce(self, group: Any = None) -> ConfusionMatrix:
        """Sum the counts over all processes of ``group`` when ``torch.distributed`` is initialised
        (a no-op otherwise) and return ``self``; every process then holds the global matrix.

        The counts travel as an int64 tensor on the current CUDA device for the NCCL backend, on the
        CPU otherwise.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        device = torch.device("cpu")
        if dist.get_backend(group) == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        counts = torch.from_numpy(self.matrix).to(device)
        dist.all_reduce(counts, op=dist.ReduceOp.SUM, group=group)
        self.matrix = counts.cpu().numpy().astype(np.int64, copy=True)
        return self

    # -- scores ---------------------------------------------------------------------------------
    @property
    def total(self) -> int:
        """Number of counted (non-ignored) pixels."""
        return int(self.matrix.sum())

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels whose class is right (``nan`` when nothing was counted)."""
        return float(np.trace(self.matrix) / self.total) if self.total else float("nan")

    def class_accuracy(self) -> np.ndarray:
        """Recall ``TP / (TP + FN)`` per class, shape ``(K,)``; ``nan`` where the class never occurs in
        the target."""
        return _ratio(np.diag(self.matrix), self.matrix.sum(1))

    def mean_class_accuracy(self) -> float:
        """Mean over classes of :meth:`class_accuracy` (classes absent from the target left out)."""
        return _nanmean(self.class_accuracy())

    def iou(self) -> np.ndarray:
        """Jaccard index ``TP / (TP + FP + FN)`` per class, shape ``(K,)``; ``nan`` for classes absent
        from both prediction and target."""
        tp = np.diag(self.matrix)
        return _ratio(tp, self.matrix.sum(0) + self.matrix.sum(1) - tp)

    def mean_iou(self) -> float:
        """Mean IoU over the classes present in prediction or target."""
        return _nanmean(self.iou())

    def frequency_weighted_iou(self) -> float:
        """``sum_c freq_c * IoU_c`` with ``freq_c`` the fraction of target pixels of class ``c``."""
        if not self.total:
            return float("nan")
        freq = self.matrix.sum(1) / self.total
        return float(np.nansum(freq * self.iou()))

    def dice(self) -> np.ndarray:
        """Dice / F1 ``2 TP / (2 TP + FP + FN)`` per class, shape ``(K,)``; ``nan`` for classes absent
        from both prediction and target."""
        return _ratio(2 * np.diag(self.matrix), self.matrix.sum(0) + self.matrix.sum(1))

    def summary(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """Plain-float scores: ``pixel_accuracy``, ``mean_class_accuracy``, ``mean_iou``, ``fw_iou``
        and per-class ``iou`` / ``dice`` dicts keyed by ``class_names`` (default ``"0" .. "K-1"``)."""
        names = [str(i) for i in range(self.num_classes)] if class_names is None else list(class_names)
        if len(names) != self.num_classes:
            raise ValueError(f"got {len(names)} class names for {self.num_classes} classes")
        return {
            "pixel_accuracy": self.pixel_accuracy(),
            "mean_class_accuracy": self.mean_class_accuracy(),
            "mean_iou": self.mean_iou(),
            "fw_iou": self.frequency_weighted_iou(),
            "iou": {n: float(v) for n, v in zip(names, self.iou())},
            "dice": {n: float(v) for n, v in zip(names, self.dice())},
        }


def _check_labels(pred_shape: tuple, target_shape: tuple, pred_dtype: Any, target_dtype: Any) -> None:
    if tuple(pred_shape) != tuple(target_shape):
        raise ValueError(
            f"prediction shape {tuple(pred_shape)} differs from target shape {tuple(target_shape)}"
        )
    for what, dtype in (("prediction", pred_dtype), ("target", target_dtype)):
        if isinstance(dtype, torch.dtype):
            integral = not (dtype.is_floating_point or dtype.is_complex)
        else:
            integral = np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_)
        if not integral:
            raise ValueError(f"{what} must hold integer class labels, got dtype {dtype}")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    ok = ~np.isnan(values)
    return float(values[ok].mean()) if ok.any() else float("nan")
