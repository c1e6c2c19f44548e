"""Mask file formats -> class-index arrays.

* ``index``: a single-channel PNG whose values are class indices (also palette PNGs, whose *indices*
  are the classes, as in PASCAL VOC; 255 is then usually the ignore index);
* ``binary``: a 0/255 (or 0/1) PNG -> {0, 1}; any value above ``binary_threshold`` is 1;
* ``rgb``: a colour PNG whose colours map to classes through a palette.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segscope.errors import DataError

MODES = ("index", "binary", "rgb")


@dataclass(frozen=True)
class MaskCodec:
    """Decodes a mask file to an ``(H, W)`` int64 class-index array and encodes it back."""

    mode: str = "index"
    binary_threshold: int = 127
    colours: tuple[tuple[int, int, int], ...] = field(default=())
    unknown_colour_value: int = 255

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mask mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "rgb" and not self.colours:
            raise ValueError("mask mode 'rgb' needs a colour per class (palette)")

    def decode(self, path: str | Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        path = Path(path)
        try:
            with Image.open(path) as im:
                im.load()
                if self.mode == "rgb":
                    arr = np.asarray(im.convert("RGB"))
                elif im.mode == "P":
                    arr = np.asarray(im)  # palette indices are the classes (VOC)
                elif im.mode in ("RGB", "RGBA"):
                    rgb = np.asarray(im.convert("RGB"))
                    if not (
                        np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
                    ):
                        raise DataError(
                            f"{path}: colour mask, but the dataset declares no class colours "
                            "(add a palette to dataset.yaml)"
                        )
                    arr = rgb[..., 0]
                else:
                    arr = np.asarray(im)
        except FileNotFoundError:
            raise DataError(f"{path}: mask file not found") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DataError(f"{path}: cannot read mask ({str(exc).splitlines()[0][:120]})") from None
        if self.mode == "binary":
            return (arr > (self.binary_threshold if arr.max() > 1 else 0)).astype(np.int64)
        if self.mode == "rgb":
            return self._rgb_to_index(arr, path)
        if arr.ndim != 2:
            raise DataError(f"{path}: expected a single-channel mask, got shape {arr.shape}")
        return arr.astype(np.int64)

    def _rgb_to_index(self, rgb: np.ndarray, path: Path) -> np.ndarray:
        code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        out = np.full(code.shape, self.unknown_colour_value, np.int64)
        for k, (r, g, b) in enumerate(self.colours):
            out[code == ((r << 16) | (g << 8) | b)] = k
        return out

    def encode(self, labels: np.ndarray) -> np.ndarray:
        """Class indices -> the array to write as PNG in this codec's format."""
        if self.mode == "binary":
            return (labels > 0).astype(np.uint8) * 255
        if self.mode == "rgb":
            pal = np.asarray(self.colours, np.uint8)
            return pal[np.clip(labels, 0, len(pal) - 1)]
        return labels.astype(np.uint8)
