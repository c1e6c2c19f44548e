"""The ``volume`` layout on disk: which folders hold volumes, how images pair with labels, and reading
each volume once (:class:`VolumeCache`); :func:`segscope.data.volume_dataset.open_volumes` builds the
dataset that :func:`segscope.data.formats.open_dataset` returns for it.

* ``images/`` + ``masks/`` (optionally under ``train/``, ``val/``, ``test/``) holding volume files
  (multi-page ``.tif``/``.tiff``, ``.nii``/``.nii.gz``, ``.npy``) paired by stem, or sub-folders of 2-D
  slices paired by folder name: one volume each.
* ``images/`` holding only 2-D slices (``images/*.png`` + ``masks/*.png``, as ``em_mito3d/train`` or
  ``isbi2012``): ONE volume, the slices in natural name order. Auto-detection keeps such a folder 2-D; it
  is a volume only when asked for (``format="volume"``).

Auto-detection says ``volume`` when an ``images/`` folder holds ``.nii``/``.nii.gz``/``.npy`` files,
sub-folders, or TIFFs of which the first (by name) has more than one page.

Defaults: ``blocks`` (z-blocks per volume) is 1 when there are several volumes and 5 for a single volume
(at most its depth), so a lone stack can still be cross-validated along z. ``spacing`` ``(z, y, x)``
overrides the files' spacing (also ``spacing: [z, y, x]`` in ``dataset.yaml``); a folder named like
ISBI 2012 defaults to its 50 nm sections of 4 x 4 nm pixels, ``(50, 4, 4)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segscope.data.masks import MaskCodec
from segscope.data.volumes import (
    VOLUME_SUFFIXES,
    VolumeInfo,
    is_multipage_tiff,
    natural_key,
    read_label_volume,
    read_volume,
    slice_files,
    stack_slices,
    volume_info,
    volume_stem,
)
from segscope.errors import DataError

ISBI_SPACING = (50.0, 4.0, 4.0)  # ISBI 2012: 50 nm serial sections, 4 x 4 nm pixels (z, y, x)
SINGLE_VOLUME_BLOCKS = 5
_SPLITS = ("train", "val", "test")

__all__ = [
    "ISBI_SPACING",
    "VolumeCache",
    "VolumeSource",
    "holds_volumes",
    "label_classes",
    "slice_masks",
    "volume_sources",
]


def holds_volumes(images: Path) -> bool:
    """Whether ``images`` holds volumes: ``.nii``/``.nii.gz``/``.npy`` files, sub-folders, or TIFFs of
    which the first (by name) is multi-page (only that one is opened, and only its pages counted)."""
    if not images.is_dir():
        return False
    tiffs = []
    for p in images.iterdir():
        if p.name.startswith("."):
            continue
        name = p.name.lower()
        if p.is_dir() or name.endswith((".nii", ".nii.gz", ".npy")):
            return True
        if name.endswith((".tif", ".tiff")):
            tiffs.append(p)
    return bool(tiffs) and is_multipage_tiff(min(tiffs, key=lambda p: natural_key(p.name)))


def volume_sources(base: Path) -> list[VolumeSource]:
    """The volumes under ``base/images`` paired with ``base/masks`` (see the module docstring)."""
    images, masks = base / "images", base / "masks"
    if not images.is_dir():
        raise DataError(f"{base}: no images/ folder")
    if not holds_volumes(images):
        slice_files(images)  # a DataError if there are none
        stem = f"{base.parent.name}_{base.name}" if base.name in _SPLITS and base.parent.name else base.name
        return [VolumeSource(images, masks if masks.is_dir() else None, stem)]
    found = _entries(images)
    labels = _entries(masks) if masks.is_dir() else {}
    orphans = sorted(set(labels) - set(found))
    if orphans:
        raise DataError(f"{labels[orphans[0]]}: mask without image ({len(orphans)} such masks)")
    return [VolumeSource(found[s], labels.get(s), s) for s in sorted(found, key=natural_key)]


def _entries(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not (p.is_dir() or p.name.lower().endswith(VOLUME_SUFFIXES)):
            continue
        stem = volume_stem(p)
        if stem in out:
            raise DataError(f"{p}: two volumes named {stem!r} in {folder} ({out[stem].name} and {p.name})")
        out[stem] = p
    return out


def slice_masks(sources: Sequence[VolumeSource]) -> list[Path]:
    """The 2-D mask slices of the sources whose labels are folders of slices (their values are read as
    the folder layout reads mask PNGs)."""
    return [p for s in sources if s.mask is not None and s.mask.is_dir() for p in slice_files(s.mask)]


@dataclass(frozen=True)
class VolumeSource:
    """One image volume (a file or a folder of slices), its label volume (or ``None``) and a stem."""

    image: Path
    mask: Path | None
    stem: str


class VolumeCache:
    """Reads each volume of ``sources`` once, on first use; the arrays are shared by every view of a
    dataset (subsets, folds, :meth:`VolumeDataset.slices`). Pickling drops the arrays."""

    def __init__(self, sources: Sequence[VolumeSource]) -> None:
        self.sources = list(sources)
        self._infos: dict[int, VolumeInfo] = {}
        self._images: dict[tuple[int, int], np.ndarray] = {}
        self._masks: dict[tuple, np.ndarray] = {}
        self._raw: dict[int, np.ndarray] = {}

    def __getstate__(self) -> dict:
        return {"sources": self.sources, "_infos": self._infos, "_images": {}, "_masks": {}, "_raw": {}}

    def info(self, v: int) -> VolumeInfo:
        if v not in self._infos:
            self._infos[v] = volume_info(self.sources[v].image)
        return self._infos[v]

    def image(self, v: int, channels: int) -> np.ndarray:
        """``(D, H, W, channels)`` uint8, read-only."""
        key = (v, channels)
        if key not in self._images:
            arr = read_volume(self.sources[v].image, channels=channels).array
            arr = arr[..., None] if arr.ndim == 3 else arr
            arr.setflags(write=False)
            self._images[key] = arr
        return self._images[key]

    def raw_labels(self, v: int) -> np.ndarray:
        """The label volume file's values, compact (for inferring classes before a codec is known)."""
        if v not in self._raw:
            self._raw[v] = _compact(read_label_volume(self.sources[v].mask).array)
        return self._raw[v]

    def mask(self, v: int, codec: MaskCodec, num_classes: int, ignore_index: int | None) -> np.ndarray:
        """``(D, H, W)`` class indices (compact dtype, read-only), checked against the classes and against
        the image volume's shape."""
        key = (v, codec, num_classes, ignore_index)
        if key in self._masks:
            return self._masks[key]
        src = self.sources[v]
        if src.mask is None:
            raise DataError(f"{src.image}: no mask for this volume")
        if src.mask.is_dir():
            labels = _compact(stack_slices(src.mask, slice_files(src.mask), codec.decode))
        else:
            labels = self._raw.pop(v, None)
            if labels is None:
                labels = _compact(read_label_volume(src.mask).array)
            labels = _compact(_decode(codec, labels, src.mask))
        bad = (labels < 0) | (labels >= num_classes)
        if ignore_index is not None:
            bad &= labels != ignore_index
        if bad.any():
            values = sorted(np.unique(labels[bad]).tolist())[:8]
            raise DataError(
                f"{src.mask}: label values {values} outside the {num_classes} declared classes"
                + (f" (ignore index {ignore_index})" if ignore_index is not None else "")
            )
        _check_shapes(src, self.info(v).shape, labels.shape)
        labels.setflags(write=False)
        self._masks[key] = labels
        return labels


