"""FCN-ResNet as torchvision builds it: a dilated ResNet (output stride 8) with a one-layer "FCN head".

torchvision's ``fcn_resnet50`` / ``fcn_resnet101`` ("Fully-Convolutional Network model with a ResNet
backbone from the Fully Convolutional Networks for Semantic Segmentation paper", Long, Shelhamer, Darrell,
CVPR 2015) is not the paper's skip architecture (that is :mod:`segscope.models.semantic.fcn`): it keeps the
FCN idea - a classifier convolved over a backbone, bilinear up-sampling - on the dilated ResNet of the
DeepLab lineage: layer3 and layer4 dilated (output stride 8), :class:`~segscope.models.layers.heads.FCNHead`
(3x3 conv 2048 -> 512, BN, ReLU, dropout 0.1, 1x1 classifier), bilinear up-sampling x8, and optionally the
same head on layer3 as an auxiliary output (weight 0.5 in torchvision's reference training).

It is here as the baseline the context modules of DeepLab v3, PSPNet and EncNet are measured against (each
replaces this head), and as a fidelity anchor: the same modules and key names as torchvision, so
``tests/models/test_deeplab_v3.py`` loads torchvision's state dict through :func:`from_torchvision_state`
and compares outputs to 1e-5. Parameters, 21 classes: ``fcn_resnet50`` 32,957,013 = ResNet-50 without fc
23,508,032 + head 9,448,981 (3x3 2048 -> 512: 9,437,184, BN 1,024, 1x1 10,773); 35,322,218 with the aux
head, torchvision's documented count;
``fcn_resnet101`` 51,949,141.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segscope.models.encoders import Pretrained, ResNetEncoder
from segscope.models.encoders.base import rename_prefixes
from segscope.models.layers.deep_supervision import DeeplySupervised
from segscope.models.layers.heads import FCNHead
from segscope.models.registration import register_variant

PAPER = "Long, Shelhamer, Darrell. Fully Convolutional Networks for Semantic Segmentation. CVPR 2015"
TORCHVISION_KEYS = (("backbone.", "encoder."), ("classifier.", "head."), ("aux_classifier.", "aux_head."))


class DilatedFCN(DeeplySupervised):
    """``(N, C_in, H, W) -> (N, K, H, W)``: dilated ResNet ``arch``, FCN head, optional aux head on layer3."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        arch: str = "resnet50",
        pretrained: Pretrained = False,
        output_stride: int = 8,
        aux: bool = False,
        aux_weight: float = 0.5,
    ) -> None:
        super().__init__()
        self.encoder = ResNetEncoder(
            arch, in_channels=in_channels, output_stride=output_stride, pretrained=pretrained
        )
        channels = self.encoder.out_channels
        self.head = FCNHead(channels[-1], num_classes)
        self.aux_head = FCNHead(channels[-2], num_classes) if aux else None
        self.aux_weights = (float(aux_weight),) if aux else ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        features = self.encoder(x)
        logits = F.interpolate(self.head(features[-1]), size=size, mode="bilinear", align_corners=False)
        if self.training and self.aux_head is not None:
            aux = self.aux_head(features[-2])
            self.aux_logits = (F.interpolate(aux, size=size, mode="bilinear", align_corners=False),)
        return logits


def from_torchvision_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's ``fcn_resnet*`` state dict in segscope's key names (:data:`TORCHVISION_KEYS`)."""
    return rename_prefixes(state, TORCHVISION_KEYS)


for _arch in ("resnet50", "resnet101"):
    register_variant(
        f"fcn_{_arch}",
        DilatedFCN,
        paper=PAPER,
        doc=f"torchvision's FCN-{_arch[6:]}: dilated {_arch} (output stride 8) + FCN head; options: "
        "pretrained, output_stride, aux, aux_weight.",
        arch=_arch,
    )
