"""SegNet (VGG16-BN encoder + mirrored decoder unpooling with the encoder's indices) and SegNet-Basic.

V. Badrinarayanan, A. Kendall, R. Cipolla, "SegNet: A deep convolutional encoder-decoder
architecture for image segmentation", TPAMI 39(12), 2017.

Reproduced:

* ``segnet_vgg16`` - Fig. 2 / section 3: the 13 convolutions of VGG16 with batch norm (torchvision's
  ``vgg16_bn`` layout, so ImageNet weights load), 2x2 max-pooling keeping the indices, and a decoder
  mirroring it: each stage unpools with the matching indices (no learned up-sampling) and applies
  3x3 conv + BN + ReLU layers, the last stage's last convolution being the classifier (3x3, no
  BN/ReLU) as in the authors' ``segnet_train.prototxt``. Parameter count for the 11 CamVid classes:
  29,449,355 (29.5 M in Table 6 / section 4); tested within 1 %.
* ``segnet_basic`` - section 4.1 / Table 1: 4 encoders (7x7 conv, 64 channels, BN, ReLU, 2x2 pooling),
  4 decoders (unpool, 7x7 conv, 64 channels, BN, *no* ReLU), no biases in those convolutions, and a 1x1
  convolution classifier. 1,416,075 parameters for 11 classes against the paper's 1.425 M (-0.63 %;
  the paper does not break its figure down); tested within 1 %.

Departures: the paper's SegNet-Basic also applies local contrast normalisation to the input (an LRN
layer), omitted here: normalise the data instead. ``width`` (SegNet) / ``base_channels``
(SegNet-Basic) shrink the channel counts for CPU experiments; reduced variants cannot load ImageNet
weights. Odd input sizes are handled natively: every unpooling restores the exact pre-pooling size
it recorded, so no padding is needed (inputs must be at least 32 x 32, SegNet-Basic 16 x 16).
"""

from __future__ import annotations

import torch
from torch import nn

from segscope.models.encoders import Pretrained, VGGEncoder
from segscope.models.layers.unpool import MaxUnpool2d, SwitchMaxPool2d
from segscope.models.registration import register_model

PAPER = (
    "Badrinarayanan, Kendall, Cipolla. SegNet: A Deep Convolutional Encoder-Decoder Architecture "
    "for Image Segmentation. TPAMI 2017"
)


def _conv_bn(
    in_channels: int, out_channels: int, kernel_size: int, *, bias: bool, relu: bool
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SegNet(nn.Module):
    """VGG16-BN encoder, index-unpooling decoder mirroring it, 3x3 classifier.

    Shapes: ``(N, C_in, H, W) -> (N, num_classes, H, W)`` for any ``H, W >= 32``.
    """

    def __init__(
        self, num_classes: int, in_channels: int = 3, *, width: float = 1.0, pretrained: Pretrained = False
    ):
        super().__init__()
        self.encoder = VGGEncoder(
            batch_norm=True, in_channels=in_channels, width=width, pretrained=pretrained
        )
        self.unpool = MaxUnpool2d(2, 2)
        stages = self.encoder.stage_channels
        inputs = (None, *(s[-1] for s in stages[:-1]))  # channels entering each encoder stage
        decoder: list[nn.Sequential] = []
        for index in reversed(range(len(stages))):  # decoder stage for encoder stage 5, 4, ... 1
            channels = stages[index][-1]
            layers = [_conv_bn(channels, channels, 3, bias=True, relu=True) for _ in stages[index][:-1]]
            if index > 0:
                layers.append(_conv_bn(channels, inputs[index], 3, bias=True, relu=True))
            else:
                layers.append(nn.Sequential(nn.Conv2d(channels, num_classes, 3, padding=1)))  # classifier
            decoder.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 32:
            raise ValueError(f"SegNet needs inputs of at least 32x32 (5 poolings), got {tuple(x.shape[-2:])}")
        pooled, switches = self.encoder.forward_with_switches(x)  # pool5: (N, 512w, ~H/32, ~W/32)
        y = pooled[-1]
        for stage, switch in zip(self.decoder, reversed(switches)):
            y = stage(self.unpool(y, switch))  # unpool to the recorded size, then densify
        return y  # (N, K, H, W)


class SegNetBasic(nn.Module):
    """SegNet-Basic: 4 x (7x7 conv-BN-ReLU, pool), 4 x (unpool, 7x7 conv-BN), 1x1 classifier.

    Shapes: ``(N, C_in, H, W) -> (N, num_classes, H, W)`` for any ``H, W >= 16``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, *, base_channels: int = 64, depth: int = 4):
        super().__init__()
        c = base_channels
        self.depth = depth
        self.encoders = nn.ModuleList(
            _conv_bn(in_channels if i == 0 else c, c, 7, bias=False, relu=True) for i in range(depth)
        )
        self.pool = SwitchMaxPool2d(2, 2)
        self.unpool = MaxUnpool2d(2, 2)
        self.decoders = nn.ModuleList(_conv_bn(c, c, 7, bias=False, relu=False) for _ in range(depth))
        self.classifier = nn.Conv2d(c, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 2**self.depth:
            side = 2**self.depth
            raise ValueError(
                f"SegNet-Basic needs inputs of at least {side}x{side}, got {tuple(x.shape[-2:])}"
            )
        switches = []
        for encoder in self.encoders:
            x, switch = self.pool(encoder(x))  # (N, 64, H/2^i, W/2^i)
            switches.append(switch)
        for decoder, switch in zip(self.decoders, reversed(switches)):
            x = decoder(self.unpool(x, switch))
        return self.classifier(x)  # (N, K, H, W)


@register_model("segnet_vgg16", paper=PAPER)
def segnet_vgg16(
    num_classes: int, in_channels: int = 3, *, pretrained: Pretrained = False, width: float = 1.0
) -> SegNet:
    """SegNet on VGG16-BN with index unpooling (Badrinarayanan et al. 2017); options: pretrained, width."""
    return SegNet(num_classes, in_channels, width=width, pretrained=pretrained)


@register_model("segnet_basic", paper=PAPER)
def segnet_basic(
    num_classes: int, in_channels: int = 3, *, base_channels: int = 64, pretrained: Pretrained = False
) -> SegNetBasic:
    """SegNet-Basic, 4+4 7x7 layers of 64 channels (SegNet paper, Table 1); option base_channels."""
    if pretrained:
        raise ValueError(
            "segnet_basic has no pretrained weights (it is trained from scratch, as in the paper)"
        )
    return SegNetBasic(num_classes, in_channels, base_channels=base_channels)
