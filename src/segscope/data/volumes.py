"""Reading and writing volumes (3-D images): multi-page TIFF, NIfTI, ``.npy`` and folders of 2-D slices.

Axes are ``(z, y, x)`` throughout: an image volume is ``(D, H, W)`` (grey) or ``(D, H, W, 3)`` (colour)
uint8, a label volume ``(D, H, W)`` int64, and the voxel spacing ``(z, y, x)`` in the file's own units
(1 where a file records none).

* **TIFF** (``.tif``/``.tiff``, read and written with ``tifffile``): the pages are the z-slices. The x and y
  spacing come from the XResolution / YResolution tags (pixels per unit, so spacing = 1 / resolution) and
  the z spacing from the ImageJ ``spacing`` entry. Outside ImageJ files, resolutions without a unit or in
  inches (a scanner's or editor's DPI) are ignored. :func:`write_volume` writes ImageJ hyperstacks, so both
  ImageJ/Fiji and :func:`read_volume` recover the spacing.
* **NIfTI** (``.nii``/``.nii.gz``, ``nibabel``): NIfTI stores voxels as ``(i, j, k)`` = ``(x, y, z)``; the
  array is transposed to ``(z, y, x)`` and the zooms reversed likewise, the order SimpleITK's
  ``GetArrayFromImage`` gives. The affine's orientation is not applied (no reorientation to RAS): voxel
  ``[k, j, i]`` is the stored voxel ``(i, j, k)``.
* **.npy**: the array as saved, ``(D, H, W)`` or ``(D, H, W, C)``; it records no spacing (1, 1, 1).
* **a folder of slices** (PNG, TIFF, JPEG, BMP), in natural order of the file stems (``z2`` before
  ``z10``), each read by :func:`segscope.data.images.read_image`; every slice must have the same size.

Image volumes of any other dtype than uint8 (16-bit, float, bool) are rescaled to 0..255 by the minimum
and maximum of the whole volume (not slice by slice, so the slices stay comparable); an RGBA volume loses
its alpha. Label volumes must hold whole numbers (float arrays of whole numbers are accepted).
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segscope.data.images import convert_channels, image_channels, pil_guard, read_image
from segscope.errors import DataError
from segscope.io import atomic_path

VOLUME_SUFFIXES = (".tif", ".tiff", ".nii", ".nii.gz", ".npy")
SLICE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")

__all__ = [
    "Volume",
    "VolumeInfo",
    "is_multipage_tiff",
    "natural_key",
    "read_label_volume",
    "read_volume",
    "slice_files",
    "stack_slices",
    "volume_info",
    "volume_stem",
    "write_volume",
]


@dataclass(frozen=True)
class Volume:
    """A volume: ``array`` ``(D, H, W)`` or ``(D, H, W, C)``, ``spacing`` ``(z, y, x)`` and its ``path``."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    path: Path


@dataclass(frozen=True)
class VolumeInfo:
    """What a volume's header says: ``shape`` ``(D, H, W)``, ``channels`` (1 or 3) and ``spacing``."""

    shape: tuple[int, int, int]
    channels: int
    spacing: tuple[float, float, float]
    path: Path


def natural_key(text: str) -> list:
    """Sort key in natural order: ``"z2" < "z10"`` (digit runs compare as numbers)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", text) if t]


def volume_stem(path: str | Path) -> str:
    """The name of a volume without its suffix (``brain.nii.gz`` -> ``brain``; a folder's own name)."""
    path = Path(path)
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem if path.suffix else name


def _kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    name = path.name.lower()
    if not path.exists():
        raise DataError(f"{path}: volume file not found")
    if name.endswith((".tif", ".tiff")):
        return "tiff"
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(".npy"):
        return "npy"
    raise DataError(f"{path}: not a volume (expected .tif/.tiff, .nii/.nii.gz, .npy or a folder of slices)")


def slice_files(folder: str | Path) -> list[Path]:
    """The 2-D slice images of ``folder`` in natural order of their stems; DataError if there are none."""
    folder = Path(folder)
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in SLICE_SUFFIXES and not p.name.startswith(".")
    ]
    if not files:
        raise DataError(f"{folder}: empty volume folder (no {', '.join(SLICE_SUFFIXES)} slices)")
    return sorted(files, key=lambda p: natural_key(p.stem))


