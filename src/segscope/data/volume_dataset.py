"""Volume datasets: 3-D images with label volumes, split into z-blocks, and their 2-D slice view.

:class:`VolumeDataset` is the 3-D counterpart of :class:`~segscope.data.dataset.SegmentationDataset`, with
the members consumers use (``load_image``, ``load_mask``, ``stems``, ``groups``, ``classes``,
``subset``, ...). Its samples are **z-blocks**: each volume is cut into ``blocks_per_volume`` contiguous
slabs of near-equal depth (sizes differ by at most one slice), so k-fold cross-validation over the samples
holds out contiguous slabs and no slice of a test block is ever trained on. With one block per volume the
samples are whole volumes. ``dataset[i]`` is ``(image (d, H, W, C) uint8, mask (d, H, W) int64)``.

Volumes are read on first use and kept in memory (shared by subsets, folds and the slice view; labels in
the smallest integer type that holds them); pickling a dataset (a process pool) drops the cache.

:meth:`VolumeDataset.slices` gives a :class:`SliceDataset`, a 2-D ``SegmentationDataset`` whose samples are
the z-slices of the blocks, so every 2-D method trains on the training blocks unchanged.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segscope.data.dataset import Sample, SegmentationDataset, default_palette
from segscope.data.masks import MaskCodec
from segscope.data.volume_layout import (
    ISBI_SPACING,
    SINGLE_VOLUME_BLOCKS,
    VolumeCache,
    VolumeSource,
    label_classes,
)
from segscope.errors import DataError

__all__ = ["SliceDataset", "VolumeBlock", "VolumeDataset", "open_volumes", "split_blocks"]


@dataclass(frozen=True)
class VolumeBlock:
    """Slices ``z0 <= z < z1`` of volume ``volume`` (an index into the dataset's sources)."""

    volume: int
    z0: int
    z1: int


def split_blocks(volume: int, depth: int, blocks: int) -> list[VolumeBlock]:
    """``blocks`` contiguous blocks covering ``range(depth)`` whose depths differ by at most one."""
    if not 1 <= blocks <= depth:
        raise ValueError(f"cannot cut {depth} slices into {blocks} blocks")
    edges = [depth * b // blocks for b in range(blocks + 1)]
    return [VolumeBlock(volume, edges[b], edges[b + 1]) for b in range(blocks)]


class VolumeDataset(Sequence):
    """Image volumes with label volumes, as z-blocks; see the module docstring.

    Parameters
    ----------
    sources : the volumes, each an image volume and its label volume (or ``None``) paired by stem.
    classes : class names; label ``k`` is ``classes[k]``.
    codec : how label files decode to classes (binary: above the threshold -> 1; index: as stored).
    ignore_index, name, palette, root : as :class:`~segscope.data.dataset.SegmentationDataset`.
    channels : 1 or 3, the channel count of every loaded volume; ``None``: the majority over the volumes'
        headers (ties: colour).
    spacing : ``(z, y, x)`` voxel spacing overriding the files'; ``None``: the first volume's header.
    blocks_per_volume : z-blocks each volume is cut into (at most its depth; default 1, whole volumes).
    open_options : the :func:`~segscope.data.formats.open_dataset` keywords that rebuild this dataset.
    cache : a :class:`VolumeCache` over ``sources`` already holding some arrays (e.g. labels read to infer
        the classes); a new one when ``None``.
    """

    task = "semantic"
    ndim = 3

    def __init__(
        self,
        sources: Sequence[VolumeSource],
        classes: Sequence[str],
        *,
        codec: MaskCodec | None = None,
        ignore_index: int | None = None,
        name: str = "",
        palette: np.ndarray | None = None,
        root: Path | None = None,
        channels: int | None = None,
        spacing: Sequence[float] | None = None,
        blocks_per_volume: int = 1,
        open_options: dict | None = None,
        cache: VolumeCache | None = None,
    ) -> None:
        if len(classes) < 2:
            raise DataError(f"{root or name or 'dataset'}: need at least 2 classes, got {list(classes)}")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        stems = [s.stem for s in sources]
        if len(set(stems)) != len(stems):
            dup = next(s for s in stems if stems.count(s) > 1)
            raise DataError(f"{root or name}: two volumes named {dup!r}")
        self.sources = list(sources)
        self.classes = list(classes)
        self.codec = codec or MaskCodec()
        self.ignore_index = ignore_index
        self.name = name
        self.root = root
        self.palette = (
            default_palette(len(self.classes)) if palette is None else np.asarray(palette, np.uint8)
        )
        self._channels = channels
        self._spacing = None if spacing is None else tuple(float(s) for s in spacing)
        self.blocks_per_volume = int(blocks_per_volume)
        self.open_options = dict(open_options or {})
        self._cache = cache if cache is not None else VolumeCache(self.sources)
        self.blocks: list[VolumeBlock] = []
        for v, src in enumerate(self.sources):
            depth = self._cache.info(v).shape[0]
            if not 1 <= self.blocks_per_volume <= depth:
                raise DataError(f"{src.image}: {depth} slices cannot form {self.blocks_per_volume} z-blocks")
            self.blocks += split_blocks(v, depth, self.blocks_per_volume)

    # -- Sequence -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        return self.load_image(index), self.load_mask(index)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def block_stem(self, block: VolumeBlock) -> str:
        """``"<volume stem>_z<z0>-<z1>"`` (``z1`` exclusive, zero-padded to the volume's depth)."""
        width = max(3, len(str(self._cache.info(block.volume).shape[0])))
        return f"{self.sources[block.volume].stem}_z{block.z0:0{width}d}-{block.z1:0{width}d}"

    @property
    def stems(self) -> list[str]:
        return [self.block_stem(b) for b in self.blocks]

    @property
    def groups(self) -> list[str]:
        """The volume stem of each block (group-kfold keeps volumes whole)."""
        return [self.sources[b.volume].stem for b in self.blocks]

    @property
    def has_masks(self) -> bool:
        return all(self.sources[b.volume].mask is not None for b in self.blocks)

    @property
    def volumes(self) -> list[int]:
        """Indices (into ``sources``) of the volumes this dataset's blocks come from, in order."""
        return list(dict.fromkeys(b.volume for b in self.blocks))

    @property
    def channels(self) -> int:
        """Channels of every loaded volume: the majority over the volume headers (ties: 3)."""
        if self._channels is None:
            counts = Counter(self._cache.info(v).channels for v in self.volumes)
            self._channels = 1 if counts[1] > counts[3] else 3
        return self._channels

    @property
    def spacing(self) -> tuple[float, float, float]:
        """``(z, y, x)`` voxel spacing: the override, else the first volume's header (1 where none)."""
        if self._spacing is not None:
            return self._spacing
        return self._cache.info(self.volumes[0]).spacing if self.blocks else (1.0, 1.0, 1.0)

    # -- loading --------------------------------------------------------------------------------
    def load_image(self, index: int) -> np.ndarray:
        """Block ``index`` as ``(d, H, W, C)`` uint8 (a copy)."""
        b = self.blocks[index]
        return np.array(self._cache.image(b.volume, self.channels)[b.z0 : b.z1])

    def load_mask(self, index: int, *, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Block ``index``'s labels as ``(d, H, W)`` int64, checking values and (optionally) shape."""
        b = self.blocks[index]
        mask = self._cache.mask(b.volume, self.codec, self.num_classes, self.ignore_index)[b.z0 : b.z1]
        if image_shape is not None and tuple(mask.shape) != tuple(image_shape[:3]):
            src = self.sources[b.volume]
            raise DataError(
                f"{src.mask}: block {self.block_stem(b)} mask shape {tuple(mask.shape)} differs from image "
                f"shape {tuple(image_shape[:3])} (z, y, x)"
            )
        return mask.astype(np.int64)

    def validate(self) -> None:
        """Read every volume once; raise :class:`DataError` naming the first bad file."""
        if not self.blocks:
            raise DataError(f"{self.root or self.name}: dataset is empty")
        for v in self.volumes:
            self._cache.image(v, self.channels)
            if self.sources[v].mask is not None:
                self._cache.mask(v, self.codec, self.num_classes, self.ignore_index)

    # -- views ----------------------------------------------------------------------------------
    def subset(self, indices: Sequence[int], *, name: str | None = None) -> VolumeDataset:
        """A dataset over ``blocks[indices]`` sharing sources, classes, spacing and the volume cache."""
        out = copy.copy(self)
        out.blocks = [self.blocks[int(i)] for i in indices]
        out._channels = self.channels if self.blocks else self._channels
        out.name = self.name if name is None else name
        return out

    def with_blocks(self, blocks: Sequence[VolumeBlock]) -> VolumeDataset:
        """A dataset over ``blocks`` (any z-ranges of its volumes) sharing everything else."""
        out = self.subset([])
        out.blocks = list(blocks)
        return out

    def with_channels(self, channels: int) -> VolumeDataset:
        """The same blocks, every volume converted to ``channels``."""
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        out = copy.copy(self)
        out._channels = int(channels)
        return out

    def slices(self) -> SliceDataset:
        """A 2-D view: every z-slice of this dataset's blocks as one sample (see :class:`SliceDataset`)."""
        refs = [(b.volume, z) for b in self.blocks for z in range(b.z0, b.z1)]
        groups = [self.block_stem(b) for b in self.blocks for _ in range(b.z0, b.z1)]
        return SliceDataset(self, refs, groups)

    def class_pixel_counts(self) -> np.ndarray:
        """Voxels per class over the dataset's blocks (ignore index excluded), int64 ``(K,)``."""
        counts = np.zeros(self.num_classes, np.int64)
        for b in self.blocks:
            m = self._cache.mask(b.volume, self.codec, self.num_classes, self.ignore_index)[b.z0 : b.z1]
            m = m[(m >= 0) & (m < self.num_classes)]
            counts += np.bincount(m.ravel().astype(np.int64), minlength=self.num_classes)
        return counts

    def describe(self) -> dict:
        return {
            "name": self.name,
            "root": str(self.root) if self.root else None,
            "num_samples": len(self),
            "num_volumes": len(self.volumes),
            "num_slices": sum(b.z1 - b.z0 for b in self.blocks),
            "blocks_per_volume": self.blocks_per_volume,
            "spacing": list(self.spacing),
            "classes": self.classes,
            "ignore_index": self.ignore_index,
            "task": self.task,
            "ndim": self.ndim,
        }

    def __repr__(self) -> str:
        return (
            f"VolumeDataset({self.name!r}, {len(self.volumes)} volumes, {len(self)} blocks, "
            f"classes={self.classes})"
        )


class SliceDataset(SegmentationDataset):
    """The z-slices of a :class:`VolumeDataset`'s blocks as a 2-D dataset, read from its cached volumes.

    Sample ``i`` is slice ``z`` of a volume: ``load_image`` gives ``(H, W, C)`` uint8, ``load_mask``
    ``(H, W)`` int64. Each :class:`~segscope.data.dataset.Sample` holds virtual paths:
    ``<root>/<volume stem>/<volume stem>_z012`` (its stem, unique, is ``<volume stem>_z012``) and, for the
    mask, ``<label file>/z012``; its group is the block's stem, so a group split of the slices keeps each
    block whole.
    """

    ndim = 2

    def __init__(self, parent: VolumeDataset, refs: Sequence[tuple[int, int]], groups: Sequence[str]) -> None:
        self.parent = parent
        self.refs = [(int(v), int(z)) for v, z in refs]
        samples = []
        for (v, z), group in zip(self.refs, groups, strict=True):
            src, width = parent.sources[v], max(3, len(str(parent._cache.info(v).shape[0])))
            base = Path(parent.root) if parent.root is not None else src.image.parent
            image = base / src.stem / f"{src.stem}_z{z:0{width}d}"
            mask = None if src.mask is None else src.mask / f"z{z:0{width}d}"
            samples.append(Sample(image, mask, group=group))
        super().__init__(
            samples,
            parent.classes,
            codec=parent.codec,
            ignore_index=parent.ignore_index,
            name=parent.name,
            palette=parent.palette,
            root=parent.root,
            channels=parent.channels,
        )
        self._index = {s.image: i for i, s in enumerate(self.samples)}

    @property
    def spacing(self) -> tuple[float, float]:
        """``(y, x)`` pixel spacing of the slices."""
        return tuple(self.parent.spacing[1:])  # type: ignore[return-value]

    def load_image(self, index: int) -> np.ndarray:
        v, z = self.refs[index]
        return np.array(self.parent._cache.image(v, self.channels)[z])

    def load_mask(self, index: int, *, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
        v, z = self.refs[index]
        vol = self.parent
        mask = vol._cache.mask(v, vol.codec, vol.num_classes, vol.ignore_index)[z].astype(np.int64)
        if image_shape is not None and tuple(mask.shape) != tuple(image_shape[:2]):
            raise DataError(
                f"{self.samples[index].mask}: mask size {mask.shape[1]}x{mask.shape[0]} differs from image "
                f"size {image_shape[1]}x{image_shape[0]}"
            )
        return mask

    def _view(self, positions: Sequence[int], name: str | None, channels: int) -> SliceDataset:
        out = SliceDataset(
            self.parent.with_channels(channels),
            [self.refs[i] for i in positions],
            [self.samples[i].group for i in positions],
        )
        out.name = self.name if name is None else name
        return out

    def subset(self, indices: Sequence[int], *, name: str | None = None) -> SliceDataset:
        return self._view([int(i) for i in indices], name, self.channels)

    def with_samples(self, samples: Sequence[Sample]) -> SliceDataset:
        """The slices whose samples are ``samples`` (samples of this view, e.g. reordered or filtered)."""
        positions = []
        for s in samples:
            if s.image not in self._index:
                raise DataError(f"{s.image}: not a slice of {self.root or self.name}")
            positions.append(self._index[s.image])
        return self._view(positions, None, self.channels)

    def with_channels(self, channels: int) -> SliceDataset:
        return self._view(range(len(self)), None, int(channels))

    def __repr__(self) -> str:
        return f"SliceDataset({self.name!r}, {len(self)} slices, classes={self.classes})"


def open_volumes(
    root: Path,
    sources: Sequence[VolumeSource],
    meta: dict,
    codec_classes: tuple[MaskCodec, list[str]] | None,
    *,
    isbi: bool = False,
    spacing: Sequence[float] | None = None,
    blocks: int | None = None,
) -> VolumeDataset:
    """A :class:`VolumeDataset` over ``sources``.

    ``codec_classes`` is the mask codec and class names when known (mask slices or ``dataset.yaml``);
    ``None`` infers them from the label volumes' values as the folder layout does from mask PNGs: only
    {0, 255} or {0, 1} -> binary background / foreground, else class indices ``0..max`` (255 aside).
    ``meta`` is ``dataset.yaml`` (``ignore_index``, ``palette``, ``name``, ``spacing``). ``isbi``: named
    ``isbi2012``, spacing :data:`ISBI_SPACING` by default.
    """
    cache = VolumeCache(sources)
    codec, classes = codec_classes if codec_classes is not None else label_classes(cache)
    where = f"{root / 'dataset.yaml'}" if spacing is None and "spacing" in meta else f"{root}"
    spacing = spacing if spacing is not None else meta.get("spacing", ISBI_SPACING if isbi else None)
    if spacing is not None:
        spacing = _check_spacing(spacing, where)
    if blocks is None:
        blocks = 1 if len(sources) > 1 else min(SINGLE_VOLUME_BLOCKS, cache.info(0).shape[0])
    elif isinstance(blocks, bool) or not isinstance(blocks, int | np.integer) or blocks < 1:
        raise DataError(f"{root}: blocks (z-blocks per volume) must be a positive integer, got {blocks!r}")
    return VolumeDataset(
        sources,
        classes,
        codec=codec,
        ignore_index=meta.get("ignore_index"),
        name=meta.get("name", "isbi2012" if isbi else root.name),
        palette=np.asarray(meta["palette"], np.uint8) if "palette" in meta else None,
        root=root,
        spacing=spacing,
        blocks_per_volume=int(blocks),
        open_options={"spacing": None if spacing is None else list(spacing), "blocks": int(blocks)},
        cache=cache,
    )


def _check_spacing(spacing, where: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise DataError(f"{where}: spacing must be [z, y, x], three positive numbers, got {spacing!r}")
    return values  # type: ignore[return-value]
