"""DeepLab v3+: DeepLab v3's atrous encoder with a light decoder on stride-4 features.

L.-C. Chen, Y. Zhu, G. Papandreou, F. Schroff, H. Adam, "Encoder-Decoder with Atrous Separable Convolution
for Semantic Image Segmentation", ECCV 2018.

Reproduced (Sec. 3.1-3.2, Fig. 2, the decoder choices of Tables 1-2):

* encoder: a backbone at output stride 16 (dilated last stage) and ASPP with image pooling
  (:class:`~segscope.models.layers.aspp.ASPP`, rates 6, 12, 18; doubled at output stride 8) whose 3x3
  branches are depthwise-separable ("atrous separable convolution", ``separable=True``), 256 channels;
* decoder: the stride-4 low-level features (ResNet ``conv2`` = layer1, 256 channels) reduced by a 1x1
  conv-BN-ReLU to 48 channels (Table 1's best), the encoder output up-sampled x4 (bilinear) and
  concatenated, then two 3x3 convolutions of 256 channels (Table 2's best, separable as in the paper's
  final models), a 1x1 classifier and x4 bilinear up-sampling to the input; bilinear resizing aligns corners,
  as the authors' TensorFlow code does.

Paper figures: PASCAL VOC 2012 val 78.85 % mIoU (ResNet-101, OS 16, decoder, single-scale; Table 3) and
79.35 % with the modified Xception (Table 5). Neither is measured here (no VOC, no ImageNet ResNet offline).

Fidelity: ``segmentation_models_pytorch``'s ``DeepLabV3Plus`` has the same modules and key names with
``decoder_convs=1`` and an extra separable 3x3 conv-BN-ReLU after ASPP (``aspp_conv=True``); its ResNet also
dilates layer4's first block (torchvision keeps it at rate 1). ``tests/models/test_deeplab_v3.py`` loads an
SMP model's weights through :func:`from_smp_state` with those settings and compares outputs to 1e-5 after
giving that one block SMP's rate.

Parameters, measured and hand-counted in ``tests/models/test_deeplab_v3.py`` (21 classes):
``deeplabv3plus_resnet101`` 45,674,853 = ResNet-101 without fc 42,500,160 + separable ASPP 3,007,488 +
low-level 1x1 12,384 + two separable 3x3 decoder convs 149,424 + classifier 5,397; ``deeplabv3plus_resnet50``
26,682,725; ``deeplabv3plus_efficientnet_lite0`` 3,863,909. The separable ASPP is a fifth of v3's plain one
(15,535,104). The paper states no parameter count.

Departures: torchvision ResNets instead of the paper's Xception-65 (not available; ResNet-101 is the paper's
own second backbone, Table 3); ``encoder="efficientnet_lite0"`` (ImageNet offline, not in the paper) taps
its stride-4 map (24 channels) for the decoder; no multi-scale / flip inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segscope.models.encoders import Pretrained, create_encoder
from segscope.models.encoders.base import rename_prefixes
from segscope.models.layers.aspp import ASPP
from segscope.models.layers.separable import SeparableConv2d
from segscope.models.registration import register_variant
from segscope.models.semantic.deeplab_v3 import lite_free_options, scaled_rates

PAPER = (
    "Chen, Zhu, Papandreou, Schroff, Adam. Encoder-Decoder with Atrous Separable Convolution for Semantic "
    "Image Segmentation. ECCV 2018"
)
LOW_LEVEL_CHANNELS = 48
SMP_KEYS = (  # segmentation_models_pytorch DeepLabV3Plus key prefix -> segscope's
    ("encoder.", "encoder."),
    ("decoder.aspp.0.", "aspp."),
    ("decoder.aspp.1.", "aspp_conv.0."),
    ("decoder.aspp.2.", "aspp_conv.1."),
    ("decoder.block1.", "low_level."),
    ("decoder.block2.", "decoder.0."),
    ("segmentation_head.0.", "classifier."),
)


def conv_bn_relu(in_channels: int, out_channels: int, *, separable: bool) -> nn.Sequential:
    """3x3 (separable or plain) conv without bias -> BN -> ReLU."""
    conv: nn.Module = (
        SeparableConv2d(in_channels, out_channels, 3, bias=False)
        if separable
        else nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    )
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU())


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class DeepLabV3Plus(nn.Module):
    """DeepLab v3+ (module docstring): ``(N, C_in, H, W) -> (N, K, H, W)`` logits.

    Parameters
    ----------
    num_classes, in_channels : int
    encoder : str
        ``"resnet50"``, ``"resnet101"`` or ``"efficientnet_lite0/1/2"``.
    pretrained : bool | str | Path
    output_stride : {16, 8}
    rates : sequence of 3 ints, optional
        ASPP rates (default 6, 12, 18 at output stride 16).
    multi_grid : sequence of 3 ints, optional
        Block4 unit rates (ResNets; the paper's v3+ uses none).
    separable : bool
        Depthwise-separable 3x3 convolutions in ASPP and the decoder (the paper's final models).
    decoder_convs : int
        3x3 convolutions after the concatenation (2 in the paper, 1 in SMP).
    aspp_conv : bool
        SMP's extra separable 3x3 conv-BN-ReLU after ASPP (off in the paper).
    dropout : float
        Dropout after the ASPP projection.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        encoder: str = "resnet101",
        pretrained: Pretrained = False,
        output_stride: int = 16,
        rates: Sequence[int] | None = None,
        multi_grid: Sequence[int] | None = None,
        separable: bool = True,
        decoder_convs: int = 2,
        aspp_conv: bool = False,
        dropout: float = 0.5,
        channels: int = 256,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 16 or 8, got {output_stride}")
        if decoder_convs < 1:
            raise ValueError(f"decoder_convs must be at least 1, got {decoder_convs}")
        self.encoder = create_encoder(
            encoder,
            in_channels=in_channels,
            pretrained=pretrained,
            output_stride=output_stride,
            **lite_free_options(encoder, multi_grid=multi_grid),
        )
        self.input_mean = getattr(self.encoder, "input_mean", None)
        self.input_std = getattr(self.encoder, "input_std", None)
        enc = self.encoder.out_channels
        self.low_index = self.encoder.strides.index(4)
        self.aspp = ASPP(
            enc[-1], scaled_rates(rates, output_stride), channels, separable=separable, dropout=dropout
        )
        self.aspp_conv = conv_bn_relu(channels, channels, separable=True) if aspp_conv else None
        self.low_level = nn.Sequential(
            nn.Conv2d(enc[self.low_index], LOW_LEVEL_CHANNELS, 1, bias=False),
            nn.BatchNorm2d(LOW_LEVEL_CHANNELS),
            nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            *(
                conv_bn_relu(
                    channels + LOW_LEVEL_CHANNELS if i == 0 else channels, channels, separable=separable
                )
                for i in range(decoder_convs)
            )
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        features = self.encoder(x)
        y = self.aspp(features[-1])
        if self.aspp_conv is not None:
            y = self.aspp_conv(y)
        low = self.low_level(features[self.low_index])  # (N, 48, ~H/4, ~W/4)
        y = self.decoder(torch.cat([_resize(y, low.shape[-2:]), low], dim=1))
        return _resize(self.classifier(y), size)


def from_smp_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An SMP ``DeepLabV3Plus`` state dict in segscope's key names (:data:`SMP_KEYS`)."""
    return rename_prefixes(state, SMP_KEYS)


_OPTIONS = (
    "options: pretrained, output_stride, rates, multi_grid, separable, decoder_convs, aspp_conv, dropout"
)
register_variant(
    "deeplabv3plus_resnet101",
    DeepLabV3Plus,
    paper=PAPER,
    doc=f"DeepLab v3+ on a dilated ResNet-101 (the paper's Table 3); {_OPTIONS}.",
    encoder="resnet101",
)
register_variant(
    "deeplabv3plus_resnet50",
    DeepLabV3Plus,
    paper=PAPER,
    doc=f"DeepLab v3+ on a dilated ResNet-50; {_OPTIONS}.",
    encoder="resnet50",
)
register_variant(
    "deeplabv3plus_efficientnet_lite0",
    DeepLabV3Plus,
    paper=PAPER,
    doc="DeepLab v3+ on a dilated EfficientNet-Lite0 (ImageNet offline with pretrained=imagenet; not in the "
    f"paper); {_OPTIONS}.",
    encoder="efficientnet_lite0",
)