def is_multipage_tiff(path: str | Path) -> bool:
    """Whether a TIFF file has more than one page (pages are counted, no pixels decoded)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.pages) > 1
    except (OSError, ValueError, tifffile.TiffFileError):
        return False


# -- reading -------------------------------------------------------------------------------------
def read_volume(path: str | Path, *, channels: int | None = None) -> Volume:
    """Read an image volume as uint8 ``(D, H, W)`` (grey) or ``(D, H, W, 3)`` (colour).

    ``channels`` (1 or 3) converts it: grey to colour by replicating, colour to grey by the ITU-R 601 luma
    (as :func:`segscope.data.images.convert_channels`); ``None`` keeps the file's (a folder of slices: the
    majority over the slices' headers, ties colour). See the module docstring for formats and rescaling.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    path = Path(path)
    kind = _kind(path)
    if kind == "folder":
        files = slice_files(path)
        if channels is None:
            counts = Counter(image_channels(p) for p in files)
            channels = 1 if counts[1] > counts[3] else 3
        arr = stack_slices(path, files, lambda p: read_image(p, channels=channels))
        spacing = (1.0, 1.0, 1.0)
    else:
        raw, spacing = _read_raw(path, kind)
        arr = _as_image(raw, path)
    if channels is not None and arr.shape[-1] != channels:
        d, h, w, c = arr.shape
        arr = convert_channels(arr.reshape(d * h, w, c), channels).reshape(d, h, w, channels)
    arr = np.ascontiguousarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    return Volume(arr, spacing, path)


def read_label_volume(path: str | Path) -> Volume:
    """Read a label volume as ``(D, H, W)`` int64; DataError for non-integer values or several channels.

    A folder of slices is read as class-index PNGs (palette PNGs give their indices, as
    :class:`segscope.data.masks.MaskCodec` ``"index"`` does).
    """
    from segscope.data.masks import MaskCodec

    path = Path(path)
    kind = _kind(path)
    if kind == "folder":
        arr, spacing = stack_slices(path, slice_files(path), MaskCodec("index").decode), (1.0, 1.0, 1.0)
    else:
        arr, spacing = _read_raw(path, kind)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DataError(f"{path}: a label volume is (D, H, W), got shape {arr.shape}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise DataError(f"{path}: non-integer label values (e.g. {arr[bad].flat[0]:g})")
    return Volume(arr.astype(np.int64), spacing, path)


def volume_info(path: str | Path) -> VolumeInfo:
    """A volume's shape, channels (1 or 3) and spacing from its header (no voxels decoded; ``.npy`` is
    memory-mapped, a folder's slice headers are read)."""
    from PIL import Image

    path = Path(path)
    kind = _kind(path)
    if kind == "folder":
        files = slice_files(path)
        try:
            with pil_guard(files[0]), Image.open(files[0]) as im:
                w, h = im.size
        except OSError as exc:
            raise DataError(f"{files[0]}: cannot read image ({_short(exc)})") from None
        counts = Counter(image_channels(p) for p in files)
        return VolumeInfo((len(files), h, w), 1 if counts[1] > counts[3] else 3, (1.0, 1.0, 1.0), path)
    shape, spacing = _read_raw(path, kind, header_only=True)
    shape = (1, *shape) if len(shape) == 2 else tuple(int(s) for s in shape)
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3, 4)):
        raise DataError(f"{path}: expected a (D, H, W) or (D, H, W, C) volume, got shape {shape}")
    return VolumeInfo(shape[:3], 3 if len(shape) == 4 and shape[3] > 1 else 1, spacing, path)


