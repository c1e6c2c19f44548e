"""Dataset layouts on disk and their auto-detection.

=========  ====================================================================================
layout     what it looks like
=========  ====================================================================================
folder     ``images/`` + ``masks/`` paired by file stem (optionally ``train/``, ``val/``, ``test/``
           sub-folders each holding the two); masks as class-index, palette or 0/255 PNGs.
isbi       the folder layout of ISBI 2012 (0 = membrane, 255 = cell interior) with its class names.
camvid     ``train/`` + ``trainannot/``, ``val/`` + ``valannot/`` (SegNet split): 11 classes, 11 = ignore.
voc        ``JPEGImages/``, ``SegmentationClass/`` palette PNGs, ``ImageSets/Segmentation/*.txt``;
           21 classes, 255 = ignore.
=========  ====================================================================================

An optional ``dataset.yaml`` in the root overrides class names, ignore index, mask mode and palette::

    classes: [background, cell]
    ignore_index: 255          # or null
    mask_mode: binary          # index | binary | rgb
    palette: [[0, 0, 0], [255, 200, 0]]
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from segscope.data.dataset import Sample, SegmentationDataset
from segscope.data.masks import MaskCodec
from segscope.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
FORMATS = ("auto", "folder", "isbi", "camvid", "voc")

CAMVID_CLASSES = [
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
]
CAMVID_PALETTE = [
    (128, 128, 128),
    (128, 0, 0),
    (192, 192, 128),
    (128, 64, 128),
    (60, 40, 222),
    (128, 128, 0),
    (192, 128, 128),
    (64, 64, 128),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
]
VOC_CLASSES = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]
ISBI_CLASSES = ["membrane", "cell"]


def detect_format(root: str | Path) -> str:
    """Guess the layout of ``root`` (see module docstring); raise DataError if none fits."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    if (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir():
        return "voc"
    if (root / "train").is_dir() and (root / "trainannot").is_dir():
        return "camvid"
    if _folder_splits(root):
        return "isbi" if "isbi" in root.name.lower() else "folder"
    raise DataError(
        f"{root}: unknown dataset layout (expected images/ + masks/, CamVid train/ + trainannot/, "
        "or VOC JPEGImages/ + SegmentationClass/)"
    )


def _folder_splits(root: Path) -> dict[str, Path]:
    if (root / "images").is_dir():
        return {"all": root}
    return {s: root / s for s in ("train", "val", "test") if (root / s / "images").is_dir()}


