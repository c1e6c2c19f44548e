"""Train the quality oracle on degraded ground-truth masks and measure how well it ranks masks.

:func:`build_samples` turns a labelled dataset into (image, degraded mask, true quality) triples at the
oracle's resolution; :func:`train_oracle` fits a :class:`~segscope.oracle.network.QualityOracle` on them
with :class:`segscope.engine.Trainer` and MSE, and writes ``oracle.safetensors`` + ``oracle.json`` (plus
the trainer's ``last``/``best`` checkpoints and logs); :func:`evaluate_oracle` reports Pearson and
Spearman correlation and the mean absolute error between predicted and true quality on held-out images.

References
----------
K. Fernandes, R. Cruz and J. S. Cardoso, "Deep image segmentation by quality inference", IJCNN 2018
(training the oracle by regression on synthetically degraded masks). Departures: degradations are
computed at the image's full resolution and the mask resized for the oracle afterwards, so the target is
the true full-size quality; samples are drawn once (a fixed pool) and augmented by flips/rotations.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from segscope.data.dataset import SegmentationDataset
from segscope.engine.checkpoint import load_weights
from segscope.engine.config import TrainConfig
from segscope.engine.trainer import Trainer
from segscope.oracle.degrade import degrade_mask
from segscope.oracle.evaluate import agreement, predict_samples
from segscope.oracle.network import QualityOracle, save_oracle
from segscope.oracle.samples import ExtraMasks, build_samples, default_classes


def ascent_masks(
    oracle: QualityOracle,
    dataset: SegmentationDataset,
    *,
    per_image: int = 8,
    steps: int = 15,
    seed: int = 0,
    progress: bool = False,
) -> dict[int, list[tuple[int, np.ndarray]]]:
    """Hard negatives: masks reached by gradient ascent on the current oracle, for :data:`ExtraMasks`.

    From fresh degradations of each image's truth (and, one time in four, from an empty mask) the
    oracle's own :func:`~segscope.oracle.refine.refine_mask` runs ``steps`` steps; the masks it ends at
    are where its predicted quality is most over-optimistic, so training on them with their true
    quality makes the next round harder to fool (the idea of Gygli, Norouzi & Angelova, "Deep value
    networks learn to evaluate and iteratively refine structured outputs", ICML 2017).
    """
    from segscope.oracle.refine import refine_mask

    out: dict[int, list[tuple[int, np.ndarray]]] = {}
    bar = tqdm(range(len(dataset)), desc="ascent negatives", disable=not progress, leave=False)
    for i in bar:
        image, labels = dataset.load_image(i), dataset.load_mask(i)
        scale = max(labels.shape) / oracle.size
        for j in range(per_image):
            cls = oracle.classes[j % len(oracle.classes)]
            rng = np.random.default_rng([seed, 7919, i, j])
            start = (
                np.zeros(labels.shape, np.float32)
                if j % 4 == 3
                else degrade_mask(labels == cls, rng=rng, scale=scale).mask
            )
            r = refine_mask(oracle, image, start, class_index=cls, iterations=steps, patience=steps)
            out.setdefault(i, []).append((cls, r.mask))
    return out


@dataclass
class OracleRun:
    """What :func:`train_oracle` returns: the trained oracle (eval mode), its run directory, the
    trainer's history and the held-out :func:`agreement` (``None`` without ``val``)."""

    oracle: QualityOracle
    run_dir: Path
    history: list[dict[str, Any]]
    val_metrics: dict[str, float] | None
    seconds: float


def train_oracle(
    train: SegmentationDataset,
    *,
    out_dir: str | Path,
    val: SegmentationDataset | None = None,
    quality: str = "dice",
    classes: Sequence[int] | None = None,
    size: int = 128,
    samples_per_image: int = 48,
    epochs: int = 30,
    time_budget_s: float | None = None,
    batch_size: int = 16,
    lr: float = 1e-3,
    base_channels: int = 16,
    depth: int = 4,
    seed: int = 0,
    device: str = "auto",
    extra_masks: ExtraMasks | None = None,
    hard_negative_rounds: int = 0,
    hard_negatives_per_image: int = 8,
    progress: bool = True,
) -> OracleRun:
    """Train a quality oracle on degraded masks of ``train`` and save it to ``out_dir``.

    Parameters
    ----------
    train : labelled images (only these are degraded and learned from).
    out_dir : run directory: ``oracle.safetensors``, ``oracle.json``, the trainer's checkpoints and logs.
    val : held-out labelled images: the best epoch by validation MSE is kept and the :func:`agreement`
        on them is recorded.
    quality : target, ``"dice"`` or ``"iou"`` with the true mask.
    classes : dataset classes to score (default :func:`default_classes`); several = one-vs-rest.
    size : side of the oracle's square input (128 as in the paper).
    samples_per_image : degraded masks drawn per training image (one fixed, seeded pool).
    epochs, time_budget_s, batch_size, lr, seed, device : training (see :class:`TrainConfig`).
    base_channels, depth : oracle width and depth (see :class:`QualityOracle`).
    extra_masks : more (class, soft mask) samples per training-image index, e.g. other methods' output.
    hard_negative_rounds : after the first fit, this many rounds of: run gradient ascent with the
        current oracle from degraded (and empty) masks (:func:`ascent_masks`), add the masks it reaches
        with their true quality to the pool, and train again (same epochs / time budget each round).
    hard_negatives_per_image : ascent masks added per training image and round.

    Returns
    -------
    :class:`OracleRun`.
    """
    t0 = time.perf_counter()
    classes = default_classes(train) if classes is None else [int(c) for c in classes]
    channels = int(train.load_image(0).shape[2])
    torch.manual_seed(seed)
    oracle = QualityOracle(
        channels,
        num_targets=len(classes),
        base_channels=base_channels,
        depth=depth,
        size=size,
        quality=quality,
        classes=classes,
        num_classes=train.num_classes,
    )
    common = {"classes": classes, "size": size, "quality": quality, "progress": progress}
    pool = build_samples(
        train, samples_per_image=samples_per_image, seed=seed, extra_masks=extra_masks, **common
    )
    evaluate_fn = None
    if val is not None and len(val):
        val_pool = build_samples(
            val, samples_per_image=max(4, samples_per_image // 4), seed=seed + 1, augment=False, **common
        )

        def evaluate_fn(model: torch.nn.Module) -> dict[str, float]:
            pred = predict_samples(model, val_pool)  # type: ignore[arg-type]
            true = val_pool.quality.numpy()
            return {"loss": float(((pred - true) ** 2).mean()), **agreement(pred, true)}

    config = TrainConfig(
        epochs=epochs,
        time_budget_s=time_budget_s,
        batch_size=min(batch_size, len(pool)),
        lr=lr,
        monitor="loss",
        augment="none",
        seed=seed,
        device=device,
    )
    run_dir = Path(out_dir)
    trainer = Trainer(
        oracle,
        config,
        loss_fn=lambda out, target: F.mse_loss(out.float(), target.float()),
        evaluate_fn=evaluate_fn,
        run_dir=run_dir,
        info={"oracle": oracle.config()},
        progress=progress,
    )
    history = trainer.fit(pool)
    best = run_dir / "best.safetensors"
    load_weights(best if best.exists() else run_dir / "last.safetensors", oracle)
    oracle.eval()
    for round_ in range(hard_negative_rounds):
        negatives = ascent_masks(
            oracle,
            train,
            per_image=hard_negatives_per_image,
            seed=seed + 1000 * (round_ + 1),
            progress=progress,
        )
        extra_pool = build_samples(train, samples_per_image=0, seed=seed, extra_masks=negatives, **common)
        pool = torch.utils.data.ConcatDataset([pool, extra_pool])
        trainer = Trainer(
            oracle,
            config.replace(lr=lr / 2, seed=seed + round_ + 1),
            loss_fn=trainer.loss_fn,
            evaluate_fn=evaluate_fn,
            run_dir=run_dir,
            info={"oracle": oracle.config(), "hard_negative_round": round_ + 1},
            progress=progress,
        )
        history += [{**row, "round": round_ + 1} for row in trainer.fit(pool)]
        load_weights(best if best.exists() else run_dir / "last.safetensors", oracle)
        oracle.eval()
    val_metrics = None
    if evaluate_fn is not None:
        val_metrics = agreement(predict_samples(oracle, val_pool), val_pool.quality.numpy())
    seconds = time.perf_counter() - t0
    save_oracle(
        oracle,
        run_dir,
        {
            "paper": "Fernandes, Cruz & Cardoso, Deep image segmentation by quality inference, IJCNN 2018",
            "data": str(train.root) if train.root else train.name,
            "class_names": [train.classes[c] for c in classes],
            "train_images": list(train.stems),
            "val_images": list(val.stems) if val is not None else [],
            "samples": len(pool),
            "samples_per_image": samples_per_image,
            "hard_negative_rounds": hard_negative_rounds,
            "epochs": len(history),
            "stop_reason": trainer.stop_reason,
            "train_config": config.to_dict(),
            "val_metrics": val_metrics,
            "history": history,
            "seconds": round(seconds, 2),
        },
    )
    return OracleRun(oracle, run_dir, history, val_metrics, seconds)
