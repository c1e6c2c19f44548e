"""Point-cloud files: the ShapeNet-Part benchmark layout, ``.pts`` / ``.seg``, ``.ply`` and ``.npy``.

ShapeNet-Part (Yi et al., "A Scalable Active Framework for Region Annotation in 3D Shape Collections",
SIGGRAPH Asia 2016; the ``shapenetcore_partanno_segmentation_benchmark_v0`` layout used by PointNet):

    synsetoffset2category.txt                 "<Name>\\t<synset>" per line
    <synset>/points/<id>.pts                  one "x y z" line per point
    <synset>/points_label/<id>.seg            one part label per line, 1-based within the category
    train_test_split/shuffled_<split>_file_list.json   ["shape_data/<synset>/<id>", ...]

Labels in memory are the files' labels: 1..P within the shape's category. Every reader raises a one-line
:class:`~segscope.errors.DataError` naming the file. Raw ShapeNet-Part points are centred with a bounding
box diagonal of 1; :func:`normalize_unit_sphere` (centroid to the origin, farthest point at radius 1) is
the normalisation PointNet's evaluation applies and what every cloud here is given to the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from segscope.errors import DataError
from segscope.io import write_bytes_atomic, write_text_atomic
from segscope.points.io_ply import read_ply, write_ply  # noqa: F401 (write_ply re-exported)

# (name, synset, part names by 1-based label). The part counts are ShapeNet-Part's; which label is which
# part was read off the geometry of the real sample (y is up; chairs, cars, planes face +x). Labels absent
# from the sample (Chair 4, Lamp 3) follow the ShapeNet-Part part list.
CATEGORIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Airplane", "02691156", ("body", "wing", "tail", "engine")),
    ("Bag", "02773838", ("handle", "body")),
    ("Cap", "02954340", ("panels", "peak")),
    ("Car", "02958343", ("roof", "hood", "wheel", "body")),
    ("Chair", "03001627", ("back", "seat", "leg", "arm")),
    ("Earphone", "03261776", ("earcup", "headband", "connector")),
    ("Guitar", "03467517", ("head", "neck", "body")),
    ("Knife", "03624134", ("blade", "handle")),
    ("Lamp", "03636649", ("base", "shade", "canopy", "tube")),
    ("Laptop", "03642806", ("keyboard", "screen")),
    ("Motorbike", "03790512", ("gas_tank", "seat", "wheel", "handle", "light", "frame")),
    ("Mug", "03797390", ("handle", "body")),
    ("Pistol", "03948459", ("barrel", "grip", "trigger")),
    ("Rocket", "04099429", ("body", "fin", "nose")),
    ("Skateboard", "04225987", ("wheel", "deck", "truck")),
    ("Table", "04379243", ("top", "leg", "support")),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(c[0] for c in CATEGORIES)
SYNSETS: dict[str, str] = {c[1]: c[0] for c in CATEGORIES}
PART_NAMES: dict[str, tuple[str, ...]] = {c[0]: c[2] for c in CATEGORIES}
NUM_PARTS: dict[str, int] = {c[0]: len(c[2]) for c in CATEGORIES}
# First index of each category's parts among the 50 parts of all categories (the network's outputs).
PART_OFFSET: dict[str, int] = {
    n: int(sum(len(c[2]) for c in CATEGORIES[:i])) for i, (n, _, _) in enumerate(CATEGORIES)
}
TOTAL_PARTS: int = sum(NUM_PARTS.values())  # 50


class LabelledCloud(NamedTuple):
    """One shape: ``points`` (N, 3) float32, ``labels`` (N,) int64 in 1..P of ``category`` (or ``None``)."""

    category: str
    points: np.ndarray
    labels: np.ndarray | None
    name: str = ""


def category_name(text: str) -> str:
    """The canonical category name for a name (any case) or a synset; DataError if unknown."""
    if text in SYNSETS:
        return SYNSETS[text]
    for name in CATEGORY_NAMES:
        if name.lower() == text.strip().lower():
            return name
    raise DataError(f"unknown ShapeNet-Part category {text!r} (one of {', '.join(CATEGORY_NAMES)})")


def category_from_path(path: str | Path) -> str | None:
    """The category a file's path names (a ``<synset>`` or category-name folder above it), else ``None``."""
    for parent in Path(path).parents:
        if parent.name in SYNSETS:
            return SYNSETS[parent.name]
        if parent.name in CATEGORY_NAMES:
            return parent.name
    return None


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centroid to the origin, farthest point at radius 1 (PointNet's ``pc_normalize``); (N, 3) float32."""
    centred = points - points.mean(axis=0, keepdims=True)
    radius = float(np.sqrt((centred**2).sum(axis=1)).max())
    return (centred / radius if radius > 0 else centred).astype(np.float32)


def check_labels(labels: np.ndarray, category: str, path: str | Path) -> None:
    """DataError when a label lies outside 1..P of ``category``."""
    if labels.size and (labels.min() < 1 or labels.max() > NUM_PARTS[category]):
        raise DataError(
            f"{path}: part labels {labels.min()}..{labels.max()} outside 1..{NUM_PARTS[category]} "
            f"of {category}"
        )


# --- .pts / .seg ------------------------------------------------------------------------------------------


def _read_numbers(path: Path, per_line: int, dtype: type) -> np.ndarray:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"{path}: empty file")
    tokens = text.split()
    try:
        if len(tokens) != per_line * len(lines):
            raise ValueError
        values = np.array(tokens, dtype=np.float64).reshape(len(lines), per_line)
    except ValueError:
        for i, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            try:
                ok = not parts or (len(parts) == per_line and all(np.isfinite(float(p)) for p in parts))
            except ValueError:
                ok = False
            if not ok:
                raise DataError(
                    f"{path}: line {i}: expected {per_line} number(s), got {line.strip()[:60]!r}"
                ) from None
        raise DataError(f"{path}: unreadable numbers") from None
    if not np.isfinite(values).all():
        raise DataError(f"{path}: non-finite values")
    if dtype is np.int64 and (values != np.round(values)).any():
        raise DataError(f"{path}: labels must be integers")
    return values.astype(dtype)


