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

With ``crop_max_ratio`` the training crop is :class:`MaxRatioCrop` (mmsegmentation's ``cat_max_ratio``):
it redraws crops dominated by one class, under-sampling background-only crops.

Randomness comes from torch's global generator, so a run is reproducible under ``torch.manual_seed``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from segscope.errors import UserError

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


class MaxRatioCrop(torch.nn.Module):
    """Random crop that avoids crops dominated by one class (under-samples background-only crops).

    Draws up to ``tries`` random ``size`` crops and keeps the first whose most frequent class covers at
    most ``max_ratio`` of the crop's labelled pixels (pixels equal to ``ignore_index`` do not count; a
    crop with no labelled pixel has ratio 1). When no try qualifies, the try with the lowest ratio is
    kept. Images smaller than ``size`` are padded first as ``v2.RandomCrop(pad_if_needed=True)`` does
    (by the deficit on both sides; image with 0, mask with ``ignore_index``).

    References
    ----------
    .. [1] mmsegmentation ``RandomCrop(cat_max_ratio=0.75)``, the crop of its Cityscapes / ADE20K
       configs; it breaks on ``ratio < cat_max_ratio`` with at least two classes and otherwise keeps the
       last of 10 tries. Here the bound is ``<=`` (a single class passes when ``max_ratio`` is 1) and the
       fallback is the least dominated try.
    """

    def __init__(
        self, size: int | tuple[int, int], max_ratio: float = 0.75, tries: int = 10, ignore_index: int = 255
    ) -> None:
        super().__init__()
        self.size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if not 0 < max_ratio <= 1:
            raise UserError(f"crop max_ratio must be in (0, 1], got {max_ratio}")
        if int(tries) < 1 or min(self.size) < 1:
            raise UserError(f"MaxRatioCrop needs tries >= 1 and a positive size, got {tries}, {size}")
        self.max_ratio, self.tries, self.ignore_index = float(max_ratio), int(tries), int(ignore_index)

    def dominant_ratio(self, mask: torch.Tensor) -> float:
        """Fraction of ``mask``'s labelled pixels that belong to its most frequent class (1 if none)."""
        m = mask.as_subclass(torch.Tensor).reshape(-1)
        m = m[(m != self.ignore_index) & (m >= 0)]
        return 1.0 if m.numel() == 0 else float(torch.bincount(m).max()) / m.numel()

    def sample_box(self, mask: torch.Tensor) -> tuple[int, int, float]:
        """``(top, left, ratio)`` of the chosen crop in an (already padded) ``(..., H, W)`` mask."""
        (h, w), (ch, cw) = mask.shape[-2:], self.size
        best = (0, 0, 2.0)
        for _ in range(self.tries):
            top = int(torch.randint(0, h - ch + 1, ()))
            left = int(torch.randint(0, w - cw + 1, ()))
            ratio = self.dominant_ratio(mask[..., top : top + ch, left : left + cw])
            if ratio <= self.max_ratio:
                return top, left, ratio
            if ratio < best[2]:
                best = (top, left, ratio)
        return best

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (h, w), (ch, cw) = image.shape[-2:], self.size
        dy, dx = max(ch - h, 0), max(cw - w, 0)
        if dy or dx:
            padding = [dx, dy, dx, dy]  # left, top, right, bottom
            image = v2.functional.pad(image, padding, fill=0.0)
            mask = v2.functional.pad(mask, padding, fill=self.ignore_index)
        top, left, _ = self.sample_box(mask)
        return (
            tv_tensors.wrap(image[..., top : top + ch, left : left + cw], like=image),
            tv_tensors.wrap(mask[..., top : top + ch, left : left + cw], like=mask),
        )


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
    crop_max_ratio: float | None = None,
) -> JointCompose:
    """Training augmentation for float images in [0, 1] ``(C, H, W)`` and ``(H, W)`` int64 masks.

    ``fill_index`` is written into the mask wherever a geometric transform creates new pixels; the loss
    ignores it. ``crop_size`` (H, W) takes a random crop, padding with ``fill_index`` when the image is
    smaller. ``crop_max_ratio`` (needs ``crop_size``) makes that crop a :class:`MaxRatioCrop`: crops
    whose most frequent class covers more than this fraction of the labelled pixels are redrawn
    (up to 10 tries; mmsegmentation uses 0.75).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; choose from {', '.join(PRESETS)}")
    if crop_max_ratio is not None and crop_size is None:
        raise UserError("crop_max_ratio needs a crop size (crop_size)")
    fill = {tv_tensors.Mask: fill_index, "others": 0.0}
    ts: list[Callable] = []
    if preset in ("light", "strong"):
        ts += [v2.RandomHorizontalFlip(), _ScaleJitter(0.75, 1.25, keep_size=crop_size is None, fill=fill)]
    if crop_size is not None:  # crop before the costly per-pixel warps (elastic) so they run on less
        if crop_max_ratio is None:
            ts.append(v2.RandomCrop(crop_size, pad_if_needed=True, fill=fill))
        else:
            ts.append(MaxRatioCrop(crop_size, max_ratio=crop_max_ratio, ignore_index=fill_index))
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
        t,
        (
            RandomRot90,
            ImageOnly,
            _ScaleJitter,
            ElasticGrid,
            BrightnessContrast,
            AddGaussianNoise,
            MaxRatioCrop,
        ),
    ):
        return t
    return lambda image, mask: t(image, mask)