def _read_raw(path: Path, kind: str, *, header_only: bool = False):
    """``(array, spacing)``: the stored array in ``(z, y, x[, c])`` order, any dtype (its shape only, with
    ``header_only``)."""
    try:
        if kind == "npy":
            with open(path, "rb") as fh:
                if fh.read(6) != b"\x93NUMPY":
                    raise DataError(f"{path}: not a NumPy .npy file")
            arr = np.load(path, mmap_mode="r" if header_only else None, allow_pickle=False)
            return (arr.shape if header_only else arr), (1.0, 1.0, 1.0)
        if kind == "nifti":
            import nibabel

            img = nibabel.load(path, mmap=False)
            shape = img.shape
            if len(shape) == 5 and shape[3] == 1:  # NIfTI vectors live in the 5th dimension
                shape = shape[:3] + shape[4:]
            axes = (2, 1, 0, *range(3, len(shape))) if len(shape) >= 3 else (1, 0)
            if header_only:
                return tuple(shape[a] for a in axes), _nifti_spacing(img)
            arr = np.asanyarray(img.dataobj).reshape(shape).transpose(axes)
            spacing = _nifti_spacing(img)
        else:
            arr, spacing = _tiff_read(path, header_only=header_only)
            if header_only:
                return arr, spacing
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader's own errors become one line naming the file
        raise DataError(f"{path}: cannot read volume ({_short(exc)})") from None
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{path}: unsupported voxel type {arr.dtype}")
    return np.asarray(arr), spacing


def _nifti_spacing(img) -> tuple[float, float, float]:
    zooms = [float(str(np.float32(z))) for z in img.header.get_zooms()[:3]]  # float32 in the header
    zooms += [1.0] * (3 - len(zooms))
    return (zooms[2], zooms[1], zooms[0])


def _tiff_read(path: Path, *, header_only: bool = False):
    """``(array or shape, spacing)`` of a TIFF: pages -> z, the samples/channel axis last."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if len(tif.series) != 1:
            shapes = ", ".join(str(tuple(s.shape)) for s in tif.series[:3])
            raise DataError(f"{path}: pages of different sizes ({shapes}); one volume has one page size")
        series = tif.series[0]
        axes, shape = series.axes.upper(), tuple(series.shape)
        data = None if header_only else series.asarray()
        spacing = _tiff_spacing(tif)
    chan = [i for i, a in enumerate(axes) if a in "CS"]
    if len(chan) > 1 or not axes.replace("C", "").replace("S", "").endswith("YX"):
        raise DataError(f"{path}: unsupported TIFF axes {axes} {shape} (expected pages of Y x X images)")
    order = [i for i in range(len(axes)) if i not in chan] + chan
    shape = tuple(shape[i] for i in order)
    lead = shape[: len(shape) - 2 - len(chan)]
    if sum(s > 1 for s in lead) > 1:
        raise DataError(f"{path}: a {axes} hyperstack {shape}; one volume (Z, Y, X[, C]) per file")
    new_shape = (int(np.prod(lead)) if lead else 1, *shape[len(lead) :])
    if header_only:
        return new_shape, spacing
    return np.transpose(data, order).reshape(new_shape), spacing


def _tiff_spacing(tif) -> tuple[float, float, float]:
    meta = tif.imagej_metadata or {}
    tags = tif.pages.first.tags
    unit = tags.get("ResolutionUnit")
    use_xy = bool(meta) or (unit is not None and int(unit.value) not in (1, 2))  # 1 none, 2 inch

    def step(name: str) -> float:
        tag = tags.get(name)
        if not use_xy or tag is None:
            return 1.0
        num, den = tag.value
        return float(den) / float(num) if num and den else 1.0

    return (float(meta.get("spacing", 1.0)), step("YResolution"), step("XResolution"))


def _as_image(raw: np.ndarray, path: Path) -> np.ndarray:
    """``(D, H, W, C)`` uint8 with C in {1, 3} from a raw stored array (rescaled if not uint8)."""
    arr = raw[None] if raw.ndim == 2 else raw
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[3] not in (1, 3, 4):
        raise DataError(f"{path}: expected (D, H, W) or (D, H, W, C) with C = 1 or 3, got shape {raw.shape}")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        finite = np.isfinite(a)
        lo, hi = (float(a[finite].min()), float(a[finite].max())) if finite.any() else (0.0, 0.0)
        arr = (
            ((np.where(finite, a, lo) - lo) * (255.0 / (hi - lo) if hi > lo else 0.0))
            .round()
            .astype(np.uint8)
        )
    return arr


def stack_slices(folder: Path, files: Sequence[Path], read: Callable[[Path], np.ndarray]) -> np.ndarray:
    """Read every slice and stack them; DataError naming the first slice whose size is not the others'."""
    slices = [read(p) for p in files]
    shapes = Counter(s.shape[:2] for s in slices)
    if len(shapes) > 1:
        (h, w), _ = shapes.most_common(1)[0]
        odd = next(i for i, s in enumerate(slices) if s.shape[:2] != (h, w))
        oh, ow = slices[odd].shape[:2]
        raise DataError(f"{folder}: slice {files[odd].name} is {ow}x{oh}, the others {w}x{h}")
    return np.stack(slices)


