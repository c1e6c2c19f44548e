"""Results the page shows, cached in memory per (image hash, method, prompt) so switching is instant.

A :class:`Result` holds the label map and renders, on demand, the two PNGs the page uses: the class
indices (the download) and an RGBA colour layer (transparent background for binary methods) that the page
lays over the image under its opacity slider.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from segscope.data import default_palette

T = TypeVar("T")


def encode_png(array: np.ndarray) -> bytes:
    """``(H, W)`` uint8/uint16 or ``(H, W, 3|4)`` uint8 -> PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def result_key(image_id: str, method_id: str, prompt: dict | None, refine: dict | None = None) -> str:
    """16 hex digits naming a result: equal inputs give the same id (the cache key)."""
    text = json.dumps([image_id, method_id, prompt or None, refine or None], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Result:
    result_id: str
    image_id: str
    method_id: str
    title: str
    labels: np.ndarray
    classes: list[str]
    task: str
    seconds: float
    prompt: dict | None = None
    quality: dict[str, float] | None = None  # the oracle's predicted quality per scored class
    refined_from: str | None = None
    quality_before: dict[str, float] | None = None
    quality_curve: list[float] | None = None
    _png: dict[str, bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:  # uint8 (or uint16) class indices: an eighth of int64's memory
        self.labels = np.asarray(self.labels).astype(np.uint8 if len(self.classes) <= 256 else np.uint16)

    @property
    def nbytes(self) -> int:
        return int(self.labels.nbytes) + sum(len(v) for v in self._png.values())

    @property
    def palette(self) -> np.ndarray:
        return default_palette(len(self.classes))

    def label_png(self) -> bytes:
        if "labels" not in self._png:
            dtype = np.uint8 if len(self.classes) <= 256 else np.uint16
            self._png["labels"] = encode_png(self.labels.astype(dtype))
        return self._png["labels"]

    def colour_png(self) -> bytes:
        if "colour" not in self._png:
            rgb = self.palette[np.clip(self.labels, 0, len(self.classes) - 1)]
            alpha = np.full(self.labels.shape, 255, np.uint8)
            if len(self.classes) == 2:
                alpha[self.labels == 0] = 0  # two classes: only the object (class 1) is painted
            self._png["colour"] = encode_png(np.dstack([rgb, alpha]))
        return self._png["colour"]

    def legend(self) -> list[dict[str, Any]]:
        counts = np.bincount(self.labels.ravel().clip(0), minlength=len(self.classes))
        total = max(int(self.labels.size), 1)
        return [
            {
                "index": k,
                "name": name,
                "colour": "#{:02x}{:02x}{:02x}".format(*(int(c) for c in self.palette[k])),
                "fraction": round(float(counts[k]) / total, 4),
                "painted": not (len(self.classes) == 2 and k == 0),
            }
            for k, name in enumerate(self.classes)
        ]

    def public(self) -> dict[str, Any]:
        """The JSON the page renders."""
        base = f"/api/results/{self.result_id}"
        return {
            "result_id": self.result_id,
            "image_id": self.image_id,
            "method": self.method_id,
            "title": self.title,
            "seconds": round(self.seconds, 3),
            "prompt": self.prompt,
            "legend": self.legend(),
            "quality": self.quality,
            "quality_before": self.quality_before,
            "quality_curve": self.quality_curve,
            "refined_from": self.refined_from,
            "labels_url": f"{base}/labels.png",
            "colour_url": f"{base}/colour.png",
        }


class LRUStore(Generic[T]):
    """At most ``capacity`` items by key and at most ``max_bytes`` of them (``nbytes(item)``), the least
    recently used dropped first (uploads and results)."""

    def __init__(
        self, capacity: int, *, max_bytes: int | None = None, nbytes: Callable[[T], int] | None = None
    ) -> None:
        self.capacity, self.max_bytes = capacity, max_bytes
        self._nbytes = nbytes or (lambda item: 0)
        self._items: OrderedDict[str, T] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> T | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, item: T) -> T:
        with self._lock:
            if key in self._items:
                self._bytes -= self._nbytes(self._items.pop(key))
            self._items[key] = item
            self._bytes += self._nbytes(item)
            while len(self._items) > 1 and (
                len(self._items) > self.capacity
                or (self.max_bytes is not None and self._bytes > self.max_bytes)
            ):
                _, dropped = self._items.popitem(last=False)
                self._bytes -= self._nbytes(dropped)
        return item

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes
