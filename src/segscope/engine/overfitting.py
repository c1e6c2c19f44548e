"""Overfitting detection on a training history: validation loss rising while training loss falls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def divergence_epoch(
    history: Sequence[dict[str, Any]], *, patience: int = 3, tolerance: float = 0.02
) -> int | None:
    """The epoch after which validation loss diverged from training loss, or ``None``.

    Divergence: the last ``patience`` validations each have a validation loss above its running
    minimum by more than ``tolerance`` (relative), while the training loss over the same epochs kept
    falling. The epoch returned is the one of the minimum validation loss (where early stopping would
    have stopped), so a learning-curve plot can mark it.
    """
    rows = [r for r in history if r.get("val_loss") is not None and r.get("train_loss") is not None]
    if len(rows) < patience + 1:
        return None
    val = [float(r["val_loss"]) for r in rows]
    best = min(range(len(val)), key=val.__getitem__)
    tail = rows[-patience:]
    if best >= len(rows) - patience:
        return None
    floor = val[best] * (1 + tolerance)
    rising = all(float(r["val_loss"]) > floor for r in tail)
    train_falling = float(tail[-1]["train_loss"]) < float(rows[best]["train_loss"])
    return int(rows[best]["epoch"]) if rising and train_falling else None


def divergence_message(history: Sequence[dict[str, Any]], **kwargs: Any) -> str | None:
    """One line warning about overfitting, or ``None`` when the curves do not diverge."""
    epoch = divergence_epoch(history, **kwargs)
    if epoch is None:
        return None
    best = next(r for r in history if r.get("epoch") == epoch)
    last = [r for r in history if r.get("val_loss") is not None][-1]
    return (
        f"overfitting: validation loss rose from {best['val_loss']:.4g} (epoch {epoch}) to "
        f"{last['val_loss']:.4g} (epoch {last['epoch']}) while training loss fell; consider "
        "--early-stopping, more augmentation, weight decay or dropout"
    )
