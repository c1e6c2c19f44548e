"""Backbones under one contract: ``forward(x)`` returns feature maps from high to low resolution,
with ``out_channels`` and ``strides`` attributes. Weights come from torchvision's weights API or a
local ``.pth``/``.safetensors`` file (see :mod:`segscope.models.encoders.base`)."""

from __future__ import annotations

from typing import Any

from segscope.models.encoders.base import (
    Encoder,
    Pretrained,
    adapt_input_conv,
    backbone_state_dict,
    load_into,
    load_state_dict_file,
)
from segscope.models.encoders.efficientnet_lite import LITE_PARAMS, EfficientNetLiteEncoder
from segscope.models.encoders.resnet import RESNET_CHANNELS, ResNetEncoder
from segscope.models.encoders.vgg import VGG16_STAGES, VGGEncoder, scale_channels

LITE_ENCODERS = tuple(LITE_PARAMS)
ENCODERS = ("vgg16", "vgg16_bn", *RESNET_CHANNELS, *LITE_ENCODERS)


def create_encoder(
    name: str, *, in_channels: int = 3, pretrained: Pretrained = False, **options: Any
) -> Encoder:
    """An encoder by name: ``"vgg16"``, ``"vgg16_bn"``, ``"resnet18"`` ... ``"resnet152"`` (torchvision's) or
    ``"efficientnet_lite0/1/2"``; ``options`` go to its class (e.g. ``output_stride``)."""
    if name in ("vgg16", "vgg16_bn"):
        return VGGEncoder(
            batch_norm=name == "vgg16_bn", in_channels=in_channels, pretrained=pretrained, **options
        )
    if name in RESNET_CHANNELS:
        return ResNetEncoder(name, in_channels=in_channels, pretrained=pretrained, **options)
    if name in LITE_ENCODERS:
        return EfficientNetLiteEncoder(name, in_channels=in_channels, pretrained=pretrained, **options)
    raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")


__all__ = [
    "ENCODERS",
    "EfficientNetLiteEncoder",
    "Encoder",
    "LITE_ENCODERS",
    "Pretrained",
    "RESNET_CHANNELS",
    "ResNetEncoder",
    "VGG16_STAGES",
    "VGGEncoder",
    "adapt_input_conv",
    "backbone_state_dict",
    "create_encoder",
    "load_into",
    "load_state_dict_file",
    "scale_channels",
]
