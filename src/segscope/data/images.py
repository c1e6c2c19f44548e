"""Reading image files as uint8 arrays: channel conversion, 16-bit and float images, and PIL's
decompression-bomb guard turned into one-line :class:`~segscope.errors.DataError` messages.

:func:`read_image` takes a path or an open binary file (an upload held in memory), so the datasets, the
CLI and ``segscope serve`` decode images the same way.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from segscope.errors import DataError

__all__ = ["convert_channels", "image_channels", "pil_guard", "read_image"]


def read_image(
    source: str | Path | BinaryIO,
    channels: int | None = None,
    *,
    name: str | None = None,
    max_pixels: int | None = None,
    formats: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Read an image as ``(H, W, C)`` uint8 with C in {1, 3}; a clear DataError if unreadable.

    ``source`` is a path or an open binary file (``name`` then names it in messages). ``channels`` (1 or
    3) converts the image to that count: grey to colour by replicating the channel, colour to grey by the
    ITU-R 601 luma. A header claiming more pixels than PIL's decompression-bomb limit, or than
    ``max_pixels`` when given, is a DataError saying so before any pixel is decoded (PIL's warning for
    merely large images is silenced). ``formats`` (PIL format names, e.g. ``("PNG", "JPEG")``) refuses
    any other file format.
    """
    from PIL import Image, UnidentifiedImageError

    is_path = isinstance(source, str | Path)
    label = name or (str(source) if is_path else getattr(source, "name", "image"))
    try:
        with pil_guard(source if is_path else None, label), Image.open(source) as im:
            if formats is not None and im.format not in formats:
                raise DataError(f"{label}: {im.format} images are not accepted (send {', '.join(formats)})")
            if max_pixels is not None and im.width * im.height > max_pixels:
                raise DataError(
                    f"{label}: image too large: {im.width}x{im.height} = {im.width * im.height / 1e6:,.1f} "
                    f"megapixels, over the limit of {max_pixels / 1e6:,.1f} megapixels"
                )
            im.load()
            if im.mode in ("L", "1", "P") and not _palette_is_colour(im):
                arr = np.asarray(im.convert("L"))[..., None]
            elif im.mode in ("I;16", "I;16B", "I", "F"):
                arr = _to_uint8(np.asarray(im, dtype=np.float64))[..., None]
            else:
                arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"{label}: image file not found") from None
    except DataError:  # from pil_guard or the checks above: already one line naming the file
        raise
    except UnidentifiedImageError:
        raise DataError(f"{label}: cannot read image (not a recognised image format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"{label}: cannot read image ({_short(exc)})") from None
    if channels is not None and arr.shape[2] != channels:
        arr = convert_channels(arr, channels)
    return np.array(arr, dtype=np.uint8, order="C")  # a writable copy (PIL arrays are read-only)


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """``(H, W, 1)`` <-> ``(H, W, 3)`` uint8: grey replicated to RGB, or RGB to ITU-R 601 luma."""
    if image.shape[2] == channels:
        return image
    if image.shape[2] == 1 and channels == 3:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 3 and channels == 1:
        rgb = image.astype(np.uint32)
        luma = (rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114 + 500) // 1000
        return luma.astype(np.uint8)[..., None]
    raise ValueError(f"cannot convert a {image.shape[2]}-channel image to {channels} channels")


def image_channels(path: str | Path) -> int | None:
    """Channels :func:`read_image` gives for ``path`` (1 or 3), from the file's header only (no pixels
    decoded); ``None`` when the header is unreadable (reading the image then reports why)."""
    from PIL import Image

    try:
        with pil_guard(path), Image.open(path) as im:
            if im.mode in ("L", "1", "P") and not _palette_is_colour(im, header_only=True):
                return 1
            return 1 if im.mode in ("I;16", "I;16B", "I", "F") else 3
    except (DataError, OSError, SyntaxError, ValueError):
        return None


@contextlib.contextmanager
def pil_guard(path: str | Path | None, label: str | None = None) -> Iterator[None]:
    """Around PIL reads: a header over PIL's decompression-bomb limit becomes a one-line DataError
    naming ``path`` (or ``label``) and its claimed size; the DecompressionBombWarning for large images is
    silenced. With ``path=None`` (an in-memory file) no file is opened to read the claimed size."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        except Image.DecompressionBombError as exc:
            limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
            size = _claimed_size(Path(path)) if path is not None else None
            if size is not None:
                claimed = f"{size[0]}x{size[1]} = {size[0] * size[1] / 1e6:,.0f} megapixels"
            else:
                m = re.search(r"\((\d+) pixels\)", str(exc))
                claimed = f"{int(m.group(1)) / 1e6:,.0f} megapixels" if m else "too many pixels"
            raise DataError(
                f"{label or path}: image too large: its header claims {claimed}, over the limit of "
                f"{limit / 1e6:,.0f} megapixels (a corrupt or malicious file, or split it into tiles)"
            ) from None


def _claimed_size(path: Path) -> tuple[int, int] | None:
    """Width and height from the header, bypassing PIL's size check (which only reports pixels)."""
    from PIL import Image

    try:
        Image.init()
        with open(path, "rb") as fp:
            prefix = fp.read(16)
            for fmt in Image.ID:
                factory, accept = Image.OPEN[fmt]
                ok = accept is None or accept(prefix)
                if not ok or isinstance(ok, str):
                    continue
                try:
                    fp.seek(0)
                    return tuple(factory(fp, str(path)).size)
                except Exception:  # noqa: BLE001 - not this format; try the next plugin
                    continue
    except Exception:  # noqa: BLE001 - best effort: the message then gives the pixel count
        return None
    return None


def _palette_is_colour(im, *, header_only: bool = False) -> bool:
    if im.mode != "P":
        return False
    raw = im.palette.getdata() if header_only and im.palette is not None else None
    if raw is not None and raw[0] == "RGB":  # the header's palette: no pixel decoding
        pal = np.frombuffer(bytes(raw[1]), dtype=np.uint8).astype(np.int64)
        pal = pal[: len(pal) // 3 * 3].reshape(-1, 3)
    else:
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
