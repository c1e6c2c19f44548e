"""Joint image + mask augmentation presets over ``torchvision.transforms.v2``.

Image and mask are transformed together because they are typed (``tv_tensors.Image`` and
``tv_tensors.Mask``), never by argument order: geometric transforms move both (the mask with nearest
neighbour, new pixels filled with the ignore index), photometric ones touch the image only.

=========  ===========================================================================================
preset     transforms (training only; evaluation never augments)
=========  ===========================================================================================
none       nothing (besides the random crop when ``crop_size`` is set)
light      horizontal flip, scale jitter 0.75-1.25
strong     light + rotation ±10°, colour jitter, Gaussian noise, random erasing (occlusion)
em         microscopy: horizontal + vertical flips, 90° rotations, elastic deformation (as in the U-Net
           paper), brightness/contrast jitter, Gaussian noise
=========  ===========================================================================================

Randomness comes from torch's global generator, so a run is reproducible under ``torch.manual_seed``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

PRESETS = ("none", "light", "strong", "em")


class RandomRot90(torch.nn.Module):
    """Rotate image and mask together by a random multiple of 90 degrees (lossless)."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = int(torch.randint(4, ()).item())
        if k == 0:
            return image, mask
        return (
            tv_tensors.wrap(torch.rot90(image, k, (-2, -1)), like=image),
            tv_tensors.wrap(torch.rot90(mask, k, (-2, -1)), like=mask),
        )


class ImageOnly(torch.nn.Module):
    """Apply ``transform`` to the image alone (e.g. occlusion that should not change the labels)."""

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return tv_tensors.wrap(self.transform(image.as_subclass(torch.Tensor)), like=image), mask


class JointCompose(torch.nn.Module):
    """Apply transforms to ``(image, mask)`` in order."""

    def __init__(self, transforms: list[Callable]) -> None:
        super().__init__()
        self.transforms = transforms

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for t in self.transforms:
            image, mask = t(image, mask)
        return image, mask

    def __repr__(self) -> str:
        return "JointCompose(" + ", ".join(type(t).__name__ for t in self.transforms) + ")"


def build_transforms(
    preset: str = "light",
    *,
    crop_size: tuple[int, int] | None = None,
    fill_index: int = 255,
) -> JointCompose:
    """Training augmentation for float images in [0, 1] ``(C, H, W)`` and ``(H, W)`` int64 masks.

    ``fill_index`` is written into the mask wherever a geometric transform creates new pixels; the loss
    ignores it. ``crop_size`` (H, W) takes a random crop, padding with ``fill_index`` when the image is
    smaller.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; choose from {', '.join(PRESETS)}")
    fill = {tv_tensors.Mask: fill_index, "others": 0.0}
    ts: list[Callable] = []
    if preset in ("light", "strong"):
        ts += [v2.RandomHorizontalFlip(), _ScaleJitter(0.75, 1.25)]
    if preset == "strong":
        ts += [
            v2.RandomApply([v2.RandomRotation(10, fill=fill)], p=0.5),
            v2.ColorJitter(0.3, 0.3, 0.3, 0.02),
        ]
    if preset == "em":
        ts += [
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            RandomRot90(),
            v2.RandomApply([v2.ElasticTransform(alpha=30.0, sigma=6.0, fill=fill)], p=0.5),
            v2.ColorJitter(brightness=0.2, contrast=0.2),
        ]
    if crop_size is not None:
        ts.append(v2.RandomCrop(crop_size, pad_if_needed=True, fill=fill))
    if preset in ("strong", "em"):
        ts.append(ImageOnly(v2.GaussianNoise(sigma=0.03)))
    if preset == "strong":
        ts.append(ImageOnly(v2.RandomErasing(p=0.25, scale=(0.01, 0.06), value=0.0)))
    return JointCompose([_joint(t) for t in ts])


class _ScaleJitter(torch.nn.Module):
    """Resize image (bilinear) and mask (nearest) by a random factor in ``[low, high]``."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.low + (self.high - self.low) * float(torch.rand(()))
        h, w = image.shape[-2:]
        size = [max(1, round(h * s)), max(1, round(w * s))]
        return v2.functional.resize(image, size, antialias=True), v2.functional.resize(mask, size)


def _joint(t: Callable) -> Callable:
    """v2 transforms take ``(image, mask)`` as one structure; ours already take two arguments."""
    if isinstance(t, (RandomRot90, ImageOnly, _ScaleJitter)):
        return t
    return lambda image, mask: t(image, mask)
