"""The output types every Segmenter returns: a semantic :data:`LabelMap` or :class:`Instances`.

* **Semantic** (and binary) methods return a ``LabelMap``: an int64 array of class indices over the
  image's spatial axes, ``(H, W)`` for a 2-D image, ``(D, H, W)`` for a volume.
* **Instance** methods return :class:`Instances`: one boolean mask per object with its class, score and
  bounding box. :meth:`Instances.to_label_map` paints them into an instance-id map (0 = background) and
  :meth:`Instances.to_semantic` into a class map, so every semantic metric applies to instance output too.

``TASKS`` lists the tasks a Segmenter may declare (its ``task`` class attribute): ``"semantic"`` (any
number of classes), ``"binary"`` (one foreground class against the rest; needs 2-class data) and
``"instance"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

TASKS = ("semantic", "binary", "instance")
LabelMap: TypeAlias = np.ndarray
"""``(*spatial)`` int64 class indices: ``(H, W)`` or ``(D, H, W)``."""


def as_label_map(labels: np.ndarray, *, ndim: int | None = None, what: str = "label map") -> LabelMap:
    """``labels`` as a C-contiguous int64 :data:`LabelMap`; a ``ValueError`` for a non-integer array or
    the wrong number of spatial axes."""
    a = np.asarray(labels)
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"{what} must hold integer class indices, got dtype {a.dtype}")
    if a.ndim not in (2, 3) or (ndim is not None and a.ndim != ndim):
        want = f"{ndim}-D" if ndim is not None else "2-D or 3-D"
        raise ValueError(f"{what} must be {want}, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Instances:
    """The objects found in one image (or volume).

    Attributes
    ----------
    masks : ``(N, *spatial)`` bool, one mask per instance.
    labels : ``(N,)`` int64 class index of each instance (1 = the object class of a one-class task).
    scores : ``(N,)`` float32 confidence in ``[0, 1]`` (1 for methods that give none).
    boxes : ``(N, 2 * ndim)`` float32 tight boxes, ``(x1, y1, x2, y2)`` in 2-D and
        ``(x1, y1, z1, x2, y2, z2)`` in 3-D, inclusive pixel coordinates (torchvision's
        ``masks_to_boxes`` convention).
    """

    masks: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.masks)
        if self.masks.ndim not in (3, 4) or self.masks.dtype != np.bool_:
            raise ValueError(
                f"masks must be an (N, *spatial) bool array, got {self.masks.dtype} {self.masks.shape}"
            )
        for name, arr, shape in (
            ("labels", self.labels, (n,)),
            ("scores", self.scores, (n,)),
            ("boxes", self.boxes, (n, 2 * (self.masks.ndim - 1))),
        ):
            if arr.shape != shape:
                raise ValueError(f"{name} must have shape {shape} for {n} masks, got {arr.shape}")

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_masks(
        cls, masks: np.ndarray, labels: np.ndarray | None = None, scores: np.ndarray | None = None
    ) -> Instances:
        """Instances from a mask stack; labels default to 1, scores to 1, boxes are computed."""
        masks = np.asarray(masks, dtype=bool)
        n = len(masks)
        labels = np.ones(n, np.int64) if labels is None else np.asarray(labels, np.int64).reshape(n)
        scores = np.ones(n, np.float32) if scores is None else np.asarray(scores, np.float32).reshape(n)
        return cls(masks, labels, scores, masks_to_boxes(masks))

    @classmethod
    def from_label_map(cls, instance_map: np.ndarray, class_map: np.ndarray | None = None) -> Instances:
        """Instances from an instance-id map (0 = background, each other value one object, taken in
        increasing id order); each instance's class is the majority of ``class_map`` under it (default 1)."""
        ids = as_label_map(instance_map, what="instance map")
        values = np.unique(ids)
        values = values[values != 0]
        masks = ids[None] == values.reshape(-1, *([1] * ids.ndim))
        labels = None
        if class_map is not None:
            classes = as_label_map(class_map, what="class map")
            labels = np.array([np.bincount(classes[m]).argmax() for m in masks], np.int64)
        return cls.from_masks(masks, labels)

    @classmethod
    def empty(cls, spatial_shape: tuple[int, ...]) -> Instances:
        nd = len(spatial_shape)
        return cls(
            np.zeros((0, *spatial_shape), bool),
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
            np.zeros((0, 2 * nd), np.float32),
        )

    # -- views ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.masks)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.masks.shape[1:])

    def to_label_map(self) -> LabelMap:
        """``(*spatial)`` int64 instance ids, 0 = background, instance ``i`` -> ``i + 1``; where masks
        overlap, the higher-scoring instance wins."""
        out = np.zeros(self.spatial_shape, np.int64)
        for i in np.argsort(self.scores, kind="stable"):  # lowest first: the best is painted last
            out[self.masks[i]] = i + 1
        return out

    def to_semantic(self, background: int = 0) -> LabelMap:
        """``(*spatial)`` int64 class map: each instance's label, ``background`` elsewhere."""
        ids = self.to_label_map()
        lut = np.concatenate([[background], self.labels]).astype(np.int64)
        return lut[ids]

    def select(self, keep: np.ndarray) -> Instances:
        """The instances where the boolean or index array ``keep`` selects."""
        return Instances(self.masks[keep], self.labels[keep], self.scores[keep], self.boxes[keep])


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """``(N, 2 * ndim)`` float32 inclusive boxes of ``(N, *spatial)`` masks (zeros for an empty mask).

    2-D masks go through :func:`torchvision.ops.masks_to_boxes`; 3-D ones, which torchvision does not
    handle, through the same min/max of the occupied coordinates.
    """
    masks = np.asarray(masks, bool)
    n, spatial = len(masks), masks.shape[1:]
    boxes = np.zeros((n, 2 * len(spatial)), np.float32)
    if n == 0:
        return boxes
    nonempty = masks.reshape(n, -1).any(1)
    if len(spatial) == 2 and nonempty.any():
        import torch
        from torchvision.ops import masks_to_boxes as tv_boxes

        boxes[nonempty] = tv_boxes(torch.from_numpy(masks[nonempty])).numpy()
        return boxes
    for i in np.flatnonzero(nonempty):
        coords = np.argwhere(masks[i])[:, ::-1]  # (z, y, x) -> (x, y, z)
        boxes[i] = np.concatenate([coords.min(0), coords.max(0)])
    return boxes
