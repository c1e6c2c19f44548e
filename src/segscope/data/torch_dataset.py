"""Wrap a :class:`SegmentationDataset` as a ``torch.utils.data.Dataset`` of normalised tensors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torchvision import tv_tensors

from segscope.data.dataset import SegmentationDataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_MEAN, GREY_STD = (0.5,), (0.25,)


def default_normalization(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet statistics for colour images (so pretrained encoders fit), 0.5/0.25 for grey."""
    return (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else (GREY_MEAN * channels, GREY_STD * channels)


def model_normalization(model: object, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation ``model`` declares for its weights (``input_mean`` / ``input_std`` attributes,
    one entry per input channel, as torchvision weights carry their transforms; e.g. the EfficientNet-Lite
    encoders' [-1, 1] scaling), else :func:`default_normalization` (unchanged for every other model)."""
    mean, std = getattr(model, "input_mean", None), getattr(model, "input_std", None)
    if mean is None or std is None or len(mean) != channels or len(std) != channels:
        return default_normalization(channels)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def resize_pair(image: np.ndarray, mask: np.ndarray | None, size: tuple[int, int]):
    """Resize an ``(H, W, C)`` image bilinearly (antialiased) and a mask by nearest neighbour."""
    import cv2

    h, w = size
    interp = cv2.INTER_AREA if image.shape[0] > h else cv2.INTER_LINEAR
    out = cv2.resize(image, (w, h), interpolation=interp)
    if out.ndim == 2:
        out = out[..., None]
    m = None if mask is None else cv2.resize(mask.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
    return out, (None if m is None else m.astype(np.int64))


def image_to_tensor(image: np.ndarray, mean, std) -> torch.Tensor:
    """``(H, W, C)`` uint8 -> normalised ``(C, H, W)`` float32."""
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)
    return normalize(x, mean, std)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    m = torch.as_tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return (x - m) / s


class TorchSegmentationDataset(torch.utils.data.Dataset):
    """``(image (C, H, W) float32 normalised, mask (H, W) int64)`` pairs for training.

    ``resize`` (H, W) resizes every pair once on load; ``cache`` keeps decoded pairs in memory;
    ``transform`` is a joint augmentation (see :mod:`segscope.data.transforms`) applied to the [0, 1]
    image before normalisation; ``fill_index`` replaces the ignore index (or marks padding) in masks.
    """

    def __init__(
        self,
        dataset: SegmentationDataset,
        *,
        transform: Callable | None = None,
        resize: tuple[int, int] | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        fill_index: int = 255,
        cache: bool = True,
    ) -> None:
        self.dataset = dataset
        self.transform = transform
        self.resize = resize
        self.fill_index = fill_index
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        channels = getattr(dataset, "channels", None) or (self._load(0)[0].shape[2] if len(dataset) else 3)
        default_mean, default_std = default_normalization(channels)
        self.mean = tuple(mean) if mean is not None else default_mean
        self.std = tuple(std) if std is not None else default_std

    def __len__(self) -> int:
        return len(self.dataset)

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        image = self.dataset.load_image(index)
        mask = self.dataset.load_mask(index, image_shape=image.shape)
        if self.dataset.ignore_index is not None and self.dataset.ignore_index != self.fill_index:
            mask = np.where(mask == self.dataset.ignore_index, self.fill_index, mask)
        if self.resize is not None:
            image, mask = resize_pair(image, mask, self.resize)
        if self._cache is not None:
            self._cache[index] = (image, mask)
        return image, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self._load(index)
        x = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0)
        y = tv_tensors.Mask(torch.from_numpy(mask))
        if self.transform is not None:
            x, y = self.transform(x, y)
        x = normalize(x.as_subclass(torch.Tensor), self.mean, self.std)
        return x, y.as_subclass(torch.Tensor).long()