def read_pts(path: str | Path) -> np.ndarray:
    """A ``.pts`` file: (N, 3) float32."""
    return _read_numbers(Path(path), 3, np.float32)


def read_seg(path: str | Path) -> np.ndarray:
    """A ``.seg`` file: (N,) int64 part labels (1-based within the category)."""
    return _read_numbers(Path(path), 1, np.int64)[:, 0]


def write_pts(path: str | Path, points: np.ndarray) -> None:
    write_text_atomic(path, "".join(f"{x:.5f} {y:.5f} {z:.5f}\n" for x, y, z in np.asarray(points, float)))


def write_seg(path: str | Path, labels: np.ndarray) -> None:
    write_text_atomic(path, "".join(f"{int(v)}\n" for v in np.asarray(labels)))


def write_npy(path: str | Path, array: np.ndarray) -> None:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    write_bytes_atomic(path, buffer.getvalue())


def read_npy(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A ``.npy`` cloud: (N, 3) points, or (N, 4) with the part label in the last column."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a .npy array ({str(exc).splitlines()[0][:80]})") from None
    if (
        array.ndim != 2
        or array.shape[1] not in (3, 4)
        or array.shape[0] == 0
        or array.dtype.kind not in "fiu"
    ):
        raise DataError(f"{path}: expected a numeric (N, 3) or (N, 4) array, got {array.dtype} {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{path}: non-finite values")
    labels = array[:, 3].astype(np.int64) if array.shape[1] == 4 else None
    return array[:, :3].astype(np.float32), labels


