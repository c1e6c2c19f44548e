"""Train the local (full-resolution) quality oracle on the masks refinement will meet.

The pool holds, per training image, degraded copies of its truth at full resolution (the degradations of
:func:`~segscope.oracle.degrade.degrade_mask` at random scales; on multi-class data label flips and one
class degraded at a time), empty masks, other methods' outputs on the training images
(``extra_maps``), and, after the first fit, the oracle's own refinements of pool masks
(``self_rounds``: the masks ascent will actually reach, with their truth). Each item is a random crop
(flipped / rotated) of image, map and truth; the loss is per-pixel cross-entropy of the predicted
true class. The best epoch by validation loss on held-out images is kept.

References
----------
K. Fernandes, R. Cruz and J. S. Cardoso, "Deep image segmentation by quality inference", IJCNN 2018
(the oracle is trained on masks of known quality); the self-refinement rounds follow Gygli, Norouzi &
Angelova, "Deep value networks learn to evaluate and iteratively refine structured outputs", ICML 2017.
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
from segscope.oracle.degrade import degrade_mask, flip_labels
from segscope.oracle.local import LocalQualityOracle, estimated_quality, one_hot, save_local_oracle

ExtraMaps = Mapping[int, Sequence[np.ndarray]]
"""Training-image index -> more maps of it: ``(H, W)`` foreground probabilities (binary) or label maps."""


def degraded_map(labels: np.ndarray, num_classes: int, rng: np.random.Generator, valid=None) -> np.ndarray:
    """One degraded map of the label map ``labels``: ``(H, W)`` uint8, the foreground probability x 255
    on binary data, class indices otherwise. 10 % are empty (all background / class 0)."""
    scale = float(np.exp(rng.uniform(0.0, np.log(4.0))))  # degradation size: 1-4 px per unit
    if num_classes == 2:
        if rng.random() < 0.1:
            return np.zeros(labels.shape, np.uint8)
        d = degrade_mask(labels == 1, rng=rng, scale=scale, valid=valid)
        return (d.mask * 255).round().astype(np.uint8)
    out = np.where(labels < num_classes, labels, 0).astype(np.int64)
    if rng.random() < 0.1:
        return np.zeros(labels.shape, np.uint8)
    if rng.random() < 0.7:
        out = flip_labels(out, num_classes, count=int(rng.integers(1, 9)), radius=8 * scale, rng=rng)
    for _ in range(int(rng.integers(1, 3))):
        c = int(rng.integers(num_classes))
        grown = degrade_mask(out == c, rng=rng, scale=scale, soft=False).mask > 0.5
        lost = (out == c) & ~grown
        out[grown] = c
        if lost.any():  # pixels the class lost go to the most common other class of the image
            others = np.bincount(out[~lost], minlength=num_classes)
            others[c] = -1
            out[lost] = int(others.argmax())
    return out.astype(np.uint8)


def map_to_proba(stored: torch.Tensor, num_classes: int, soft_sigma: float = 0.0) -> torch.Tensor:
    """A stored uint8 map ``(H, W)`` -> ``(K, H, W)`` class probabilities (optionally blurred)."""
    if num_classes == 2:
        fg = stored.float() / 255.0
        return torch.stack([1 - fg, fg])
    proba = F.one_hot(stored.long().clamp_max(num_classes - 1), num_classes).permute(2, 0, 1).float()
    if soft_sigma > 0:
        k = int(2 * round(soft_sigma) + 1)
        proba = F.avg_pool2d(proba[None], k, stride=1, padding=k // 2, count_include_pad=False)[0]
    return proba


class LocalOracleSamples(torch.utils.data.Dataset):
    """Random crops of (image, map) -> truth from a fixed pool of full-resolution maps."""

    def __init__(
        self,
        images: list[torch.Tensor],
        labels: list[torch.Tensor],
        maps: list[torch.Tensor],
        image_index: list[int],
        *,
        num_classes: int,
        crop: int,
        ignore_index: int | None,
        augment: bool = True,
    ) -> None:
        self.images, self.labels, self.maps, self.image_index = images, labels, maps, image_index
        self.num_classes, self.crop, self.ignore_index, self.augment = (
            num_classes,
            crop,
            ignore_index,
            augment,
        )

    def __len__(self) -> int:
        return len(self.maps)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = self.image_index[i]
        image, labels, stored = self.images[j], self.labels[j], self.maps[i]
        h, w = labels.shape
        ch, cw = min(self.crop, h), min(self.crop, w)
        top = int(torch.randint(0, h - ch + 1, ()).item()) if self.augment else 0
        left = int(torch.randint(0, w - cw + 1, ()).item()) if self.augment else 0
        sl = (slice(top, top + ch), slice(left, left + cw))
        sigma = float(torch.rand(()) * 2) if self.augment and torch.rand(()) < 0.3 else 0.0
        x = torch.cat([image[(slice(None), *sl)], map_to_proba(stored[sl], self.num_classes, sigma)], 0)
        y = labels[sl].long()
        if self.ignore_index is not None:
            y = torch.where(y == self.ignore_index, torch.full_like(y, -100), y)
        if self.augment:
            k, flip = torch.randint(0, 4, (2,)).tolist()
            if ch == cw:
                x, y = torch.rot90(x, k, (1, 2)), torch.rot90(y, k, (0, 1))
            if flip % 2:
                x, y = x.flip(2), y.flip(1)
        return x.contiguous(), y.contiguous()


def build_local_samples(
    dataset: SegmentationDataset,
    *,
    in_channels: int,
    samples_per_image: int,
    crop: int,
    seed: int,
    extra_maps: ExtraMaps | None = None,
    augment: bool = True,
    progress: bool = False,
) -> LocalOracleSamples:
    """The pool of :class:`LocalOracleSamples` (degraded maps seeded per image, plus ``extra_maps``)."""
    from segscope.oracle.local import standardise

    if not len(dataset) or not dataset.has_masks:
        raise UserError(f"{dataset.root or dataset.name}: the oracle needs labelled images")
    images, labels, maps, index = [], [], [], []
    k = dataset.num_classes
    for i in tqdm(range(len(dataset)), desc="oracle maps", disable=not progress, leave=False):
        image = dataset.load_image(i)
        truth = dataset.load_mask(i, image_shape=image.shape)
        valid = None if dataset.ignore_index is None else truth != dataset.ignore_index
        images.append(standardise(image, in_channels))
        labels.append(torch.from_numpy(truth.astype(np.int64)))
        rng = np.random.default_rng([seed, i])
        pool = [degraded_map(truth, k, rng, valid) for _ in range(samples_per_image)]
        for extra in (extra_maps or {}).get(i, ()):
            extra = np.asarray(extra)
            pool.append(
                (np.clip(extra, 0, 1) * 255).round().astype(np.uint8) if k == 2 else extra.astype(np.uint8)
            )
        maps += [torch.from_numpy(np.ascontiguousarray(m)) for m in pool]
        index += [len(images) - 1] * len(pool)
    return LocalOracleSamples(
        images,
        labels,
        maps,
        index,
        num_classes=k,
        crop=crop,
        ignore_index=dataset.ignore_index,
        augment=augment,
    )


@dataclass
class LocalOracleRun:
    """What :func:`train_local_oracle` returns."""

    oracle: LocalQualityOracle
    run_dir: Path
    history: list[dict[str, Any]]
    val_metrics: dict[str, float] | None
    seconds: float


def validation_metrics(oracle: LocalQualityOracle, pool: LocalOracleSamples) -> dict[str, float]:
    """Per-pixel loss on whole held-out images, and the agreement of estimated with true quality."""
    from segscope.oracle.evaluate import agreement

    oracle.eval()
    losses, est, true = [], [], []
    with torch.no_grad():
        for i in range(len(pool)):
            j = pool.image_index[i]
            proba = map_to_proba(pool.maps[i], pool.num_classes)
            y = pool.labels[j].long()
            if pool.ignore_index is not None:
                y = torch.where(y == pool.ignore_index, torch.full_like(y, -100), y)
            logits = oracle(torch.cat([pool.images[j], proba], 0)[None])
            losses.append(float(F.cross_entropy(logits, y[None], ignore_index=-100)))
            p, valid = torch.softmax(logits, 1)[0].numpy(), (y >= 0).numpy()
            m = proba.numpy() * valid
            est.append(estimated_quality(m, p * valid, oracle.classes, oracle.quality))
            true.append(
                estimated_quality(m, one_hot(y.numpy(), pool.num_classes), oracle.classes, oracle.quality)
            )
    return {"loss": float(np.mean(losses)), **agreement(np.asarray(est), np.asarray(true))}


def train_local_oracle(
    train: SegmentationDataset,
    *,
    out_dir: str | Path,
    val: SegmentationDataset | None = None,
    quality: str = "dice",
    classes: Sequence[int] | None = None,
    samples_per_image: int = 24,
    crop: int = 192,
    epochs: int = 10_000,
    time_budget_s: float | None = 120.0,
    batch_size: int = 8,
    lr: float = 2e-3,
    base_channels: int = 16,
    depth: int = 3,
    seed: int = 0,
    device: str = "auto",
    extra_maps: ExtraMaps | None = None,
    self_rounds: int = 0,
    progress: bool = False,
) -> LocalOracleRun:
    """Train a :class:`LocalQualityOracle` on ``train`` (selection on ``val`` only), save it to ``out_dir``.

    ``time_budget_s`` is split evenly between the first fit and the ``self_rounds`` rounds; a round adds,
    per training image on average, two of the oracle's own refinements of pool maps
    (:func:`~segscope.oracle.local_refine.refine_local`: one fixed-point, one unconstrained ascent, the
    adversarial masks it over-rates) with their truth, and trains on."""
    from segscope.oracle.local_refine import refine_local

    t0 = time.perf_counter()
    channels = int(train.load_image(0).shape[2])
    torch.manual_seed(seed)
    oracle = LocalQualityOracle(
        channels,
        num_classes=train.num_classes,
        classes=None if classes is None else list(classes),
        base_channels=base_channels,
        depth=depth,
        quality=quality,
    )
    common = {"in_channels": channels, "crop": crop, "progress": progress}
    pool = build_local_samples(
        train, samples_per_image=samples_per_image, seed=seed, extra_maps=extra_maps, **common
    )
    val_pool = None
    if val is not None and len(val):
        val_pool = build_local_samples(val, samples_per_image=4, seed=seed + 1, augment=False, **common)
    budget = None if time_budget_s is None else time_budget_s / (1 + self_rounds)
    config = TrainConfig(
        epochs=epochs,
        time_budget_s=budget,
        batch_size=min(batch_size, len(pool)),
        lr=lr,
        monitor="loss",
        augment="none",
        seed=seed,
        device=device,
    )
    run_dir = Path(out_dir)
    history: list[dict[str, Any]] = []
    stop_reason = ""
    for round_ in range(1 + self_rounds):
        if round_:
            rng = np.random.default_rng([seed, 4241, round_])
            extra: dict[int, list[np.ndarray]] = {}
            picks = rng.choice(len(pool), size=min(len(pool), 2 * len(train)), replace=False).tolist()
            for n, i in enumerate(picks):
                j = pool.image_index[i]
                image = train.load_image(j)
                start = map_to_proba(pool.maps[i], pool.num_classes).numpy()
                # half fixed-point refinements, half unconstrained ascent (adversarial: what it over-rates)
                update = "fixed_point" if n % 2 == 0 else "ascent"
                refined = refine_local(
                    oracle, image, start, iterations=int(rng.integers(1, 6)), step=0.5, update=update
                ).proba
                extra.setdefault(j, []).append(refined[1] if pool.num_classes == 2 else refined.argmax(0))
            more = build_local_samples(train, samples_per_image=0, seed=seed, extra_maps=extra, **common)
            pool = torch.utils.data.ConcatDataset([pool, more])  # type: ignore[assignment]
            config = config.replace(lr=lr / 2, seed=seed + round_)
        trainer = Trainer(
            oracle,
            config,
            loss_fn=lambda out, y: F.cross_entropy(out.float(), y, ignore_index=-100),
            evaluate_fn=None if val_pool is None else (lambda model: validation_metrics(model, val_pool)),
            run_dir=run_dir,
            info={"oracle": oracle.config(), "oracle_kind": "local", "round": round_},
            progress=progress,
        )
        history += [{**row, "round": round_} for row in trainer.fit(pool)]
        stop_reason = trainer.stop_reason
        best = run_dir / "best.safetensors"
        load_weights(best if best.exists() else run_dir / "last.safetensors", oracle)
        oracle.eval()
    val_metrics = None if val_pool is None else validation_metrics(oracle, val_pool)
    seconds = time.perf_counter() - t0
    save_local_oracle(
        oracle,
        run_dir,
        {
            "paper": "Fernandes, Cruz & Cardoso, Deep image segmentation by quality inference, IJCNN 2018",
            "data": str(train.root) if train.root else train.name,
            "train_images": list(train.stems),
            "val_images": list(val.stems) if val is not None else [],
            "samples": len(pool),
            "self_rounds": self_rounds,
            "epochs": len(history),
            "stop_reason": stop_reason,
            "train_config": config.to_dict(),
            "val_metrics": val_metrics,
            "history": history,
            "seconds": round(seconds, 2),
        },
    )
    return LocalOracleRun(oracle, run_dir, history, val_metrics, seconds)
