"""A segmentation dataset: paired image and mask files plus class names and an ignore index.

Arrays, not tensors: ``dataset[i]`` is ``(image, mask)`` with ``image`` an ``(H, W, C)`` uint8 array
(``C`` = 1 for grey, 3 for colour) and ``mask`` an ``(H, W)`` int64 array of class indices (or the
ignore index). Classical methods use it as is; deep models wrap it in
:class:`segscope.data.torch_dataset.TorchSegmentationDataset`.

Every image of a dataset comes out with the same channel count, :attr:`SegmentationDataset.channels`:
the majority over the image files' headers (read without decoding pixels; a tie counts as colour).
In a mostly-colour dataset grey images are promoted to RGB (the grey channel replicated); in a
mostly-grey dataset the odd colour image is converted to grey with the ITU-R 601 luma
(``L = 0.299 R + 0.587 G + 0.114 B``, as PIL's ``convert("L")``). Subsets and folds keep the channel
count of the dataset they come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from segscope.data.images import image_channels, pil_guard, read_image
from segscope.data.masks import MaskCodec
from segscope.errors import DataError

if TYPE_CHECKING:
    from segscope.types import Instances

_INSTANCE_IDS = MaskCodec("index")  # instance-id PNGs decode as raw ids (8/16-bit grey or palette)


@dataclass(frozen=True)
class Sample:
    """One image with its mask file (``None`` for unlabelled images) and a group id for grouped CV."""

    image: Path
    mask: Path | None
    group: str = ""

    @property
    def stem(self) -> str:
        return self.image.stem


class SegmentationDataset(Sequence):
    """Paired image/mask files with class names, an ignore index and per-sample groups.

    Parameters
    ----------
    samples : sequence of Sample
    classes : class names; mask value ``k`` is ``classes[k]``.
    codec : how mask files decode to class indices (see :class:`segscope.data.masks.MaskCodec`).
    ignore_index : mask value excluded from losses and metrics, or ``None``.
    name : a short name for reports.
    palette : ``(K, 3)`` uint8 colours for overlays; a default palette when ``None``.
    channels : 1 or 3, the channel count every loaded image is converted to; when ``None``, the
        majority over the image headers, computed on first use (see the module docstring).
    task : ``"semantic"`` (mask files hold class indices) or ``"instance"`` (mask files are instance-id
        maps, 0 = background: :meth:`load_mask` gives the semantic map, instance > 0 -> class 1, and
        :meth:`load_instances` the :class:`~segscope.types.Instances`).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: Sequence[str],
        *,
        codec: MaskCodec | None = None,
        ignore_index: int | None = None,
        name: str = "",
        palette: np.ndarray | None = None,
        root: Path | None = None,
        channels: int | None = None,
        task: str = "semantic",
    ) -> None:
        if task not in ("semantic", "instance"):
            raise ValueError(f"task must be 'semantic' or 'instance', got {task!r}")
        self.task = task
        if len(classes) < 2:
            raise DataError(f"{root or name or 'dataset'}: need at least 2 classes, got {list(classes)}")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        self._channels = channels
        self.samples = list(samples)
        self.classes = list(classes)
        self.codec = codec or MaskCodec()
        self.ignore_index = ignore_index
        self.name = name
        self.root = root
        self.palette = (
            default_palette(len(self.classes)) if palette is None else np.asarray(palette, np.uint8)
        )

    # -- Sequence -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        return self.load_image(index), self.load_mask(index)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def stems(self) -> list[str]:
        return [s.stem for s in self.samples]

    @property
    def groups(self) -> list[str]:
        return [s.group for s in self.samples]

    @property
    def has_masks(self) -> bool:
        return all(s.mask is not None for s in self.samples)

    @property
    def channels(self) -> int:
        """Channels of every loaded image: the majority over the image headers (ties: 3)."""
        if self._channels is None:
            counts = {1: 0, 3: 0, None: 0}
            for s in self.samples:
                counts[image_channels(s.image)] += 1
            self._channels = 1 if counts[1] > counts[3] else 3
        return self._channels

    # -- loading --------------------------------------------------------------------------------
    def load_image(self, index: int) -> np.ndarray:
        return read_image(self.samples[index].image, channels=self.channels)

    def load_mask(self, index: int, *, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Decode sample ``index``'s mask to ``(H, W)`` int64, checking values and (optionally) size."""
        sample = self.samples[index]
        if sample.mask is None:
            raise DataError(f"{sample.image}: no mask for this image")
        with pil_guard(sample.mask):
            mask = self.codec.decode(sample.mask)
        bad = (mask < 0) | (mask >= self.num_classes)
        if self.ignore_index is not None:
            bad &= mask != self.ignore_index
        if bad.any():
            values = sorted(set(np.unique(mask[bad]).tolist()))[:8]
            raise DataError(
                f"{sample.mask}: label values {values} outside the {self.num_classes} declared classes"
                + (f" (ignore index {self.ignore_index})" if self.ignore_index is not None else "")
            )
        if image_shape is not None and tuple(mask.shape) != tuple(image_shape[:2]):
            raise DataError(
                f"{sample.mask}: mask size {mask.shape[1]}x{mask.shape[0]} differs from image "
                f"{sample.image.name} size {image_shape[1]}x{image_shape[0]}"
            )
        return mask

    def load_instances(self, index: int, *, image_shape: tuple[int, ...] | None = None) -> Instances:
        """Sample ``index``'s objects as :class:`~segscope.types.Instances` (instance datasets only):
        one mask per non-zero id of its instance-id PNG (8- or 16-bit grey, or palette indices), taken in
        increasing id order, each of class 1."""
        from segscope.types import Instances

        sample = self.samples[index]
        if self.task != "instance":
            raise DataError(f"{self.root or self.name}: not an instance dataset (task {self.task!r})")
        if sample.mask is None:
            raise DataError(f"{sample.image}: no instance map for this image")
        with pil_guard(sample.mask):
            ids = _INSTANCE_IDS.decode(sample.mask)
        if ids.min(initial=0) < 0:
            raise DataError(f"{sample.mask}: negative instance ids")
        if image_shape is not None and tuple(ids.shape) != tuple(image_shape[:2]):
            raise DataError(
                f"{sample.mask}: instance map size {ids.shape[1]}x{ids.shape[0]} differs from image "
                f"{sample.image.name} size {image_shape[1]}x{image_shape[0]}"
            )
        return Instances.from_label_map(ids)

    def validate(self) -> None:
        """Read every pair once; raise :class:`DataError` naming the first bad file."""
        if not self.samples:
            raise DataError(f"{self.root or self.name}: dataset is empty")
        for i, sample in enumerate(self.samples):
            image = self.load_image(i)
            if sample.mask is not None:
                self.load_mask(i, image_shape=image.shape)

    # -- views ----------------------------------------------------------------------------------
    def subset(self, indices: Sequence[int], *, name: str | None = None) -> SegmentationDataset:
        """A dataset over ``samples[indices]`` sharing classes, codec and palette."""
        sub = SegmentationDataset(
            [self.samples[int(i)] for i in indices],
            self.classes,
            codec=self.codec,
            ignore_index=self.ignore_index,
            name=self.name if name is None else name,
            palette=self.palette,
            root=self.root,
            channels=self.channels,  # a fold converts its images as the whole dataset does
            task=self.task,
        )
        return sub

    def with_samples(self, samples: Sequence[Sample]) -> SegmentationDataset:
        return SegmentationDataset(
            samples,
            self.classes,
            codec=self.codec,
            ignore_index=self.ignore_index,
            name=self.name,
            palette=self.palette,
            root=self.root,
            channels=self.channels,
            task=self.task,
        )

    def with_channels(self, channels: int) -> SegmentationDataset:
        """The same samples, every image converted to ``channels`` (e.g. a val split to the training
        split's channel count)."""
        out = self.with_samples(self.samples)
        out._channels = int(channels)
        return out

    def class_pixel_counts(self) -> np.ndarray:
        """Pixels per class over the whole dataset (ignore index excluded), int64 ``(K,)``."""
        counts = np.zeros(self.num_classes, np.int64)
        for i in range(len(self)):
            m = self.load_mask(i)
            m = m[(m >= 0) & (m < self.num_classes)]
            counts += np.bincount(m.ravel(), minlength=self.num_classes)
        return counts

    def describe(self) -> dict:
        return {
            "name": self.name,
            "root": str(self.root) if self.root else None,
            "num_samples": len(self),
            "classes": self.classes,
            "ignore_index": self.ignore_index,
            "task": self.task,
        }

    def __repr__(self) -> str:
        return f"SegmentationDataset({self.name!r}, {len(self)} samples, classes={self.classes})"


def default_palette(num_classes: int) -> np.ndarray:
    """Distinct overlay colours: the PASCAL VOC bit-interleaved palette, ``(K, 3)`` uint8."""
    pal = np.zeros((max(num_classes, 1), 3), np.uint8)
    for k in range(len(pal)):
        c, r, g, b = k, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[k] = (r, g, b)
    if num_classes == 2:  # binary: dark background, bright foreground reads best in overlays
        pal[:] = [(0, 0, 0), (255, 200, 0)]
    return pal


__all__ = ["Sample", "SegmentationDataset", "default_palette", "read_image", "replace"]
