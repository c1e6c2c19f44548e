"""VGG16 (optionally with batch norm) as an encoder, in torchvision's layer layout.

The 13 convolutions live in ``self.features`` built by ``torchvision.models.vgg.make_layers``, so
the state-dict keys are torchvision's (``features.0.weight`` ...) and its ImageNet weights load
unchanged. ``forward`` returns the five pooling outputs (strides 2, 4, 8, 16, 32: FCN's pool1..pool5);
``forward_with_switches`` also returns the max-pooling switches that SegNet and DeconvNet unpool with.

References
----------
.. [1] K. Simonyan, A. Zisserman, "Very deep convolutional networks for large-scale image
   recognition", ICLR 2015 (configuration D = VGG16).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.vgg import make_layers

from segscope.models.encoders.base import (
    Encoder,
    Pretrained,
    adapt_input_conv,
    backbone_state_dict,
    check_pretrained_width,
    load_into,
)
from segscope.models.layers.unpool import PoolSwitches, SwitchMaxPool2d

#: Output channels of the convolutions of each VGG16 stage (configuration D).
VGG16_STAGES: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)


def scale_channels(channels: int, width: float) -> int:
    """``round(channels * width)``, at least 1: the channel count of a width-reduced variant."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(1, int(round(channels * width)))


class VGGEncoder(Encoder):
    """VGG16 convolutional part; returns pool1..pool5 (strides 2..32).

    Parameters
    ----------
    batch_norm : bool
        VGG16-BN (``vgg16_bn``, as SegNet and DeconvNet use) instead of plain VGG16 (FCN).
    in_channels : int
        Input channels; pretrained RGB first-layer weights are adapted (see ``adapt_input_conv``).
    width : float
        Channel multiplier (1.0 = the paper's network; smaller values give CPU-sized variants
        that cannot load the ImageNet weights).
    first_padding : int
        Padding of conv1_1: 1 normally, 100 for FCN's Caffe layout.
    ceil_mode : bool
        Round pooled sizes up (Caffe's pooling, FCN) instead of down (PyTorch's default).
    pretrained : bool | str | Path
        See :mod:`segscope.models.encoders.base`; loads ``features.*`` of the torchvision model.
    """

    def __init__(
        self,
        *,
        batch_norm: bool = False,
        in_channels: int = 3,
        width: float = 1.0,
        first_padding: int = 1,
        ceil_mode: bool = False,
        pretrained: Pretrained = False,
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be positive, got {in_channels}")
        self.arch = "vgg16_bn" if batch_norm else "vgg16"
        self.batch_norm = batch_norm
        self.stage_channels = tuple(tuple(scale_channels(c, width) for c in s) for s in VGG16_STAGES)
        cfg: list[int | str] = []
        for stage in self.stage_channels:
            cfg += [*stage, "M"]
        self.features = make_layers(cfg, batch_norm=batch_norm)
        first = self.features[0]
        if in_channels != 3 or first_padding != 1:
            self.features[0] = nn.Conv2d(in_channels, first.out_channels, 3, padding=first_padding)
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                layer.ceil_mode = ceil_mode
        self.in_channels = in_channels
        self.switch_pool = SwitchMaxPool2d(2, 2)
        self.out_channels = tuple(stage[-1] for stage in self.stage_channels)
        self.strides = (2, 4, 8, 16, 32)
        self.width = width
        check_pretrained_width(pretrained, width)
        state = backbone_state_dict(self.arch, pretrained)
        if state is not None:
            self.load_torchvision_state(state, source=str(pretrained))

    def load_torchvision_state(self, state: dict[str, torch.Tensor], *, source: str = "state dict") -> None:
        """Load the ``features.*`` entries of a torchvision ``vgg16``/``vgg16_bn`` state dict.

        Any width loads a state dict of matching shapes (e.g. saved from a width-reduced model);
        a mismatch raises one :class:`~segscope.errors.UserError` listing the offending keys.
        """
        features = {k: v for k, v in state.items() if k.startswith("features.")}
        if "features.0.weight" in features:
            features["features.0.weight"] = adapt_input_conv(features["features.0.weight"], self.in_channels)
        load_into(self, features, source=source)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        pooled: list[torch.Tensor] = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                pooled.append(x)  # pool_i: (N, out_channels[i], H / 2^(i+1), W / 2^(i+1))
        return pooled

    def forward_with_switches(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[PoolSwitches]]:
        """Pool outputs and, for each pooling, its switches (indices + pre-pooling size).

        Uses floor-mode pooling whatever ``ceil_mode`` says (the switches' sizes make unpooling exact).
        """
        pooled: list[torch.Tensor] = []
        switches: list[PoolSwitches] = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                x, switch = self.switch_pool(x)
                pooled.append(x)
                switches.append(switch)
            else:
                x = layer(x)
        return pooled, switches
