"""DeconvNet: VGG16-BN, fc6/fc7 as convolutions, and a mirrored unpooling + deconvolution network.

H. Noh, S. Hong, B. Han, "Learning deconvolution network for semantic segmentation", ICCV 2015.

Reproduced: Table 1 / Fig. 2 of the paper, layer for layer:

* conv1_1 ... conv5_3 of VGG16, each followed by batch norm and ReLU (torchvision ``vgg16_bn`` layout,
  so ImageNet weights load), 2x2 max-pooling recording its switches;
* fc6 (7x7 convolution, no padding, 4096) and fc7 (1x1, 4096), each + BN + ReLU; on the paper's 224x224
  input pool5 is 7x7 and fc6 reduces it to 1x1;
* deconv-fc6 (7x7 transposed convolution back to 7x7x512) + BN + ReLU;
* five stages ``unpool_i`` (switches of ``pool_i``) followed by 3x3 deconvolution layers (transposed
  convolutions, stride 1) + BN + ReLU mirroring conv_i (deconv5-1..5-3: 512; 4-1, 4-2: 512, 4-3: 256;
  3-1, 3-2: 256, 3-3: 128; 2-1: 128, 2-2: 64; 1-1, 1-2: 64), and a 1x1 output layer.

Parameter count, 21 classes: 251,805,653 (the convolution/deconvolution weights and biases give
251,772,245, batch norm 33,408). The figure quoted for DeconvNet is 252 M - recalled from the
DeconvNet/SegNet papers, not re-checked against the text offline; it agrees with the 961 MB model
size SegNet's Table 6 lists for DeconvNet (961 MiB / 4 bytes = 251.9 M). Tested within 1 % of 252 M.

Departures: the paper segments object proposals (instance-wise crops) and ensembles with FCN; this
module is the network only, applied to whole images. fc6 is a valid 7x7 convolution, so pool5 must be
at least 7x7: inputs smaller than ``min_size`` (224, the paper's input) are zero-padded at the
bottom/right to it and the output cropped back; larger and odd sizes need no padding (unpooling
restores each recorded size exactly). ``width < 1`` shrinks all channel counts (fc6/fc7 too) for CPU
experiments; reduced variants cannot load ImageNet weights.
"""

from __future__ import annotations

import torch
from torch import nn

from segscope.models.encoders import Pretrained, VGGEncoder
from segscope.models.encoders.vgg import scale_channels
from segscope.models.layers.unpool import MaxUnpool2d
from segscope.models.registration import register_model
from segscope.models.semantic.fcn import pad_to_multiple

PAPER = "Noh, Hong, Han. Learning Deconvolution Network for Semantic Segmentation. ICCV 2015"


def _layer_bn_relu(layer: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(layer, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def _deconv(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 "deconvolution" (transposed convolution, stride 1, padding 1) + BN + ReLU."""
    return _layer_bn_relu(nn.ConvTranspose2d(in_channels, out_channels, 3, padding=1), out_channels)


class DeconvNet(nn.Module):
    """DeconvNet (Noh et al. 2015, Table 1). Shapes: ``(N, C_in, H, W) -> (N, num_classes, H, W)``."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        width: float = 1.0,
        min_size: int = 224,
        pretrained: Pretrained = False,
    ) -> None:
        super().__init__()
        if min_size < 224:
            raise ValueError(f"min_size must be >= 224 (fc6 needs a 7x7 pool5), got {min_size}")
        self.min_size = min_size
        self.encoder = VGGEncoder(
            batch_norm=True, in_channels=in_channels, width=width, pretrained=pretrained
        )
        stages = self.encoder.stage_channels
        top, fc = stages[-1][-1], scale_channels(4096, width)
        self.fc6 = _layer_bn_relu(nn.Conv2d(top, fc, 7), fc)
        self.fc7 = _layer_bn_relu(nn.Conv2d(fc, fc, 1), fc)
        self.deconv_fc6 = _layer_bn_relu(nn.ConvTranspose2d(fc, top, 7), top)
        self.unpool = MaxUnpool2d(2, 2)
        inputs = (stages[0][-1], *(s[-1] for s in stages[:-1]))  # stage 1 keeps its 64 channels
        decoder = []
        for index in reversed(range(len(stages))):
            channels = stages[index][-1]
            layers = [_deconv(channels, channels) for _ in stages[index][:-1]]
            layers.append(_deconv(channels, inputs[index]))
            decoder.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(decoder)
        self.output = nn.Conv2d(stages[0][-1], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = pad_to_multiple(x, 1, minimum=self.min_size)
        pooled, switches = self.encoder.forward_with_switches(x)  # pool5: (N, 512, >=7, >=7)
        y = self.deconv_fc6(self.fc7(self.fc6(pooled[-1])))  # 7x7 -> 1x1 -> 7x7 (at 224 input)
        for stage, switch in zip(self.decoder, reversed(switches)):
            y = stage(self.unpool(y, switch))  # (N, C_i, H / 2^(i-1), W / 2^(i-1))
        return self.output(y)[..., : size[0], : size[1]]  # (N, K, H, W)


@register_model("deconvnet_vgg16", paper=PAPER)
def deconvnet_vgg16(
    num_classes: int,
    in_channels: int = 3,
    *,
    pretrained: Pretrained = False,
    width: float = 1.0,
    min_size: int = 224,
) -> DeconvNet:
    """DeconvNet on VGG16-BN with unpooling switches (Noh et al. ICCV 2015); options: pretrained, width."""
    return DeconvNet(num_classes, in_channels, width=width, min_size=min_size, pretrained=pretrained)
