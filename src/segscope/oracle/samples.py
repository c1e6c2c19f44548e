"""The oracle's training pool: (image, degraded mask) pairs with the true quality of each mask."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from segscope.data.dataset import SegmentationDataset
from segscope.errors import UserError
from segscope.oracle.degrade import QUALITY_METRICS, degrade_mask, flip_labels, mask_quality
from segscope.oracle.network import prepare_image, resize_to

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
