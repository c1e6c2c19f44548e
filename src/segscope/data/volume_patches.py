"""Random training patches from volumes, with nnU-Net's foreground oversampling.

Isensee, Jaeger, Kohl, Petersen & Maier-Hein, "nnU-Net: a self-configuring method for deep
learning-based biomedical image segmentation", Nature Methods 18, 2021 (Methods, "Training procedure":
one third of the patches of a batch is forced to contain a randomly chosen foreground class, centred on
one of its voxels; the rest are drawn uniformly). Here that fraction is exact over consecutive indices
(index ``i`` is a foreground patch when ``floor((i + 1) f) > floor(i f)``), as nnU-Net fixes it per batch
position; a volume without foreground falls back to a uniform patch, as in nnU-Net.

Departure: nnU-Net lets a patch centred on a border voxel stick out of the volume (and pads it); here
the patch is shifted to stay inside the volume (the chosen voxel stays in it). Volumes smaller than the
patch along an axis are padded symmetrically (image 0, mask ``fill_index``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from segscope.data.torch_dataset import default_normalization
from segscope.data.volume_transforms import VolumeAugment
from segscope.errors import DataError


class VolumePatchDataset(torch.utils.data.Dataset):
    """``(x (C, d, h, w) float32 normalised, y (d, h, w) int64)`` patches drawn from volumes.

    Parameters
    ----------
    volumes, masks
        ``(D, H, W, C)`` uint8 volumes and their ``(D, H, W)`` int64 label masks.
    patch_size
        ``(d, h, w)``.
    samples_per_epoch
        The dataset's length.
    foreground_fraction
        Fraction of patches centred on a voxel of a random foreground class present in the volume
        (foreground: any label but 0 and ``fill_index``); nnU-Net's 0.33.
    augment
        A :class:`~segscope.data.volume_transforms.VolumeAugment` applied to each patch (image in [0, 1]).
    mean, std
        Per-channel normalisation after scaling to [0, 1] (default: that of 2-D images,
        :func:`~segscope.data.torch_dataset.default_normalization`).
    fill_index
        Mask value of padding (the loss's ignore index).
    seed
        Base seed: patch ``i`` of epoch ``e`` (:meth:`set_epoch`) depends on ``(seed, e, i)`` only.
    """

    def __init__(
        self,
        volumes: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        patch_size: Sequence[int],
        *,
        samples_per_epoch: int = 250,
        foreground_fraction: float = 0.33,
        augment: VolumeAugment | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        fill_index: int = 255,
        seed: int = 0,
    ) -> None:
        if len(volumes) != len(masks) or not volumes:
            raise DataError(f"need as many masks as volumes (at least one), got {len(volumes)}, {len(masks)}")
        self.patch_size = tuple(int(p) for p in patch_size)
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise DataError(f"patch_size must be 3 positive sizes (d, h, w), got {patch_size!r}")
        if not 0 <= foreground_fraction <= 1 or samples_per_epoch < 1:
            raise DataError("foreground_fraction must be in [0, 1] and samples_per_epoch >= 1")
        for i, (v, m) in enumerate(zip(volumes, masks)):
            if v.ndim != 4 or v.dtype != np.uint8:
                raise DataError(f"volume {i}: expected a (D, H, W, C) uint8 array, got {v.dtype} {v.shape}")
            if m.shape != v.shape[:3] or not np.issubdtype(m.dtype, np.integer):
                raise DataError(f"volume {i}: mask {m.dtype} {m.shape} does not match the volume {v.shape}")
            if v.shape[3] != volumes[0].shape[3]:
                raise DataError(f"volume {i}: {v.shape[3]} channels, volume 0 has {volumes[0].shape[3]}")
        self.fill_index = int(fill_index)
        self.volumes, self.masks = [], []
        for v, m in zip(volumes, masks):
            v, m = self._pad_to_patch(v, m.astype(np.int64, copy=False))
            self.volumes.append(v)
            self.masks.append(m)
        # per volume: {foreground class: flat indices of its voxels}
        self.foreground = [self._class_voxels(m) for m in self.masks]
        self.samples_per_epoch = int(samples_per_epoch)
        self.foreground_fraction = float(foreground_fraction)
        self.augment = augment
        channels = volumes[0].shape[3]
        default_mean, default_std = default_normalization(channels)
        self.mean = np.asarray(default_mean if mean is None else mean, dtype=np.float32)
        self.std = np.asarray(default_std if std is None else std, dtype=np.float32)
        if self.mean.shape != (channels,) or self.std.shape != (channels,):
            raise DataError(f"mean and std need {channels} values (one per channel)")
        self.seed, self.epoch = int(seed), 0

    def _pad_to_patch(self, volume: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        deficit = [max(p - s, 0) for p, s in zip(self.patch_size, mask.shape)]
        if not any(deficit):
            return volume, mask
        pads = [(d // 2, d - d // 2) for d in deficit]
        return np.pad(volume, [*pads, (0, 0)]), np.pad(mask, pads, constant_values=self.fill_index)

    def _class_voxels(self, mask: np.ndarray) -> dict[int, np.ndarray]:
        flat = mask.reshape(-1)
        classes = [c for c in np.unique(flat).tolist() if c not in (0, self.fill_index)]
        return {c: np.flatnonzero(flat == c) for c in classes}

    def set_epoch(self, epoch: int) -> None:
        """Draw a new set of patches (deterministic per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def is_foreground_index(self, index: int) -> bool:
        """Whether patch ``index`` is forced onto foreground (exactly the fraction, in every run)."""
        f = self.foreground_fraction
        return int((index + 1) * f) > int(index * f)

    def patch_origin(self, index: int, rng: np.random.Generator) -> tuple[int, tuple[int, ...]]:
        """``(volume index, patch corner)`` of patch ``index``."""
        v = int(rng.integers(len(self.volumes)))
        shape = self.masks[v].shape
        classes = self.foreground[v]
        if self.is_foreground_index(index) and classes:
            keys = sorted(classes)
            voxels = classes[keys[int(rng.integers(len(keys)))]]
            centre = np.unravel_index(int(voxels[int(rng.integers(len(voxels)))]), shape)
            corner = tuple(
                int(np.clip(c - p // 2, 0, s - p)) for c, p, s in zip(centre, self.patch_size, shape)
            )
        else:
            corner = tuple(int(rng.integers(s - p + 1)) for p, s in zip(self.patch_size, shape))
        return v, corner

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"patch {index} out of range for {len(self)} samples")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        v, corner = self.patch_origin(index, rng)
        box = tuple(slice(c, c + p) for c, p in zip(corner, self.patch_size))
        image = self.volumes[v][box].astype(np.float32) / 255.0  # (d, h, w, C) in [0, 1]
        mask = self.masks[v][box]
        if self.augment is not None:
            image, mask = self.augment(image, mask, rng)
        image = (image - self.mean) / self.std
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(3, 0, 1, 2), dtype=np.float32))
        y = torch.from_numpy(np.array(mask, dtype=np.int64))  # a copy: never a view of the stored mask
        return x, y
