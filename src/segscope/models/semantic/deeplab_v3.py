"""DeepLab v3: atrous spatial pyramid pooling with image-level features on a dilated ResNet.

L.-C. Chen, G. Papandreou, F. Schroff, H. Adam, "Rethinking Atrous Convolution for Semantic Image
Segmentation", arXiv 1706.05587, 2017.

Reproduced (Sec. 3.3, Fig. 5, the settings of Table 4 / 5):

* a ResNet-50/101 whose last strides are replaced by dilation, output stride 16 by default (8 as an
  option), with multi-grid unit rates (1, 2, 4) in block4 (rates 2, 4, 8 at output stride 16; Table 3's best
  "(1, 2, 4)" row);
* ASPP (:class:`~segscope.models.layers.aspp.ASPP`): a 1x1 branch, three 3x3 branches at rates 6, 12, 18
  (doubled at output stride 8), image-level pooling, BatchNorm in every branch, 256 channels each,
  concatenated, 1x1 conv-BN-ReLU to 256, then the 1x1 classifier and bilinear up-sampling to the input;
* no dense CRF (the paper drops it); segscope's ``crf`` stage can still follow.

Paper figure: PASCAL VOC 2012 val 77.21 % (ResNet-101, OS 16, multi-grid (1, 2, 4), ASPP + image pooling,
Table 4) and 79.77 % with OS 8 at inference, multi-scale inputs and flips (Table 5). Neither is measured here
(no VOC, no ImageNet ResNet offline); the CamVid figures are in ``benchmarks/camvid_context.py``.

torchvision's ``deeplabv3_resnet50`` is the same network with two changes, both options here so its weights
load unchanged (``tests/models/test_deeplab_v3.py`` checks equal outputs to 1e-5 via
:func:`from_torchvision_state`): ``output_stride=8, rates=(12, 24, 36), multi_grid=None`` (torchvision's
dilation leaves layer4's first block at rate 2) and ``head_conv=True``, an extra 3x3 conv-BN-ReLU between
ASPP and the classifier; ``aux=True`` adds its FCN head on layer3 (torchvision's reference training weights
it 0.5).

Parameters, measured: ``deeplabv3_resnet101`` with 21 classes has 58,040,661 = torchvision ResNet-101 without
fc 42,500,160 + ASPP 15,535,104 (1x1 524,800 + three 3x3 4,719,104 each + pooling 524,800 + projection
328,192) + classifier 5,397 (``deeplabv3_resnet50``: 39,048,533 with 23,508,032 for ResNet-50); torchvision's
model (``head_conv`` and the aux head) has 42,004,074 for ResNet-50 (21 classes),
the count torchvision's documentation gives. The paper states no parameter count.

Departures: torchvision's ResNets (7x7 stem; the paper's are TF-slim ResNets whose stride sits in each block's
last unit); the ImageNet ResNet weights cannot be fetched offline (``pretrained`` takes a local torchvision
file or a segscope run); ``encoder="efficientnet_lite0"`` (ImageNet offline, not in the paper) dilates the
Lite encoder to the same output stride.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segscope.models.encoders import LITE_ENCODERS, Pretrained, create_encoder
from segscope.models.encoders.base import rename_prefixes
from segscope.models.layers.aspp import ASPP, ASPP_V3_RATES
from segscope.models.layers.deep_supervision import DeeplySupervised
from segscope.models.layers.heads import FCNHead
from segscope.models.registration import register_variant

PAPER = "Chen, Papandreou, Schroff, Adam. Rethinking Atrous Convolution for Semantic Image Segmentation. 2017"
MULTI_GRID = (1, 2, 4)
TORCHVISION_KEYS = (  # torchvision deeplabv3 key prefix -> segscope's (tested by loading both ways)
    ("backbone.", "encoder."),
    ("classifier.0.", "aspp."),
    ("classifier.1.", "head_conv.0."),
    ("classifier.2.", "head_conv.1."),
    ("classifier.4.", "classifier."),
    ("aux_classifier.", "aux_head."),
)


def lite_free_options(encoder: str, **resnet_options: Any) -> dict[str, Any]:
    """``resnet_options`` (such as ``multi_grid``) for a ResNet encoder; none for an EfficientNet-Lite one."""
    return {} if encoder in LITE_ENCODERS else resnet_options


def scaled_rates(rates: Sequence[int] | None, output_stride: int) -> tuple[int, ...]:
    """The paper's ASPP rates (6, 12, 18) at output stride 16, doubled at 8, unless ``rates`` are given."""
    if rates is not None:
        return tuple(int(r) for r in rates)
    return tuple(r * 16 // output_stride for r in ASPP_V3_RATES)


class DeepLabV3(DeeplySupervised):
    """DeepLab v3 (module docstring): ``(N, C_in, H, W) -> (N, K, H, W)`` logits.

    Parameters
    ----------
    num_classes, in_channels : int
    encoder : str
        ``"resnet50"``, ``"resnet101"`` (the paper's) or ``"efficientnet_lite0/1/2"``.
    pretrained : bool | str | Path
        Encoder weights (see :mod:`segscope.models.encoders.base`; ``"imagenet"`` for the Lite encoders).
    output_stride : {16, 8}
    rates : sequence of 3 ints, optional
        ASPP rates; default 6, 12, 18 at output stride 16 and 12, 24, 36 at 8.
    multi_grid : sequence of 3 ints or None
        Unit rates of block4 (ResNets); ``None`` gives torchvision's dilation.
    head_conv : bool
        torchvision's extra 3x3 conv-BN-ReLU before the classifier.
    aux, aux_weight :
        An FCN head on the stride-16 map (layer3), trained with weight ``aux_weight``.
    dropout : float
        Dropout after the ASPP projection (0.5, as torchvision and SMP).
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
        multi_grid: Sequence[int] | None = MULTI_GRID,
        head_conv: bool = False,
        aux: bool = False,
        aux_weight: float = 0.5,
        dropout: float = 0.5,
        channels: int = 256,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 16 or 8, got {output_stride}")
        self.encoder = create_encoder(
            encoder,
            in_channels=in_channels,
            pretrained=pretrained,
            output_stride=output_stride,
            **lite_free_options(encoder, multi_grid=multi_grid),
        )
        self.input_mean = getattr(self.encoder, "input_mean", None)
        self.input_std = getattr(self.encoder, "input_std", None)
        enc_channels = self.encoder.out_channels
        self.aspp = ASPP(enc_channels[-1], scaled_rates(rates, output_stride), channels, dropout=dropout)
        self.head_conv = (
            nn.Sequential(
                nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
            )
            if head_conv
            else None
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.aux_head = FCNHead(enc_channels[-2], num_classes) if aux else None
        self.aux_weights = (float(aux_weight),) if aux else ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        features = self.encoder(x)
        y = self.aspp(features[-1])
        if self.head_conv is not None:
            y = self.head_conv(y)
        logits = F.interpolate(self.classifier(y), size=size, mode="bilinear", align_corners=False)
        if self.training and self.aux_head is not None:
            aux = self.aux_head(features[-2])
            self.aux_logits = (F.interpolate(aux, size=size, mode="bilinear", align_corners=False),)
        return logits


def from_torchvision_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's ``deeplabv3_resnet*`` state dict in segscope's key names (:data:`TORCHVISION_KEYS`)."""
    return rename_prefixes(state, TORCHVISION_KEYS)


_OPTIONS = "options: pretrained, output_stride, rates, multi_grid, head_conv, aux, aux_weight, dropout"
register_variant(
    "deeplabv3_resnet101",
    DeepLabV3,
    paper=PAPER,
    doc=f"DeepLab v3 on a dilated ResNet-101 (the paper's); {_OPTIONS}.",
    encoder="resnet101",
)
register_variant(
    "deeplabv3_resnet50",
    DeepLabV3,
    paper=PAPER,
    doc=f"DeepLab v3 on a dilated ResNet-50; {_OPTIONS}.",
    encoder="resnet50",
)
register_variant(
    "deeplabv3_efficientnet_lite0",
    DeepLabV3,
    paper=PAPER,
    doc="DeepLab v3 on a dilated EfficientNet-Lite0 (ImageNet offline with pretrained=imagenet; not in the "
    f"paper); {_OPTIONS}.",
    encoder="efficientnet_lite0",
)
