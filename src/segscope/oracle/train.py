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
from collections.abc import Mapping, Sequence
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
from segscope.errors import UserError
from segscope.oracle.degrade import QUALITY_METRICS, degrade_mask, flip_labels, mask_quality
from segscope.oracle.network import QualityOracle, prepare_image, resize_to, save_oracle

ExtraMasks = Mapping[int, Sequence[tuple[int, np.ndarray]]]
"""Image index -> ``(class index, (H, W) soft mask)`` pairs to add to the pool, e.g. other methods' output."""


class OracleSamples(torch.utils.data.Dataset):
    """A fixed pool of ``(x, quality)`` pairs: ``x`` = image, soft mask (and class planes) at the oracle size.

    Masks are kept as uint8 (1/255 steps). With ``augment`` each item is flipped / rotated by 90 degrees
    at random (torch's RNG, which the trainer reseeds every epoch).
    """

    def __init__(
        self,
        images: list[torch.Tensor],
        masks: np.ndarray,
        image_index: np.ndarray,
        targets: np.ndarray,
        quality: np.ndarray,
        *,
        num_targets: int,
        augment: bool = True,
    ) -> None:
        self.images, self.masks = images, torch.from_numpy(masks)
        self.image_index, self.targets = image_index, targets
        self.quality = torch.from_numpy(quality.astype(np.float32))
        self.num_targets, self.augment = num_targets, augment

    def __len__(self) -> int:
        return len(self.quality)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[int(self.image_index[i])]
        mask = self.masks[i].float()[None] / 255.0
        parts = [image, mask]
        if self.num_targets > 1:
            planes = torch.zeros((self.num_targets, *mask.shape[1:]))
            planes[int(self.targets[i])] = 1.0
            parts.append(planes)
        x = torch.cat(parts, 0)
        if self.augment:
            k, flip = torch.randint(0, 4, (2,)).tolist()
            x = torch.rot90(x, k, (1, 2)) if x.shape[1] == x.shape[2] else x
            x = x.flip(2) if flip % 2 else x
        return x.contiguous(), self.quality[i]


def default_classes(dataset: SegmentationDataset) -> list[int]:
    """The classes an oracle scores by default: the foreground (class 1) of binary data, else all."""
    return [1] if dataset.num_classes == 2 else list(range(dataset.num_classes))


