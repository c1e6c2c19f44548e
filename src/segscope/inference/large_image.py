"""Large images in and out without holding them whole: region readers and a tiled label writer.

Readers give any rectangle of an ``(H, W, C)`` uint8 image, rows and columns outside the image mirrored
(``reflect``, no edge repeat: the padding of ``F.pad(mode="reflect")``):

- a **tiled TIFF** decodes only the TIFF tiles a region touches (tifffile's own segment reader and
  decoder; a small cache keeps the last row of tiles, which the next window row reads again);
- a **strip-organised, uncompressed TIFF** or a ``.npy`` file is memory-mapped (``tifffile.memmap``,
  ``np.load(mmap_mode="r")``);
- anything else (PNG, JPEG, compressed strips) is decoded whole: those formats have no random access.

:class:`LabelWriter` collects label rows in a memory-mapped ``.npy`` beside the output and, when done,
writes the final file atomically: a tiled, zlib-compressed TIFF (``.tif``; tiles streamed from the
memory map) or the ``.npy`` itself. An interrupted run leaves no half-written output.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from segscope.errors import UserError

TIFF_SUFFIXES = (".tif", ".tiff")


class ImageReader:
    """Regions of an ``(H, W, C)`` image held in any array-like (a NumPy array or memory map)."""

    def __init__(self, array, path: str | Path = "<array>") -> None:
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim != 3:
            raise UserError(f"{path}: expected an (H, W) or (H, W, C) image, got shape {tuple(array.shape)}")
        self.array = array
        self.path = Path(path)
        self.shape: tuple[int, int, int] = tuple(int(s) for s in array.shape)
        self.dtype = array.dtype

    def close(self) -> None:
        """Release the file (a no-op for arrays)."""

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The in-bounds box ``y0:y1, x0:x1`` (``0 <= y0 < y1 <= H``)."""
        return np.asarray(self.array[y0:y1, x0:x1])

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Rows ``y0:y1`` and columns ``x0:x1``, mirrored where they leave the image."""
        h, w = self.shape[:2]
        rows, cols = _reflect(np.arange(y0, y1), h), _reflect(np.arange(x0, x1), w)
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        block = self._read(int(r0), int(r1), int(c0), int(c1))
        if block.ndim == 2:
            block = block[..., None]
        if (y0, y1, x0, x1) == (r0, r1, c0, c1):
            return block
        return block[np.ix_(rows - r0, cols - c0)]


class TiledTiffReader(ImageReader):
    """Regions of a tiled TIFF page, decoding only the tiles they touch."""

    def __init__(self, path: str | Path, cache_tiles: int = 256) -> None:
        import tifffile

        self.path = Path(path)
        self._tif = tifffile.TiffFile(self.path)
        self.page = self._tif.pages[0]
        shape = self.page.shape if len(self.page.shape) == 3 else (*self.page.shape, 1)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = self.page.dtype
        self.tile = (int(self.page.tilelength), int(self.page.tilewidth))
        self.grid = (-(-self.shape[0] // self.tile[0]), -(-self.shape[1] // self.tile[1]))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_tiles = cache_tiles

    def close(self) -> None:
        self._tif.close()

    def _tiles(self, indices: list[int]) -> None:
        missing = [i for i in indices if i not in self._cache]
        if missing:
            page = self.page
            segments = self._tif.filehandle.read_segments(
                [page.dataoffsets[i] for i in missing],
                [page.databytecounts[i] for i in missing],
                indices=missing,
            )
            for data, index in segments:
                decoded = page.decode(data, index, jpegtables=page.jpegtables)[0]
                self._cache[index] = decoded.reshape(*self.tile, self.shape[2])
        for i in indices:
            self._cache.move_to_end(i)
        while len(self._cache) > max(self._cache_tiles, len(indices)):
            self._cache.popitem(last=False)

    def _read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        (th, tw), cols = self.tile, self.grid[1]
        ty, tx = range(y0 // th, (y1 - 1) // th + 1), range(x0 // tw, (x1 - 1) // tw + 1)
        self._tiles([r * cols + c for r in ty for c in tx])
        out = np.empty((y1 - y0, x1 - x0, self.shape[2]), dtype=self.page.dtype)
        for r in ty:
            for c in tx:
                tile = self._cache[r * cols + c]
                a0, a1 = max(y0, r * th), min(y1, (r + 1) * th)
                b0, b1 = max(x0, c * tw), min(x1, (c + 1) * tw)
                out[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0] = tile[
                    a0 - r * th : a1 - r * th, b0 - c * tw : b1 - c * tw
                ]
        return out


def open_image_reader(path: str | Path) -> ImageReader:
    """A region reader for ``path`` (see the module docstring for what is read lazily)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: image file not found")
    try:
        if path.suffix.lower() == ".npy":
            return _checked(ImageReader(np.load(path, mmap_mode="r"), path))
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                tiled, contiguous = page.is_tiled, page.is_contiguous
            if tiled:
                return _checked(TiledTiffReader(path))
            if contiguous:
                return _checked(ImageReader(tifffile.memmap(path, mode="r"), path))
            return _checked(ImageReader(tifffile.imread(path), path))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is one line naming the file
        raise UserError(f"{path}: cannot read as an image ({type(exc).__name__}: {exc})") from None
    from segscope.data.images import read_image

    return _checked(ImageReader(read_image(path), path))


