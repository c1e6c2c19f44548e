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
instance   ``images/`` + ``instances/`` (no ``masks/``; optionally in ``train/``, ``val/``, ``test/``):
           instance-id PNGs, 8- or 16-bit, 0 = background, each other value one object (CVPPP).
           ``task == "instance"``; classes background / object; ``load_mask`` gives instance > 0 and
           ``load_instances`` the :class:`~segscope.types.Instances`.
volume     ``images/`` + ``masks/`` (optionally in ``train/``, ``val/``, ``test/``) of multi-page TIFF, NIfTI,
           ``.npy`` volumes or slice sub-folders paired by stem (or, asked for, ``images/*.png`` as ONE
           volume): a ``VolumeDataset`` of z-blocks; detection, spacing, blocks: :mod:`~.volume_layout`.
=========  ====================================================================================

An optional ``dataset.yaml`` in the root overrides class names, ignore index, mask mode and palette::

    classes: [background, cell]
    ignore_index: 255          # or null
    mask_mode: binary          # index | binary | rgb
    palette: [[0, 0, 0], [255, 200, 0]]
    spacing: [50, 4, 4]        # volumes only: (z, y, x) voxel spacing overriding the files'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segscope.data.dataset import Sample, SegmentationDataset
from segscope.data.images import pil_guard
from segscope.data.masks import MaskCodec
from segscope.data.volume_dataset import VolumeDataset, open_volumes
from segscope.data.volume_layout import holds_volumes, slice_masks, volume_sources
from segscope.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
FORMATS = ("auto", "folder", "isbi", "camvid", "voc", "instance", "volume")
INSTANCE_CLASSES = ["background", "object"]

CAMVID_CLASSES = "Sky Building Pole Road Pavement Tree SignSymbol Fence Car Pedestrian Bicyclist".split()
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
VOC_CLASSES = (
    "background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike "
    "person pottedplant sheep sofa train tvmonitor"
).split()
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
    instance_splits = _instance_splits(root)
    if instance_splits and not any((p / "masks").is_dir() for p in instance_splits.values()):
        return "instance"
    if splits := _folder_splits(root):
        if any(holds_volumes(p / "images") for p in splits.values()):
            return "volume"
        return "isbi" if "isbi" in root.name.lower() else "folder"
    raise DataError(
        f"{root}: unknown dataset layout (expected images/ + masks/, CamVid train/ + trainannot/, "
        "or VOC JPEGImages/ + SegmentationClass/)"
    )


def _folder_splits(root: Path) -> dict[str, Path]:
    if (root / "images").is_dir():
        return {"all": root}
    return {s: root / s for s in ("train", "val", "test") if (root / s / "images").is_dir()}


def _instance_splits(root: Path) -> dict[str, Path]:
    """Split name -> folder holding ``images/`` + ``instances/`` (the instance layout)."""
    if (root / "images").is_dir() and (root / "instances").is_dir():
        return {"all": root}
    return {
        s: root / s
        for s in ("train", "val", "test")
        if (root / s / "images").is_dir() and (root / s / "instances").is_dir()
    }


def available_splits(root: str | Path, format: str = "auto") -> list[str]:
    """Split names ``open_dataset`` accepts for ``root``."""
    root = Path(root)
    fmt = detect_format(root) if format == "auto" else format
    if fmt in ("folder", "isbi", "volume"):
        return list(_folder_splits(root))
    if fmt == "instance":
        return list(_instance_splits(root))
    if fmt == "camvid":
        return [s for s in ("train", "val", "test") if (root / s).is_dir() and (root / f"{s}annot").is_dir()]
    if fmt == "voc":
        sets = root / "ImageSets" / "Segmentation"
        return sorted(p.stem for p in sets.glob("*.txt")) if sets.is_dir() else ["all"]
    raise DataError(f"{root}: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def open_dataset(
    root: str | Path,
    split: str | None = None,
    *,
    format: str = "auto",
    spacing: Sequence[float] | None = None,
    blocks: int | None = None,
) -> SegmentationDataset | VolumeDataset:
    """Open the dataset at ``root``; ``split`` defaults to ``train`` if present, else everything. Volumes
    only: ``spacing`` ``(z, y, x)`` overrides the files', ``blocks`` is z-blocks per volume (default 1 for
    several volumes, 5 for one); see :mod:`segscope.data.volume_layout`."""
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
    if fmt != "volume" and (spacing is not None or blocks is not None):
        raise DataError(f"{root}: spacing and blocks apply to volumes (format 'volume'), not {fmt!r}")
    if fmt == "volume":
        ds = _open_volume(root, split, meta, spacing, blocks)
    elif fmt == "camvid":
        ds = _open_camvid(root, split)
    elif fmt == "voc":
        ds = _open_voc(root, split)
    elif fmt == "instance":
        ds = _open_instance(root, split)
    else:
        ds = _open_folder(root, split, fmt, meta)
    if meta and fmt != "volume":
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
        codec, classes = _infer_codec_and_classes([m for _, m in pairs if m is not None], meta)
        name = root.name
    samples = [Sample(img, m, group=_group_of(img.stem)) for img, m in pairs]
    return SegmentationDataset(samples, classes, codec=codec, name=name, root=root)


def _open_volume(root: Path, split: str, meta: dict, spacing, blocks) -> VolumeDataset:
    """The volume layout; mask slices are read as the folder layout reads masks, ISBI keeps its classes."""
    sources = volume_sources(root if split == "all" else root / split)
    isbi, declared = "isbi" in root.name.lower(), bool(meta.get("classes") or meta.get("mask_mode"))
    if isbi and not declared:
        codec_classes = (MaskCodec("binary"), ISBI_CLASSES)
    else:
        masks = slice_masks(sources)
        codec_classes = _infer_codec_and_classes(masks, meta) if masks or declared else None
    return open_volumes(root, sources, meta, codec_classes, isbi=isbi, spacing=spacing, blocks=blocks)


def _open_instance(root: Path, split: str) -> SegmentationDataset:
    """``images/`` + ``instances/`` (instance-id PNGs, 0 = background, 8- or 16-bit): an instance dataset
    whose semantic masks are ``instance > 0`` (classes background / object)."""
    base = root if split == "all" else root / split
    pairs = _pair_by_stem(base / "images", base / "instances")
    samples = [Sample(img, m, group=_group_of(img.stem)) for img, m in pairs]
    return SegmentationDataset(
        samples,
        INSTANCE_CLASSES,
        codec=MaskCodec("binary", binary_threshold=0),  # any non-zero id is the object class
        name=root.name,
        root=root,
        task="instance",
    )


def _infer_codec_and_classes(masks: list[Path], meta: dict) -> tuple[MaskCodec, list[str]]:
    """Binary if all masks hold only {0, 255} (or {0, 1}), else class-index PNGs.

    Every mask is scanned (values cached per file), so a stray label in one mask is reported with that
    mask's name (see :func:`_check_stray_labels`) rather than guessed around.
    """
    if meta.get("mask_mode") or meta.get("classes"):
        mode = meta.get("mask_mode", "index")
        colours = tuple(tuple(c) for c in meta.get("palette", ())) if mode == "rgb" else ()
        classes = meta.get("classes") or ["background", "foreground"]
        return MaskCodec(mode, colours=colours), list(classes)
    per_mask = [(m, _mask_values(m)) for m in masks]
    values: set[int] = set().union(*(v for _, v in per_mask))
    _check_stray_labels(per_mask, values, meta.get("ignore_index"))
    if values <= {0, 255} or values <= {0, 1}:
        return MaskCodec("binary"), ["background", "foreground"]
    k = max(v for v in values if v != 255) + 1 if values - {255} else 2
    return MaskCodec("index"), [f"class{i}" for i in range(k)]


_MASK_VALUES: dict[tuple[str, int, int], frozenset[int]] = {}


def _mask_values(path: Path) -> frozenset[int]:
    """The distinct raw values of a mask file, cached by (path, mtime, size)."""
    from PIL import Image

    try:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key in _MASK_VALUES:
            return _MASK_VALUES[key]
        with pil_guard(path), Image.open(path) as im:
            if im.mode == "RGB":
                values = frozenset({0, 1, 2})
            else:
                a = np.asarray(im)
                if a.dtype == np.uint8:
                    found = np.flatnonzero(np.bincount(a.ravel(), minlength=256))
                else:
                    found = np.unique(a)
                values = frozenset(int(v) for v in found.tolist())
    except OSError:
        raise DataError(f"{path}: cannot read mask") from None
    if len(_MASK_VALUES) > 200_000:
        _MASK_VALUES.clear()
    _MASK_VALUES[key] = values
    return values


def _check_stray_labels(per_mask: list[tuple[Path, frozenset[int]]], values: set[int], ignore) -> None:
    """Raise DataError naming the first mask holding a stray label: a value beyond a gap in the labels
    (the labels run 0, 1, ..., r without a hole, 255 and the ignore index aside) that appears in only a
    few masks (at most 1 in 20) -- e.g. a 7 in one mask of a 0/1 set, or a 128 in one of a 0/255 set."""
    if len(per_mask) < 5:
        return  # too few masks to tell a stray from a class
    run = 0
    while run in values:
        run += 1
    gap = values - set(range(run)) - {255, ignore}
    few = max(1, len(per_mask) // 20)
    holders = {v: [m for m, vals in per_mask if v in vals] for v in gap}
    stray = sorted(v for v, ms in holders.items() if len(ms) <= few)
    if not stray:
        return
    bad = [m for m, vals in per_mask if vals & set(stray)]
    others = sorted(values - set(stray))
    shown = ", ".join(map(str, others)) if len(others) <= 8 else f"{others[0]}..{others[-1]}"
    more = f" (and {len(bad) - 1} other mask{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
    raise DataError(
        f"{bad[0]}: stray label value{'s' if len(stray) > 1 else ''} {stray}{more}: the other masks hold "
        f"only {{{shown}}}; fix the mask, or declare classes and mask_mode in dataset.yaml"
    )


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
    unknown = set(meta) - {"classes", "ignore_index", "mask_mode", "palette", "name", "spacing"}
    if unknown:
        raise DataError(f"{path}: unknown keys {sorted(unknown)}")
    return meta


def _apply_meta(ds: SegmentationDataset, meta: dict, root: Path) -> SegmentationDataset:
    classes = meta.get("classes", ds.classes)
    codec = ds.codec
    if ds.task == "instance":
        if "mask_mode" in meta:
            raise DataError(f"{root / 'dataset.yaml'}: mask_mode does not apply to an instance dataset")
        if len(classes) != 2:
            raise DataError(
                f"{root / 'dataset.yaml'}: an instance dataset has 2 classes (background, object), "
                f"got {list(classes)}"
            )
    elif "mask_mode" in meta or ("palette" in meta and meta.get("mask_mode") == "rgb"):
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
        task=ds.task,
    )
