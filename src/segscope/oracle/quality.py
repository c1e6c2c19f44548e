"""Use an oracle without refining: label-free quality of a label map, per-image method choice, flagging.

Both oracle kinds answer the same question here. :func:`predicted_quality` is the oracle's estimate of
the mean Dice (or IoU) over the classes it scores of a label map, with no ground truth;
:func:`choose_per_image` picks, for one image, the method whose map the oracle rates best (the "model
selection" of the authors' code); :func:`flag_images` lists the images whose best estimate is lowest,
where a person should look first. :func:`load_any_oracle` reopens either kind from its run directory and
:func:`fit_oracle` trains one on a dataset's training part.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from segscope.data.dataset import SegmentationDataset
from segscope.errors import UserError
from segscope.oracle.degrade import true_quality

ORACLE_KINDS = ("local", "global")
__all__ = [
    "choose_per_image",
    "fit_oracle",
    "flag_images",
    "load_any_oracle",
    "predicted_quality",
    "true_quality",
]


class Oracle(Protocol):
    """What both oracle kinds offer: the classes they score and a label-free quality of a label map."""

    classes: list[int]
    num_classes: int
    in_channels: int
    quality: str

    def score_labels(self, image: np.ndarray, labels: np.ndarray) -> float: ...


def predicted_quality(oracle: Oracle, image: np.ndarray, labels: np.ndarray) -> float:
    """The oracle's estimate of the quality (its ``quality``, Dice or IoU, averaged over the classes it
    scores) of the ``(H, W)`` label map ``labels`` for ``image``, without ground truth. A grey image given
    to a colour oracle (or the reverse) is converted as the segmenters do."""
    from segscope.data.images import convert_channels

    labels = np.asarray(labels)
    if labels.shape != image.shape[:2]:
        raise UserError(f"label map of shape {labels.shape} does not fit an image of {image.shape[:2]}")
    image = image[..., None] if image.ndim == 2 else image
    return float(oracle.score_labels(convert_channels(image, oracle.in_channels), labels))


def choose_per_image(qualities: Mapping[str, float]) -> str:
    """The method with the highest predicted quality (the first listed wins a tie)."""
    if not qualities:
        raise UserError("no method to choose from")
    best = max(qualities.values())
    return next(name for name, q in qualities.items() if q == best)


def flag_images(best_quality: Mapping[str, float], count: int | None = None) -> list[tuple[str, float]]:
    """``(stem, best predicted quality)`` sorted lowest first: the images a person should look at."""
    rows = sorted(best_quality.items(), key=lambda kv: (kv[1], kv[0]))
    return rows if count is None else rows[:count]


def load_any_oracle(run_dir: str | Path, *, device: str = "cpu") -> Oracle:
    """Reopen the oracle of ``run_dir``, local (:mod:`~segscope.oracle.local`) or global
    (:mod:`~segscope.oracle.network`), from its ``oracle.json``."""
    from segscope.oracle.network import load_oracle, read_oracle_meta

    meta = read_oracle_meta(run_dir)
    if meta.get("oracle_kind", "global") == "local":
        from segscope.oracle.local import load_local_oracle

        return load_local_oracle(run_dir, device=device)
    return load_oracle(run_dir, device=device)


def oracle_train_images(run_dir: str | Path) -> list[str]:
    """Stems of the images an oracle was trained on (its train and validation images), from its metadata."""
    from segscope.oracle.network import read_oracle_meta

    meta = read_oracle_meta(run_dir)
    return [*meta.get("train_images", []), *meta.get("val_images", [])]


def fit_oracle(
    train: SegmentationDataset,
    out_dir: str | Path,
    *,
    kind: str = "local",
    time_budget_s: float = 120.0,
    seed: int = 0,
    progress: bool = False,
    **options: Any,
) -> Oracle:
    """Train an oracle of ``kind`` on ``train`` only (its own validation split carved from it) and save
    it to ``out_dir``; returns it in eval mode."""
    from segscope.data.splits import holdout_split

    if kind not in ORACLE_KINDS:
        raise UserError(f"oracle kind must be one of {ORACLE_KINDS}, got {kind!r}")
    fit, val = holdout_split(train, 0.2, seed) if len(train) >= 5 else (train, None)
    if kind == "local":
        from segscope.oracle.local_train import train_local_oracle

        return train_local_oracle(
            fit,
            out_dir=out_dir,
            val=val,
            time_budget_s=time_budget_s,
            seed=seed,
            progress=progress,
            **options,
        ).oracle
    from segscope.oracle.train import train_oracle

    return train_oracle(
        fit,
        out_dir=out_dir,
        val=val,
        time_budget_s=time_budget_s,
        epochs=10_000,
        seed=seed,
        progress=progress,
        **options,
    ).oracle