def _checked(reader: ImageReader) -> ImageReader:
    if reader.dtype != np.uint8:
        raise UserError(f"{reader.path}: expected 8-bit pixels, got {reader.dtype}")
    return reader


class LabelWriter:
    """Write a ``(H, W)`` uint8 label image row block by row block into ``path`` (``.tif`` or ``.npy``)."""

    def __init__(self, path: str | Path, height: int, width: int, tile: int = 256) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (*TIFF_SUFFIXES, ".npy"):
            raise UserError(f"{self.path}: label output must be .tif, .tiff or .npy")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._scratch = self.path.with_name(f".{self.path.name}.partial.npy")
        self.labels = np.lib.format.open_memmap(
            self._scratch, mode="w+", dtype=np.uint8, shape=(height, width)
        )
        self.tile = tile

    def write(self, y0: int, rows: np.ndarray) -> None:
        self.labels[y0 : y0 + len(rows)] = rows

    def close(self) -> Path:
        """Finish the output file atomically and remove the scratch map."""
        self.labels.flush()
        if self.path.suffix.lower() == ".npy":
            del self.labels
            os.replace(self._scratch, self.path)
            return self.path
        import tifffile

        h, w = self.labels.shape
        t = self.tile

        def tiles():
            for y in range(0, h, t):
                for x in range(0, w, t):
                    block = np.zeros((t, t), np.uint8)
                    part = self.labels[y : y + t, x : x + t]
                    block[: part.shape[0], : part.shape[1]] = part
                    yield block

        partial = self.path.with_name(f".{self.path.name}.partial")
        tifffile.imwrite(partial, tiles(), shape=(h, w), dtype=np.uint8, tile=(t, t), compression="zlib")
        os.replace(partial, self.path)
        del self.labels
        self._scratch.unlink()
        return self.path

    def abort(self) -> None:
        """Drop the scratch map (the output file is never touched)."""
        del self.labels
        self._scratch.unlink(missing_ok=True)


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Mirror indices into ``[0, size)`` (one reflection each side, as ``F.pad(mode="reflect")``)."""
    if size == 1:
        return np.zeros_like(index)
    if index.min() <= -size or index.max() >= 2 * size - 1:
        raise ValueError(f"cannot mirror indices {index.min()}..{index.max()} into an axis of {size}")
    index = np.where(index < 0, -index, index)
    return np.where(index >= size, 2 * (size - 1) - index, index)
