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
em         microscopy: horizontal + vertical flips, 90° rotations, elastic deformation (the U-Net
           paper's 3x3 grid, 10 px), brightness/contrast jitter, Gaussian noise
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


class ElasticGrid(torch.nn.Module):
    """The U-Net paper's elastic deformation (Ronneberger et al. 2015, Sec. 3.1).

    Random displacement vectors on a coarse ``grid x grid`` lattice, drawn from a Gaussian with ``sigma``
    pixels standard deviation, are interpolated bicubically to a per-pixel field that warps image
    (bilinear) and mask (nearest) together; pixels pulled from outside the image take ``fill_index``
    in the mask. Written here because torchvision's ``ElasticTransform`` (a Gaussian-smoothed dense
    field) costs ~0.4 s per 256x256 image on CPU; this costs a few milliseconds.
    """

    def __init__(self, sigma: float = 10.0, grid: int = 3, p: float = 0.5, fill_index: int = 255) -> None:
        super().__init__()
        self.sigma, self.grid, self.p, self.fill_index = sigma, grid, p, fill_index

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if float(torch.rand(())) >= self.p:
            return image, mask
        import torch.nn.functional as F

        h, w = image.shape[-2:]
        coarse = torch.randn(1, 2, self.grid, self.grid) * self.sigma
        field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)[0]  # (2, H, W) pixels
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
        )
        gx = (xs + field[0]) * (2 / max(w - 1, 1)) - 1
        gy = (ys + field[1]) * (2 / max(h - 1, 1)) - 1
        grid = torch.stack([gx, gy], dim=-1).unsqueeze(0)  # (1, H, W, 2) in [-1, 1]
        img = image.as_subclass(torch.Tensor)
        warped = F.grid_sample(
            img.unsqueeze(0).float(), grid, mode="bilinear", padding_mode="reflection", align_corners=True
        )[0]
        m = mask.as_subclass(torch.Tensor).float()[None, None]
        wm = F.grid_sample(m, grid, mode="nearest", padding_mode="zeros", align_corners=True)[0, 0]
        outside = (grid.abs() > 1).any(-1)[0]
        wm = torch.where(outside, torch.full_like(wm, self.fill_index), wm)
        return tv_tensors.wrap(warped.to(img.dtype), like=image), tv_tensors.wrap(wm.long(), like=mask)


class BrightnessContrast(torch.nn.Module):
    """Image-only photometric jitter: ``x -> (x - mean) * c + mean + b``, clipped to [0, 1]."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2) -> None:
        super().__init__()
        self.brightness, self.contrast = brightness, contrast

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.as_subclass(torch.Tensor)
        c = 1 + (2 * float(torch.rand(())) - 1) * self.contrast
        b = (2 * float(torch.rand(())) - 1) * self.brightness
        mean = x.mean()
        return tv_tensors.wrap(((x - mean) * c + mean + b).clamp(0, 1), like=image), mask


class AddGaussianNoise(torch.nn.Module):
    """Image-only additive Gaussian noise of standard deviation ``sigma`` (image in [0, 1])."""

    def __init__(self, sigma: float = 0.03) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.as_subclass(torch.Tensor)
        return tv_tensors.wrap((x + self.sigma * torch.randn_like(x)).clamp(0, 1), like=image), mask


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
        ts += [v2.RandomHorizontalFlip(), _ScaleJitter(0.75, 1.25, keep_size=crop_size is None, fill=fill)]
    if crop_size is not None:  # crop before the costly per-pixel warps (elastic) so they run on less
        ts.append(v2.RandomCrop(crop_size, pad_if_needed=True, fill=fill))
    if preset == "em":
        ts += [
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            RandomRot90(),
            ElasticGrid(sigma=10.0, grid=3, p=0.5, fill_index=fill_index),
            BrightnessContrast(0.2, 0.2),
        ]
    if preset == "strong":
        ts += [
            v2.RandomApply([v2.RandomRotation(10, fill=fill)], p=0.5),
            v2.ColorJitter(0.3, 0.3, 0.3, 0.02),
        ]
    if preset in ("strong", "em"):
        ts.append(AddGaussianNoise(0.03))
    if preset == "strong":
        ts.append(ImageOnly(v2.RandomErasing(p=0.25, scale=(0.01, 0.06), value=0.0)))
    return JointCompose([_joint(t) for t in ts])


class _ScaleJitter(torch.nn.Module):
    """Resize image (bilinear) and mask (nearest) by a random factor in ``[low, high]``.

    With ``keep_size`` the result is randomly cropped, or padded with ``fill``, back to the input size,
    so that images of one batch keep a common size when no training crop is set.
    """

    def __init__(self, low: float, high: float, *, keep_size: bool = False, fill: dict | None = None) -> None:
        super().__init__()
        self.low, self.high, self.keep_size, self.fill = low, high, keep_size, fill

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.low + (self.high - self.low) * float(torch.rand(()))
        h, w = image.shape[-2:]
        size = [max(1, round(h * s)), max(1, round(w * s))]
        image, mask = v2.functional.resize(image, size, antialias=True), v2.functional.resize(mask, size)
        if self.keep_size:
            image, mask = v2.RandomCrop((h, w), pad_if_needed=True, fill=self.fill)(image, mask)
        return image, mask


def _joint(t: Callable) -> Callable:
    """v2 transforms take ``(image, mask)`` as one structure; ours already take two arguments."""
    if isinstance(
        t, (RandomRot90, ImageOnly, _ScaleJitter, ElasticGrid, BrightnessContrast, AddGaussianNoise)
    ):
        return t
    return lambda image, mask: t(image, mask)
