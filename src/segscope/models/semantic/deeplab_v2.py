"""DeepLab v2: atrous spatial pyramid pooling (ASPP-L) on an atrous ResNet-101 or VGG16.

L.-C. Chen, G. Papandreou, I. Kokkinos, K. Murphy, A. L. Yuille, "DeepLab: Semantic Image Segmentation with
Deep Convolutional Nets, Atrous Convolution, and Fully Connected CRFs", TPAMI 40(4), 2017 (arXiv 1606.00915).

Reproduced (Sec. 3.1-3.2, Fig. 7, Tables 3 and 4):

* ASPP-L: four parallel branches with atrous rates 6, 12, 18, 24 on the stride-8 map, each ending in class
  logits, the four logits *summed* (:class:`~segscope.models.layers.aspp.ASPPv2`);
* ResNet-101 (``deeplabv2_resnet101``): segscope's torchvision ResNet at output stride 8 (layer3 and layer4
  dilated instead of strided); each branch a single 3x3 convolution 2048 -> classes at its rate, as the
  released ``fc1_voc12_c0..c3``, initialised N(0, 0.01), bias 0;
* VGG16 (``deeplabv2_vgg16``): the atrous VGG16 of DeepLab v1 up to pool5
  (:class:`~segscope.models.semantic.deeplab_v1.AtrousVGG16`: 3x3 poolings, pool4/pool5 stride 1, conv5
  dilated by 2), each branch LargeFOV's head at its rate: fc6 3x3 (1024) -> ReLU -> dropout -> fc7 1x1
  (1024) -> ReLU -> dropout -> fc8 1x1 (classes); ``pretrained`` initialises every branch's fc6/fc7 from the
  same decimated ImageNet classifier (:func:`~segscope.models.semantic.deeplab_v1.imagenet_fc_state`);
* bilinear up-sampling x8 with the map's pixel ``j`` on input pixel ``8 j`` (Caffe's ``Interp``,
  :func:`~segscope.models.semantic.deeplab_v1.upsample_aligned`), to the input size (any size).

Parameter counts, 21 classes (tested exactly): ``deeplabv2_resnet101`` 44,048,532 = torchvision ResNet-101
without fc 42,500,160 + ASPP-L 1,548,372 (4 x (3 x 3 x 2048 x 21 + 21)); ``deeplabv2_resnet50`` 25,056,404 =
23,508,032 + 1,548,372; ``deeplabv2_vgg16`` 37,877,652 = VGG16 convs 14,714,688 + 4 branches x 5,790,741 (fc6
4,719,616 + fc7 1,049,600 + fc8 21,525). The paper states no parameter count for these models.

Paper figures (PASCAL VOC 2012 val, mean IoU): ResNet-101 with ASPP-L 76.35, 77.69 after the CRF (Table 4; the
bare atrous ResNet-101 without MSC, COCO or augmentation: 68.72); VGG16 ASPP-L 68.96 / 71.57 after the CRF
(Table 3; LargeFOV 65.76 / 69.84); test 79.7 (ResNet-101, Table 5). Not measured here (no VOC, no ImageNet
weights offline).

Departures:

* Table 4's 76.35 / 77.69 use three additions not reproduced by the network: multi-scale inputs (the image at
  scales 1, 0.75 and 0.5 through shared weights, score maps fused by a per-pixel maximum, "MSC", +2.55),
  MS-COCO pre-training (+2.01) and random-rescaling augmentation (0.5 to 1.5; segscope's ``augment`` settings,
  not the model); the models here are Table 4's single-scale ImageNet-initialised network plus ASPP-L;
* the dense CRF is segscope's separate ``crf`` post-processing stage (``-o crf=true``);
* torchvision's ResNet-101 instead of the released Caffe (MSRA) ResNet-101: same layer shapes and parameter
  count, but the stride sits in the 3x3 (not the first 1x1) convolution of a down-sampling block, the dilation
  follows torchvision (the first block of a dilated stage keeps the previous rate; the release dilates all of
  res4 by 2 and all of res5 by 4), and BatchNorm trains as usual, where the release keeps the ImageNet
  statistics and affine parameters frozen (``use_global_stats``, ``lr_mult: 0``);
* ``deeplabv2_resnet50``: a lighter variant on ResNet-50 (not in the paper), the same head;
* ``output_stride=16`` (ResNet) is offered for CPU experiments (the paper uses 8); ``width < 1`` (VGG) shrinks
  every channel count and cannot load ImageNet weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from segscope.models.encoders.base import Pretrained, backbone_state_dict, check_pretrained_width, load_into
from segscope.models.encoders.resnet import ResNetEncoder
from segscope.models.encoders.vgg import scale_channels
from segscope.models.layers.aspp import ASPP_V2_RATES, ASPPv2
from segscope.models.registration import register_model, register_variant
from segscope.models.semantic.deeplab_v1 import (
    AtrousVGG16,
    imagenet_fc_state,
    init_classifier,
    upsample_aligned,
)

PAPER = (
    "Chen, Papandreou, Kokkinos, Murphy, Yuille. DeepLab: Semantic Image Segmentation with Deep "
    "Convolutional Nets, Atrous Convolution, and Fully Connected CRFs. TPAMI 2017"
)
VGG_HEAD_CHANNELS = 1024
#: Indices of fc6, fc7 and fc8 inside an ``ASPPv2`` branch with ``head_channels`` (conv, ReLU, dropout, ...).
BRANCH_FC6, BRANCH_FC7, BRANCH_FC8 = 0, 3, 6


class DeepLabV2(nn.Module):
    """ASPP-L logits on the last map of an output-stride-8 encoder: ``(N, C_in, H, W) -> (N, K, H, W)``.

    ``encoder`` is a :class:`ResNetEncoder` or :class:`AtrousVGG16`; ``aspp`` an :class:`ASPPv2` on its last
    map. The classifiers (each branch's last convolution) are initialised N(0, 0.01), bias 0.
    """

    def __init__(self, encoder: nn.Module, aspp: ASPPv2, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.aspp = aspp
        self.num_classes = num_classes
        for branch in aspp.branches:
            init_classifier(branch if isinstance(branch, nn.Conv2d) else branch[BRANCH_FC8])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        logits = self.aspp(self.encoder(x)[-1])  # (N, K, ~H/8, ~W/8), the sum of the four branches
        return upsample_aligned(logits, self.encoder.strides[-1], size)  # (N, K, H, W)


def deeplabv2_resnet(
    num_classes: int,
    in_channels: int = 3,
    *,
    arch: str = "resnet101",
    pretrained: Pretrained = False,
    output_stride: int = 8,
    rates: Sequence[int] = ASPP_V2_RATES,
) -> DeepLabV2:
    """DeepLab v2 ASPP on a dilated torchvision ResNet (one 3x3 conv to the classes per rate)."""
    if output_stride not in (8, 16):
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
    encoder = ResNetEncoder(arch, in_channels=in_channels, output_stride=output_stride, pretrained=pretrained)
    return DeepLabV2(encoder, ASPPv2(encoder.out_channels[-1], num_classes, rates), num_classes)


def deeplabv2_vgg16(
    num_classes: int,
    in_channels: int = 3,
    *,
    pretrained: Pretrained = False,
    width: float = 1.0,
    rates: Sequence[int] = ASPP_V2_RATES,
    head_channels: int = VGG_HEAD_CHANNELS,
    dropout: float = 0.5,
) -> DeepLabV2:
    """DeepLab v2 ASPP on the atrous VGG16 (fc6 3x3 rate r -> fc7 -> fc8 per rate); ``pretrained`` loads the
    ImageNet convolutions and, when the file has the classifier, every branch's fc6/fc7 (decimated)."""
    check_pretrained_width(pretrained, width)
    encoder = AtrousVGG16(in_channels=in_channels, width=width)
    channels = scale_channels(head_channels, width)
    aspp = ASPPv2(encoder.out_channels[-1], num_classes, rates, head_channels=channels, dropout=dropout)
    state = backbone_state_dict("vgg16", pretrained)
    if state is not None:
        encoder.load_torchvision_state(state, source=str(pretrained))
        if "classifier.0.weight" in state:
            fc = imagenet_fc_state(state, kernel=3, channels=channels)
            for branch in aspp.branches:
                branch_state = {
                    f"{index}.{kind}": fc[f"{name}.{kind}"]
                    for index, name in ((BRANCH_FC6, "fc6"), (BRANCH_FC7, "fc7"))
                    for kind in ("weight", "bias")
                }
                branch_state |= {f"{BRANCH_FC8}.{k}": v for k, v in branch[BRANCH_FC8].state_dict().items()}
                load_into(branch, branch_state, source=str(pretrained))
    return DeepLabV2(encoder, aspp, num_classes)


register_variant(
    "deeplabv2_resnet101",
    deeplabv2_resnet,
    paper=PAPER,
    doc="DeepLab v2 ASPP-L (Chen et al. TPAMI 2017) on a ResNet-101 at output stride 8; options: pretrained, "
    "output_stride, rates. The dense CRF is the crf stage.",
    arch="resnet101",
)
register_variant(
    "deeplabv2_resnet50",
    deeplabv2_resnet,
    paper=PAPER,
    doc="DeepLab v2 ASPP-L on a ResNet-50: a lighter variant (a departure, not in the paper); same options.",
    arch="resnet50",
)


@register_model("deeplabv2_vgg16", paper=PAPER)
def _vgg16_builder(num_classes: int, in_channels: int = 3, **options) -> DeepLabV2:
    """DeepLab v2 ASPP-L (Chen et al. TPAMI 2017) on the atrous VGG16 of DeepLab v1; options: pretrained,
    width, rates, head_channels, dropout. The dense CRF is the crf stage."""
    return deeplabv2_vgg16(num_classes, in_channels, **options)
