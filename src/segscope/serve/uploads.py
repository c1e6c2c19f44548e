"""Checking an uploaded image before any method sees it: size, content type, format and decoding.

The bytes never touch the disk and the client's file name is only echoed in messages. Decoding goes
through :func:`segscope.data.images.read_image`, the reader the datasets use, with a pixel limit checked
from the header before any pixel is decoded (the decompression-bomb guard).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from segscope.data.images import read_image
from segscope.errors import DataError

CONTENT_TYPES = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/tiff": "TIFF",
    "image/bmp": "BMP",
    "image/webp": "WEBP",
}
ACCEPTED_FORMATS = tuple(sorted(set(CONTENT_TYPES.values())))


class UploadError(Exception):
    """A refused upload: ``status`` is the HTTP code, the message one line for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadedImage:
    """A decoded upload: ``pixels`` ``(H, W, C)`` uint8 and ``image_id``, the hash of those pixels."""

    image_id: str
    name: str
    pixels: np.ndarray

    def info(self) -> dict:
        h, w, c = self.pixels.shape
        return {"image_id": self.image_id, "name": self.name, "width": w, "height": h, "channels": c}


def pixels_id(pixels: np.ndarray) -> str:
    """16 hex digits of the SHA-256 of the pixels and their shape: equal images share results."""
    digest = hashlib.sha256(repr(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()[:16]


def check_content_type(content_type: str | None, name: str) -> None:
    """A 415 :class:`UploadError` unless ``content_type`` is one of :data:`CONTENT_TYPES`."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in CONTENT_TYPES:
        raise UploadError(
            415,
            f"{name}: unsupported content type {kind or 'none'} (send a PNG, JPEG, TIFF, BMP or WebP image)",
        )


def decode_upload(data: bytes, name: str, *, max_pixels: int) -> UploadedImage:
    """Decode ``data`` (already size- and type-checked) or raise a 400 :class:`UploadError` saying why:
    empty, not an image, a format outside :data:`ACCEPTED_FORMATS`, truncated, or over ``max_pixels``."""
    if not data:
        raise UploadError(400, f"{name}: the file is empty")
    try:
        pixels = read_image(io.BytesIO(data), name=name, max_pixels=max_pixels, formats=ACCEPTED_FORMATS)
    except DataError as exc:
        raise UploadError(400, str(exc)) from None
    return UploadedImage(pixels_id(pixels), name, pixels)


def safe_name(name: str | None) -> str:
    """The client's file name reduced to a short printable base name, for messages and downloads only."""
    base = (name or "image").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isalnum() or ch in "._- ")[:80].strip(" .")
    return cleaned or "image"