def read_point_cloud(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Points (N, 3) and labels (or ``None``) from a ``.pts`` (its ``.seg`` beside it in ``points_label/``,
    if present), ``.ply`` or ``.npy`` file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pts":
        seg = path.parent.parent / "points_label" / f"{path.stem}.seg"
        points = read_pts(path)
        return points, (read_seg(seg) if path.parent.name == "points" and seg.is_file() else None)
    if suffix == ".ply":
        return read_ply(path)
    if suffix == ".npy":
        return read_npy(path)
    raise DataError(f"{path}: unsupported point-cloud file (.pts, .ply or .npy)")


# --- the ShapeNet-Part folder -----------------------------------------------------------------------------


def read_synsets(root: str | Path) -> dict[str, str]:
    """``synsetoffset2category.txt`` of a ShapeNet-Part folder: synset -> category name."""
    path = Path(root) / "synsetoffset2category.txt"
    if not path.is_file():
        raise DataError(f"{path}: not found (not a ShapeNet-Part folder)")
    out = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if len(words) != 2:
            raise DataError(f"{path}: line {i}: expected '<Name> <synset>'")
        out[words[1]] = category_name(words[0])
    return out


def shapenet_part_files(root: str | Path, split: str | None = None) -> list[tuple[str, Path, Path]]:
    """(category, .pts path, .seg path) of every shape of ``split`` ("train", "val", "test"; ``None``: all
    shapes in the folder), in a fixed order."""
    root = Path(root)
    synsets = read_synsets(root)
    if split is None:
        ids = [(s, p.stem) for s in sorted(synsets) for p in sorted((root / s / "points").glob("*.pts"))]
    else:
        listing = root / "train_test_split" / f"shuffled_{split}_file_list.json"
        if not listing.is_file():
            raise DataError(f"{listing}: split list not found")
        try:
            entries = json.loads(listing.read_text())
            ids = [tuple(str(e).split("/")[-2:]) for e in entries]
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataError(f"{listing}: not a JSON list of 'shape_data/<synset>/<id>' ({exc})") from None
    files = []
    for synset, shape_id in ids:
        if synset not in synsets:
            raise DataError(f"{root}: synset {synset} is not in synsetoffset2category.txt")
        files.append(
            (
                synsets[synset],
                root / synset / "points" / f"{shape_id}.pts",
                root / synset / "points_label" / f"{shape_id}.seg",
            )
        )
    if not files:
        raise DataError(f"{root}: no shapes{f' in split {split!r}' if split else ''}")
    return files


def load_shapenet_part(
    root: str | Path, split: str | None = None, categories: Iterable[str] | None = None
) -> list[LabelledCloud]:
    """The labelled shapes of a ShapeNet-Part folder (raw coordinates), checked: as many labels as points,
    labels within the category's parts."""
    keep = {category_name(c) for c in categories} if categories else None
    out = []
    for category, pts, seg in shapenet_part_files(root, split):
        if keep is not None and category not in keep:
            continue
        points, labels = read_pts(pts), read_seg(seg)
        if len(points) != len(labels):
            raise DataError(f"{seg}: {len(labels)} labels for {len(points)} points in {pts.name}")
        check_labels(labels, category, seg)
        out.append(LabelledCloud(category, points, labels, pts.stem))
    return out


def write_shapenet_part(root: str | Path, splits: dict[str, list[LabelledCloud]]) -> Path:
    """Write labelled clouds as a ShapeNet-Part folder, one split list per key of ``splits``; a cloud's
    ``name`` is its shape id."""
    root = Path(root)
    synset_of = {c[0]: c[1] for c in CATEGORIES}
    write_text_atomic(root / "synsetoffset2category.txt", "".join(f"{n}\t{s}\n" for n, s, _ in CATEGORIES))
    for split, clouds in splits.items():
        for cloud in clouds:
            synset = synset_of[cloud.category]
            write_pts(root / synset / "points" / f"{cloud.name}.pts", cloud.points)
            write_seg(root / synset / "points_label" / f"{cloud.name}.seg", cloud.labels)
        entries = [f"shape_data/{synset_of[c.category]}/{c.name}" for c in clouds]
        write_text_atomic(root / "train_test_split" / f"shuffled_{split}_file_list.json", json.dumps(entries))
    return root
