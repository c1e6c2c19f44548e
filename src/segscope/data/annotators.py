"""Datasets with several human annotations per image (variance in ground truth), BSDS500's layout:

    images/<stem>.jpg                      (any image suffix)
    segmentations/<stem>/<k>.png           one region-label map per annotator (8- or 16-bit), k = 1..K
    boundaries/<stem>/<k>.png              optional: that annotation's boundary map (non-zero = boundary)

``K`` may differ between images; ``k`` orders the annotations of one image and is not a person's id.
Without ``boundaries/``, an annotation's boundary is its region contour
(:func:`segscope.metrics.class_boundaries`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segscope.data.formats import IMAGE_SUFFIXES
from segscope.data.images import pil_guard, read_image
from segscope.data.masks import MaskCodec
from segscope.errors import DataError

_IDS = MaskCodec("index")  # region ids as stored, no class mapping


class MultiAnnotatorDataset:
    """Images with K annotations each: ``load_segmentations(i)``, ``load_boundaries(i)`` (lists of K maps)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        images, segs = self.root / "images", self.root / "segmentations"
        for folder in (images, segs):
            if not folder.is_dir():
                raise DataError(f"{self.root}: no {folder.name}/ folder (expected images/ + segmentations/)")
        self.image_paths = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.image_paths:
            raise DataError(f"{images}: no images")
        self.stems = [p.stem for p in self.image_paths]
        for stem in self.stems:
            if not self._annotation_paths("segmentations", stem):
                raise DataError(f"{segs / stem}: no annotations for image {stem}")
        self.has_boundaries = (self.root / "boundaries").is_dir()
        self.name = self.root.name

    def __len__(self) -> int:
        return len(self.stems)

    def _annotation_paths(self, kind: str, stem: str) -> list[Path]:
        folder = self.root / kind / stem
        if not folder.is_dir():
            return []
        paths = [p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.stem.isdigit()]
        return sorted(paths, key=lambda p: int(p.stem))

    def load_image(self, index: int) -> np.ndarray:
        return read_image(self.image_paths[index])

    def _image_shape(self, index: int) -> tuple[int, int]:
        """Height and width from the image header (nothing decoded)."""
        from PIL import Image

        path = self.image_paths[index]
        try:
            with pil_guard(path), Image.open(path) as im:
                return im.height, im.width
        except DataError:
            raise
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"{path}: cannot read image ({exc})") from None

    def load_segmentations(self, index: int) -> list[np.ndarray]:
        """The K region-label maps of image ``index`` (int64, the image's height and width)."""
        shape = self._image_shape(index)
        return [_label_png(p, shape) for p in self._annotation_paths("segmentations", self.stems[index])]

    def load_boundaries(self, index: int) -> list[np.ndarray]:
        """The K boundary maps (bool): the shipped ones when ``boundaries/`` exists, else region contours."""
        stem = self.stems[index]
        if self.has_boundaries:
            shape = self._image_shape(index)
            paths = self._annotation_paths("boundaries", stem)
            if len(paths) != len(self._annotation_paths("segmentations", stem)):
                raise DataError(f"{self.root / 'boundaries' / stem}: not one boundary map per segmentation")
            return [_label_png(p, shape) > 0 for p in paths]
        from segscope.metrics.boundary import class_boundaries

        return [class_boundaries(s) for s in self.load_segmentations(index)]


def _label_png(path: Path, shape: tuple[int, int]) -> np.ndarray:
    a = _IDS.decode(path)  # raw 8/16-bit ids, one line naming the file if unreadable
    if a.shape != tuple(shape):
        raise DataError(f"{path}: annotation is {a.shape[1]}x{a.shape[0]}, image is {shape[1]}x{shape[0]}")
    return a