def _decode(codec: MaskCodec, labels: np.ndarray, path: Path | None = None) -> np.ndarray:
    """A label volume's values -> class indices, as ``codec`` decodes a mask PNG."""
    if codec.mode == "binary":
        return labels > (codec.binary_threshold if labels.max(initial=0) > 1 else 0)
    if codec.mode == "rgb":
        raise DataError(f"{path}: colour (rgb) masks are 2-D PNGs; a label volume holds class indices")
    return labels


def _compact(labels: np.ndarray) -> np.ndarray:
    lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    for dt in (np.uint8, np.int16, np.int32):
        if np.iinfo(dt).min <= lo and hi <= np.iinfo(dt).max:
            return np.ascontiguousarray(labels, dtype=dt)
    return np.ascontiguousarray(labels, dtype=np.int64)


def _check_shapes(src: VolumeSource, image: tuple[int, ...], mask: tuple[int, ...]) -> None:
    if mask[0] != image[0]:
        raise DataError(f"{src.mask}: {mask[0]} mask slices, image {src.image.name} has {image[0]}")
    if tuple(mask[1:3]) != tuple(image[1:3]):
        raise DataError(
            f"{src.mask}: mask slices are {mask[2]}x{mask[1]}, image {src.image.name} slices are "
            f"{image[2]}x{image[1]}"
        )


def label_classes(cache: VolumeCache) -> tuple[MaskCodec, list[str]]:
    """Codec and class names from the label volumes' values, as the folder layout infers them from mask
    PNGs: only {0, 255} or {0, 1} -> binary background / foreground, else class indices ``0..max`` (255
    aside). The labels stay in ``cache`` for the dataset."""
    values: set[int] = set()
    for v, s in enumerate(cache.sources):
        if s.mask is not None:
            values |= set(np.unique(cache.raw_labels(v)).tolist())
    if values <= {0, 255} or values <= {0, 1}:
        return MaskCodec("binary"), ["background", "foreground"]
    k = max(v for v in values if v != 255) + 1 if values - {255} else 2
    return MaskCodec("index"), [f"class{i}" for i in range(max(k, 2))]