def available_splits(root: str | Path, format: str = "auto") -> list[str]:
    """Split names ``open_dataset`` accepts for ``root``."""
    root = Path(root)
    fmt = detect_format(root) if format == "auto" else format
    if fmt in ("folder", "isbi"):
        return list(_folder_splits(root))
    if fmt == "camvid":
        return [s for s in ("train", "val", "test") if (root / s).is_dir() and (root / f"{s}annot").is_dir()]
    if fmt == "voc":
        sets = root / "ImageSets" / "Segmentation"
        return sorted(p.stem for p in sets.glob("*.txt")) if sets.is_dir() else ["all"]
    raise DataError(f"{root}: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def open_dataset(root: str | Path, split: str | None = None, *, format: str = "auto") -> SegmentationDataset:
    """Open the dataset at ``root``; ``split`` defaults to ``train`` if present, else everything."""
    root = Path(root)
    if format not in FORMATS:
        raise DataError(f"{root}: unknown format {format!r}; choose from {', '.join(FORMATS)}")
    fmt = detect_format(root) if format == "auto" else format
    splits = available_splits(root, fmt)
    if split is None:
        split = "train" if "train" in splits else splits[0] if splits else "all"
    if split not in splits and not (split == "all" and fmt != "camvid"):
        raise DataError(f"{root}: no split {split!r} (available: {', '.join(splits) or 'none'})")
    meta = _read_yaml(root)
    if fmt == "camvid":
        ds = _open_camvid(root, split)
    elif fmt == "voc":
        ds = _open_voc(root, split)
    else:
        ds = _open_folder(root, split, fmt, meta)
    if meta:
        ds = _apply_meta(ds, meta, root)
    if len(ds) == 0:
        raise DataError(f"{root}: dataset is empty (split {split!r})")
    return ds


# -- layouts -------------------------------------------------------------------------------------
def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _pair_by_stem(image_dir: Path, mask_dir: Path | None) -> list[tuple[Path, Path | None]]:
    images = _images_in(image_dir)
    masks = {p.stem: p for p in _images_in(mask_dir)} if mask_dir is not None and mask_dir.is_dir() else {}
    stems = {p.stem for p in images}
    orphans = sorted(set(masks) - stems)
    if orphans:
        raise DataError(f"{masks[orphans[0]]}: mask without image ({len(orphans)} such masks)")
    return [(p, masks.get(p.stem)) for p in images]


def _open_folder(root: Path, split: str, fmt: str, meta: dict) -> SegmentationDataset:
    base = root if split == "all" else root / split
    pairs = _pair_by_stem(base / "images", base / "masks")
    if fmt == "isbi":
        classes, codec, name = ISBI_CLASSES, MaskCodec("binary"), "isbi2012"
    else:
        codec, classes = _infer_codec_and_classes([m for _, m in pairs if m is not None][:16], meta)
        name = root.name
    samples = [Sample(img, m, group=_group_of(img.stem)) for img, m in pairs]
    return SegmentationDataset(samples, classes, codec=codec, name=name, root=root)


def _infer_codec_and_classes(masks: list[Path], meta: dict) -> tuple[MaskCodec, list[str]]:
    """Binary if the sampled masks hold only {0, 255} (or {0, 1}), else class-index PNGs."""
    from PIL import Image

    if meta.get("mask_mode") or meta.get("classes"):
        mode = meta.get("mask_mode", "index")
        colours = tuple(tuple(c) for c in meta.get("palette", ())) if mode == "rgb" else ()
        classes = meta.get("classes") or ["background", "foreground"]
        return MaskCodec(mode, colours=colours), list(classes)
    values: set[int] = set()
    for m in masks:
        try:
            with Image.open(m) as im:
                values |= set(np.unique(np.asarray(im)).tolist()) if im.mode != "RGB" else {0, 1, 2}
        except OSError:
            raise DataError(f"{m}: cannot read mask") from None
    if values <= {0, 255} or values <= {0, 1}:
        return MaskCodec("binary"), ["background", "foreground"]
    k = max(v for v in values if v != 255) + 1 if values - {255} else 2
    return MaskCodec("index"), [f"class{i}" for i in range(k)]


def _group_of(stem: str) -> str:
    """A sequence/volume id from a file stem: the part before the last ``_`` or trailing digits."""
    if "_" in stem:
        return stem.rsplit("_", 1)[0]
    m = re.match(r"^(.*?)(\d+)$", stem)
    return m.group(1) if m and m.group(1) else ""


def _open_camvid(root: Path, split: str) -> SegmentationDataset:
    pairs = _pair_by_stem(root / split, root / f"{split}annot")
    samples = [Sample(img, m, group=_group_of(img.stem)) for img, m in pairs]
    return SegmentationDataset(
        samples,
        CAMVID_CLASSES,
        codec=MaskCodec("index"),
        ignore_index=11,
        name="camvid",
        palette=np.asarray(CAMVID_PALETTE, np.uint8),
        root=root,
    )


def _open_voc(root: Path, split: str) -> SegmentationDataset:
    image_dir, mask_dir = root / "JPEGImages", root / "SegmentationClass"
    list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if list_file.is_file():
        stems = [s.strip() for s in list_file.read_text().splitlines() if s.strip()]
    else:
        stems = [p.stem for p in _images_in(mask_dir)]
    samples = []
    for stem in stems:
        img = next(
            (
                image_dir / f"{stem}{sfx}"
                for sfx in (".jpg", ".jpeg", ".png")
                if (image_dir / f"{stem}{sfx}").is_file()
            ),
            None,
        )
        if img is None:
            raise DataError(f"{mask_dir / (stem + '.png')}: mask without image in {image_dir}")
        samples.append(Sample(img, mask_dir / f"{stem}.png", group=stem.split("_")[0]))
    return SegmentationDataset(
        samples, VOC_CLASSES, codec=MaskCodec("index"), ignore_index=255, name="voc", root=root
    )


# -- dataset.yaml --------------------------------------------------------------------------------
def _read_yaml(root: Path) -> dict:
    path = root / "dataset.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        meta = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a mapping with keys classes, ignore_index, mask_mode, palette")
    unknown = set(meta) - {"classes", "ignore_index", "mask_mode", "palette", "name"}
    if unknown:
        raise DataError(f"{path}: unknown keys {sorted(unknown)}")
    return meta


def _apply_meta(ds: SegmentationDataset, meta: dict, root: Path) -> SegmentationDataset:
    classes = meta.get("classes", ds.classes)
    codec = ds.codec
    if "mask_mode" in meta or ("palette" in meta and meta.get("mask_mode") == "rgb"):
        mode = meta.get("mask_mode", codec.mode)
        colours = tuple(tuple(c) for c in meta.get("palette", ())) if mode == "rgb" else ()
        try:
            codec = MaskCodec(mode, colours=colours)
        except ValueError as exc:
            raise DataError(f"{root / 'dataset.yaml'}: {exc}") from None
    palette = (
        np.asarray(meta["palette"], np.uint8)
        if "palette" in meta
        else (ds.palette if len(classes) == ds.num_classes else None)
    )
    return SegmentationDataset(
        ds.samples,
        classes,
        codec=codec,
        ignore_index=meta.get("ignore_index", ds.ignore_index),
        name=meta.get("name", ds.name),
        palette=palette,
        root=root,
    )
