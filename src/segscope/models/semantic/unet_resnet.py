"""U-Net with a ResNet encoder: the U-Net decoder of Ronneberger et al. (MICCAI 2015) on a ResNet
backbone (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016), the form popularised for
transfer learning by TernausNet (Iglovikov & Shvets, 2018) and segmentation-models-pytorch.

Layout: the encoder's five maps (strides 2, 4, 8, 16, 32) feed five decoder blocks, each of which
up-samples by nearest neighbour to the next skip's size, concatenates the skip, and applies two
3x3 conv-BN-ReLU; decoder widths 256, 128, 64, 32, 16; a 3x3 convolution gives the class logits at the
input resolution. Module names follow segmentation-models-pytorch's ``Unet`` so that its state dict
loads unchanged: on the same weights both give the same logits (``tests/models/test_unet_resnet.py``),
and the parameter count is identical (14,329,659 for ResNet-18 and 11 classes).

Departures from the original U-Net: nearest up-sampling instead of learned 2x2 up-convolutions, a ResNet
contracting path with batch normalisation, and decoder widths that shrink to 16. Any input size works:
inputs are reflect-padded to a multiple of 32 and the logits cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segscope.models.encoders.base import Pretrained
from segscope.models.encoders.resnet import ResNetEncoder
from segscope.models.layers.conv import ConvNormAct
from segscope.models.registration import register_model


class DecoderBlock(nn.Module):
    """Up-sample (nearest) to ``size``, concatenate the skip, then two 3x3 conv-BN-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels + skip_channels, out_channels, 3)
        self.conv2 = ConvNormAct(out_channels, out_channels, 3)

    def forward(self, x: torch.Tensor, size: tuple[int, int], skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetDecoder(nn.Module):
    def __init__(self, encoder_channels: tuple[int, ...], decoder_channels: tuple[int, ...]) -> None:
        super().__init__()
        skips = list(encoder_channels[:-1][::-1]) + [0]  # c3, c2, c1, stem, none
        ins = [encoder_channels[-1], *decoder_channels[:-1]]
        self.blocks = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, decoder_channels))


class EncoderUNet(nn.Module):
    """``(N, C_in, H, W)`` -> ``(N, num_classes, H, W)`` logits; U-Net decoder on a ResNet encoder."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        encoder: str = "resnet18",
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
        pretrained: Pretrained = False,
    ) -> None:
        super().__init__()
        if len(decoder_channels) != 5:
            raise ValueError(
                f"decoder_channels needs 5 widths (one per encoder stride), got {decoder_channels}"
            )
        self.encoder = ResNetEncoder(encoder, in_channels=in_channels, pretrained=pretrained)
        self.decoder = UNetDecoder(self.encoder.out_channels, tuple(decoder_channels))
        self.segmentation_head = nn.Sequential(nn.Conv2d(decoder_channels[-1], num_classes, 3, padding=1))
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % 32, (-w) % 32
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if pad_h < h and pad_w < w else "replicate")
        stem, c1, c2, c3, c4 = self.encoder(x)  # strides 2, 4, 8, 16, 32
        sizes = [c3.shape[-2:], c2.shape[-2:], c1.shape[-2:], stem.shape[-2:], x.shape[-2:]]
        y = c4
        for block, size, skip in zip(self.decoder.blocks, sizes, (c3, c2, c1, stem, None)):
            y = block(y, size, skip)  # (N, decoder_channels[i], size)
        return self.segmentation_head(y)[..., :h, :w]


def _builder(encoder: str):
    def build(num_classes: int = 2, in_channels: int = 3, **options) -> EncoderUNet:
        return EncoderUNet(num_classes, in_channels, encoder=encoder, **options)

    build.__doc__ = (
        f"U-Net decoder on a torchvision {encoder} encoder (same layout as smp.Unet('{encoder}'))."
    )
    return build


for _enc in ("resnet18", "resnet34", "resnet50"):
    register_model(f"unet_{_enc}", paper="Ronneberger et al. 2015; He et al. 2016")(_builder(_enc))