def build_samples(
    dataset: SegmentationDataset,
    *,
    classes: Sequence[int],
    size: int = 128,
    samples_per_image: int = 48,
    quality: str = "dice",
    seed: int = 0,
    extra_masks: ExtraMasks | None = None,
    augment: bool = True,
    progress: bool = True,
) -> OracleSamples:
    """Degrade every image's true mask ``samples_per_image`` times (seeded per image) into a pool.

    Each sample is for one class of ``classes`` in turn (one-vs-rest). On multi-class data a third of
    the samples start from a label-flipped map (:func:`~segscope.oracle.degrade.flip_labels`). Qualities
    are measured at full resolution, ignore-index pixels left out.
    """
    if quality not in QUALITY_METRICS:
        raise UserError(f"quality must be one of {QUALITY_METRICS}, got {quality!r}")
    if samples_per_image < 0 or (samples_per_image == 0 and not extra_masks):
        raise UserError(f"samples_per_image must be >= 1, got {samples_per_image}")
    if not len(dataset) or not dataset.has_masks:
        raise UserError(f"{dataset.root or dataset.name}: the oracle needs labelled images")
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < dataset.num_classes]
    if bad or not classes:
        raise UserError(f"classes {classes} are not classes of the {dataset.num_classes}-class dataset")
    images: list[torch.Tensor] = []
    masks, index, targets, qualities = [], [], [], []
    channels = None
    bar = tqdm(range(len(dataset)), desc="oracle samples", disable=not progress, leave=False)
    for i in bar:
        image = dataset.load_image(i)
        labels = dataset.load_mask(i, image_shape=image.shape)
        channels = image.shape[2] if channels is None else channels
        if image.shape[2] != channels:
            raise UserError(f"{dataset.samples[i].image}: {image.shape[2]} channels, other images {channels}")
        images.append(prepare_image(image, size, channels))
        valid = None if dataset.ignore_index is None else labels != dataset.ignore_index
        scale = max(labels.shape) / size
        rng = np.random.default_rng([seed, i])
        pairs = []
        for j in range(samples_per_image):
            target = j % len(classes)
            truth = labels == classes[target]
            start = None
            if dataset.num_classes > 2 and rng.random() < 1 / 3:
                flipped = flip_labels(labels, dataset.num_classes, count=4, radius=8 * scale, rng=rng)
                start = flipped == classes[target]
            d = degrade_mask(truth, rng=rng, scale=scale, valid=valid, start=start)
            pairs.append((target, d.mask, d.quality(quality)))
        for cls, soft in (extra_masks or {}).get(i, ()):
            if int(cls) not in classes:
                continue
            q = mask_quality(np.clip(soft, 0, 1), labels == int(cls), quality, valid)
            pairs.append((classes.index(int(cls)), np.clip(soft, 0, 1).astype(np.float32), q))
        for target, soft, q in pairs:
            small = resize_to(torch.from_numpy(np.ascontiguousarray(soft, np.float32))[None, None], size)
            masks.append((small[0, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
            index.append(len(images) - 1)
            targets.append(target)
            qualities.append(q)
    return OracleSamples(
        images,
        np.stack(masks),
        np.asarray(index),
        np.asarray(targets),
        np.asarray(qualities),
        num_targets=len(classes),
        augment=augment,
    )


def predict_samples(oracle: QualityOracle, samples: OracleSamples, *, batch_size: int = 32) -> np.ndarray:
    """The oracle's predicted quality for every sample of the pool (no augmentation), ``(N,)``."""
    augment, samples.augment = samples.augment, False
    was_training = oracle.training
    oracle.eval()
    device = next(oracle.parameters()).device
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(samples), batch_size):
                x = torch.stack([samples[i][0] for i in range(start, min(start + batch_size, len(samples)))])
                out.append(oracle(x.to(device)).float().cpu())
    finally:
        samples.augment = augment
        oracle.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def agreement(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation, MAE and RMSE between predicted and true quality."""
    from scipy import stats

    p, t = np.asarray(predicted, np.float64), np.asarray(true, np.float64)
    if p.shape != t.shape:
        raise ValueError(f"{p.shape} predictions for {t.shape} true values")
    flat = len(p) < 2 or np.ptp(p) == 0 or np.ptp(t) == 0
    return {
        "pearson": float("nan") if flat else float(stats.pearsonr(p, t)[0]),
        "spearman": float("nan") if flat else float(stats.spearmanr(p, t)[0]),
        "mae": float(np.abs(p - t).mean()) if len(p) else float("nan"),
        "rmse": float(np.sqrt(((p - t) ** 2).mean())) if len(p) else float("nan"),
        "n": len(p),
    }


def evaluate_oracle(
    oracle: QualityOracle,
    dataset: SegmentationDataset,
    *,
    samples_per_image: int = 16,
    seed: int = 1,
    progress: bool = False,
) -> dict[str, float]:
    """:func:`agreement` of the oracle on fresh degradations of ``dataset`` (e.g. held-out images)."""
    samples = build_samples(
        dataset,
        classes=oracle.classes,
        size=oracle.size,
        samples_per_image=samples_per_image,
        quality=oracle.quality,
        seed=seed,
        augment=False,
        progress=progress,
    )
    result = agreement(predict_samples(oracle, samples), samples.quality.numpy())
    result["true_quality_min"] = float(samples.quality.min())
    result["true_quality_max"] = float(samples.quality.max())
    return result


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