# -- writing -------------------------------------------------------------------------------------
def write_volume(path: str | Path, array: np.ndarray, spacing: Sequence[float] | None = None) -> Path:
    """Write ``(D, H, W)`` or ``(D, H, W, C)`` ``array`` with ``spacing`` ``(z, y, x)``, atomically.

    The format follows the suffix: ``.tif``/``.tiff`` (an ImageJ hyperstack: uint8, uint16 or float32;
    integer arrays that fit are stored as uint8/uint16, others as float32), ``.nii``/``.nii.gz`` (axes
    reversed to NIfTI's ``(x, y, z)``, spacing in the affine and zooms; int64 stored in the smallest
    integer type that fits) or ``.npy`` (no spacing kept). The file is written to a temporary file in the
    same folder and renamed over ``path``, so a reader never sees half a volume.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[3] not in (1, 3)):
        raise ValueError(f"expected a (D, H, W) or (D, H, W, C) array with C = 1 or 3, got {array.shape}")
    sz, sy, sx = (float(s) for s in (spacing if spacing is not None else (1.0, 1.0, 1.0)))
    if not all(np.isfinite(s) and s > 0 for s in (sz, sy, sx)):
        raise ValueError(f"spacing must be 3 positive numbers, got {spacing}")
    name = path.name.lower()
    with atomic_path(path) as tmp:
        if name.endswith((".tif", ".tiff")):
            import tifffile

            data = _tiff_dtype(array[..., 0] if array.ndim == 4 and array.shape[3] == 1 else array)
            rgb = data.ndim == 4
            tifffile.imwrite(
                tmp,
                data,
                imagej=True,
                photometric="rgb" if rgb else "minisblack",
                resolution=(1.0 / sx, 1.0 / sy),
                metadata={"spacing": sz, "axes": "ZYXS" if rgb else "ZYX"},
            )
        elif name.endswith((".nii", ".nii.gz")):
            import nibabel

            data = array.transpose(2, 1, 0, *range(3, array.ndim))
            img = nibabel.Nifti1Image(_nifti_dtype(data), np.diag([sx, sy, sz, 1.0]))
            raw = img.to_bytes()
            tmp.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
        elif name.endswith(".npy"):
            with open(tmp, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
        else:
            raise ValueError(f"{path}: unknown volume suffix (use .tif, .tiff, .nii, .nii.gz or .npy)")
    return path


def _smallest_int(a: np.ndarray, dtypes: Sequence[type]) -> np.ndarray | None:
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for dt in dtypes:
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return a.astype(dt)
    return None


def _tiff_dtype(a: np.ndarray) -> np.ndarray:
    if a.dtype in (np.uint8, np.uint16, np.float32):
        return a
    fit = _smallest_int(a, (np.uint8, np.uint16)) if a.dtype.kind in "biu" else None
    return fit if fit is not None else a.astype(np.float32)


def _nifti_dtype(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.bool_:
        return a.astype(np.uint8)
    if a.dtype in (np.int64, np.uint64):
        fit = _smallest_int(a, (np.uint8, np.int16, np.int32))
        return fit if fit is not None else a.astype(np.float64)
    return a


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
