"""A segmentation dataset: paired image and mask files plus class names and an ignore index.

Arrays, not tensors: ``dataset[i]`` is ``(image, mask)`` with ``image`` an ``(H, W, C)`` uint8 array
(``C`` = 1 for grey, 3 for colour) and ``mask`` an ``(H, W)`` int64 array of class indices (or the
ignore index). Classical methods use it as is; deep models wrap it in
:class:`segscope.data.torch_dataset.TorchSegmentationDataset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from segscope.data.masks import MaskCodec
from segscope.errors import DataError


@dataclass(frozen=True)
class Sample:
    """One image with its mask file (``None`` for unlabelled images) and a group id for grouped CV."""

    image: Path
    mask: Path | None
    group: str = ""

    @property
    def stem(self) -> str:
        return self.image.stem


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, C)`` uint8 with C in {1, 3}; a clear DataError if unreadable."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("L", "1", "P") and not _palette_is_colour(im):
                arr = np.asarray(im.convert("L"))[..., None]
            elif im.mode in ("I;16", "I;16B", "I", "F"):
                arr = _to_uint8(np.asarray(im, dtype=np.float64))[..., None]
            else:
                arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({_short(exc)})") from None
    return np.array(arr, dtype=np.uint8, order="C")  # a writable copy (PIL arrays are read-only)


def _palette_is_colour(im) -> bool:
    if im.mode != "P":
        return False
    pal = np.asarray(im.getpalette() or [], dtype=np.int64).reshape(-1, 3)
    return bool(pal.size) and bool(np.any(pal[:, 0] != pal[:, 1]) or np.any(pal[:, 1] != pal[:, 2]))


def _to_uint8(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (
        np.zeros(a.shape, np.uint8) if hi <= lo else ((a - lo) * (255.0 / (hi - lo))).round().astype(np.uint8)
    )


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


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
    ) -> None:
        if len(classes) < 2:
            raise DataError(f"{root or name or 'dataset'}: need at least 2 classes, got {list(classes)}")
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

    # -- loading --------------------------------------------------------------------------------
    def load_image(self, index: int) -> np.ndarray:
        return read_image(self.samples[index].image)

    def load_mask(self, index: int, *, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Decode sample ``index``'s mask to ``(H, W)`` int64, checking values and (optionally) size."""
        sample = self.samples[index]
        if sample.mask is None:
            raise DataError(f"{sample.image}: no mask for this image")
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
        )

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
