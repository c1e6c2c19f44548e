"""ICNet: an image cascade network of three resolution branches fused by cascade feature fusion.

H. Zhao, X. Qi, X. Shen, J. Shi, J. Jia, "ICNet for Real-Time Semantic Segmentation on High-Resolution
Images", ECCV 2018 (arXiv 1704.08545).

Reproduced: the network of Fig. 2 with the cascade feature fusion (CFF) unit of Fig. 3 and the cascade
label guidance of Sec. 3.3 (loss weights 0.4 / 0.4 / 1, the authors' ``icnet_cityscapes.prototxt`` for the
layer widths). For an ``H x W`` input (resolutions relative to it):

* low branch: the 1/4-scale image through the whole backbone, conv1 .. conv5 with conv4/conv5 dilated
  (segscope's ResNet-50 encoder at ``output_stride=8``) -> 1/32, then the pyramid pooling of PSPNet as ICNet
  writes it (average pools over 1, 2, 3 and 6 bins, up-sampled and *summed* with the map, no convolutions)
  and a 1x1 conv-BN-ReLU to 256 channels;
* medium branch: the 1/2-scale image through the same weights up to conv3_1 (stem, layer1 and the first
  block of layer2) -> 1/16;
* high branch: the full image through three 3x3 stride-2 conv-BN-ReLU (32, 32, 64 channels) -> 1/8;
* CFF(low 1/32, medium 1/16) and CFF(that, high 1/8), 128 channels each: the low input up-sampled 2x
  (bilinear) -> 3x3 conv with dilation 2 + BN; the high input -> 1x1 conv + BN; sum; ReLU;
* the 1/8 result up-sampled 2x, a 1x1 classifier at 1/4 (``conv6_cls``), bilinear up-sampling to ``H x W``.

Cascade label guidance (on by default, as in the paper): each CFF also has a 1x1 classifier on its
up-sampled low input (1/16 and 1/8). ``forward`` always returns the main logits and, in training mode,
leaves the two auxiliary logits in ``model.aux_logits``; :meth:`ICNet.training_loss` (which
:class:`~segscope.models.segmenter.DeepSegmenter` uses for training when a model defines it) combines
them by :func:`cascade_loss` with the paper's weights 0.4 / 0.4 / 1.0; validation scores the main logits.
``label_guidance=False`` drops the two classifiers.

Parameters, measured (``tests/models/test_icnet.py`` checks them against a hand count): ``icnet_resnet50``
with 19 classes has 24,581,171 = torchvision ResNet-50 without fc 23,508,032 + pyramid 1x1 conv 524,800 +
CFFs 360,960 + 156,160 + high branch 28,768 + classifier 2,451. We found no parameter count in the paper;
26.5 M is the figure later comparison tables quote for ICNet on ResNet-50 (with 28.3 GFLOPs, 30.3 FPS). The
difference lies in the backbone: 95.6 % of our count is torchvision's ResNet-50, whereas ICNet's PSPNet50
has a three-conv deep stem and its released model halves every kernel count (conv5 gives 1,024 channels,
not 2,048; the released ``.caffemodel`` is 31 MB, about 7.8 M float32 values).

Departures:

* torchvision's full-width ResNet-50 (7x7 stem, ImageNet weights via ``pretrained``) instead of ICNet's
  half-width, deep-stem PSPNet50 initialised from PSPNet;
* the low branch recomputes conv1 .. conv3_1 on the 1/4 image, as the paper describes; the released
  prototxt instead shrinks the medium branch's conv3_1 map by 2 (``share_conv3_1=True`` does that);
* adaptive average pooling for the pyramid bins (Caffe: fixed kernels computed for a 1025x2049 input) and
  ``align_corners=False`` bilinear resizing (Caffe's ``Interp`` aligns corners);
* :func:`cascade_loss` scores the main logits at the input size (the paper at 1/4) and the auxiliary ones
  against nearest-down-sampled labels;
* ``icnet_resnet18``: a lighter CPU variant (not in the paper); its BasicBlocks are dilated by hand
  (layer3 by 2, layer4 by 4) so that the branch resolutions stay those of the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segscope.models.encoders.base import Pretrained
from segscope.models.encoders.resnet import ResNetEncoder
from segscope.models.layers.conv import ConvNormAct
from segscope.models.layers.deep_supervision import DeeplySupervised, deep_supervision_loss
from segscope.models.layers.pooling import adaptive_avg_pool2d
from segscope.models.registration import register_variant

PAPER = (
    "Zhao, Qi, Shen, Shi, Jia. ICNet for Real-Time Semantic Segmentation on High-Resolution Images. ECCV 2018"
)
#: Loss weights of the cascade label guidance: 1/16 output, 1/8 output, main output (Sec. 3.3).
LABEL_GUIDANCE_WEIGHTS = (0.4, 0.4, 1.0)
PYRAMID_BINS = (1, 2, 3, 6)
BOTTLENECK_ARCHS = ("resnet50", "resnet101", "resnet152")


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def _scaled_size(x: torch.Tensor, factor: int) -> tuple[int, int]:
    """``ceil(H / factor), ceil(W / factor)``: the branch input size (never zero)."""
    return -(-x.shape[-2] // factor), -(-x.shape[-1] // factor)


class CascadeFeatureFusion(nn.Module):
    """CFF unit (Fig. 3): ``low`` (C_low, h, w) and ``high`` (C_high, ~2h, ~2w) -> (out, ~2h, ~2w).

    ``num_classes`` adds the label-guidance classifier on the up-sampled ``low`` input; ``forward`` then
    also returns its logits (else ``None``).
    """

    def __init__(
        self, low_channels: int, high_channels: int, out_channels: int, num_classes: int | None = None
    ) -> None:
        super().__init__()
        self.low = ConvNormAct(low_channels, out_channels, 3, dilation=2, act=False)
        self.high = ConvNormAct(high_channels, out_channels, 1, act=False)
        self.classifier = nn.Conv2d(low_channels, num_classes, 1) if num_classes else None

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        low = _resize(low, high.shape[-2:])  # "upsample x2" to the high branch's exact size
        fused = F.relu(self.low(low) + self.high(high))
        guidance = self.classifier(low) if self.classifier is not None else None
        return fused, guidance


class PyramidSum(nn.Module):
    """ICNet's pyramid pooling: ``x + sum_b up(avgpool_b(x))`` (no convolutions), then 1x1 conv-BN-ReLU."""

    def __init__(self, in_channels: int, out_channels: int = 256, bins: Sequence[int] = PYRAMID_BINS) -> None:
        super().__init__()
        self.bins = tuple(int(b) for b in bins)
        self.project = ConvNormAct(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = x
        for b in self.bins:
            total = total + _resize(adaptive_avg_pool2d(x, b), x.shape[-2:])
        return self.project(total)


def dilate_basic_blocks(encoder: ResNetEncoder) -> None:
    """Output stride 8 for a BasicBlock ResNet (torchvision refuses to build one): layer3 and layer4 lose
    their stride and their 3x3 convolutions get dilation 2 and 4. Weights and their shapes are unchanged."""
    for layer, dilation in ((encoder.layer3, 2), (encoder.layer4, 4)):
        for block in layer:
            for conv in (block.conv1, block.conv2):
                conv.stride, conv.dilation, conv.padding = (1, 1), (dilation, dilation), (dilation, dilation)
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1)
    encoder.strides = (2, 4, 8, 8, 8)


class ICNet(DeeplySupervised):
    """ICNet over a torchvision ResNet (module docstring): ``(N, C_in, H, W) -> (N, K, H, W)`` logits.

    Parameters
    ----------
    num_classes, in_channels : int
    arch : str
        ResNet of the low and medium branches (``"resnet50"`` = the paper's; ``"resnet18"``/``"resnet34"``
        are dilated by :func:`dilate_basic_blocks`).
    pretrained : bool | str | Path
        ImageNet (or file) weights of the ResNet, see :mod:`segscope.models.encoders.base`.
    fuse_channels : int
        Width of both CFF outputs (128 in the paper).
    pyramid_channels : int
        Width after the pyramid pooling (256, ``conv5_4_k1``).
    label_guidance : bool
        Build the two guidance classifiers; training forwards then set ``aux_logits``.
    share_conv3_1 : bool
        Feed the low branch the medium branch's conv3_1 map shrunk by 2 (the released model) instead of
        running conv1 .. conv3_1 on the 1/4 image (the paper's description).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        arch: str = "resnet50",
        pretrained: Pretrained = False,
        fuse_channels: int = 128,
        pyramid_channels: int = 256,
        pyramid_bins: Sequence[int] = PYRAMID_BINS,
        label_guidance: bool = True,
        share_conv3_1: bool = False,
    ) -> None:
        super().__init__()
        dilated = arch in BOTTLENECK_ARCHS
        self.encoder = ResNetEncoder(
            arch, in_channels=in_channels, output_stride=8 if dilated else 32, pretrained=pretrained
        )
        if not dilated:
            dilate_basic_blocks(self.encoder)
        channels = self.encoder.out_channels
        self.pyramid = PyramidSum(channels[-1], pyramid_channels, pyramid_bins)
        self.high = nn.Sequential(
            ConvNormAct(in_channels, 32, 3, stride=2),
            ConvNormAct(32, 32, 3, stride=2),
            ConvNormAct(32, 64, 3, stride=2),
        )
        guidance = num_classes if label_guidance else None
        self.cff_low = CascadeFeatureFusion(pyramid_channels, channels[2], fuse_channels, guidance)
        self.cff_high = CascadeFeatureFusion(fuse_channels, 64, fuse_channels, guidance)
        self.classifier = nn.Conv2d(fuse_channels, num_classes, 1)
        self.num_classes = num_classes
        self.share_conv3_1 = share_conv3_1
        self.aux_weights = LABEL_GUIDANCE_WEIGHTS[:-1]

    def conv3_1(self, x: torch.Tensor) -> torch.Tensor:
        """The shared early layers: stem, layer1, first block of layer2 (stride 8 of ``x``)."""
        enc = self.encoder
        x = enc.maxpool(enc.relu(enc.bn1(enc.conv1(x))))
        return enc.layer2[0](enc.layer1(x))

    def low_branch(self, conv3_1: torch.Tensor) -> torch.Tensor:
        """conv3_2 .. conv5_3 (dilated) and the pyramid pooling."""
        enc = self.encoder
        return self.pyramid(enc.layer4(enc.layer3(enc.layer2[1:](conv3_1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        medium = self.conv3_1(_resize(x, _scaled_size(x, 2)))  # (N, C2, ~H/16, ~W/16)
        if self.share_conv3_1:
            low_input = _resize(medium, _scaled_size(medium, 2))
        else:
            low_input = self.conv3_1(_resize(x, _scaled_size(x, 4)))
        low = self.low_branch(low_input)  # (N, 256, ~H/32, ~W/32)
        high = self.high(x)  # (N, 64, ~H/8, ~W/8)
        fused16, aux16 = self.cff_low(low, medium)  # (N, 128, ~H/16, ~W/16)
        fused8, aux8 = self.cff_high(fused16, high)  # (N, 128, ~H/8, ~W/8)
        logits4 = self.classifier(_resize(fused8, (2 * fused8.shape[-2], 2 * fused8.shape[-1])))
        self.aux_logits = (aux16, aux8) if self.training and aux16 is not None else None
        return _resize(logits4, size)


def cascade_loss(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    logits: torch.Tensor,
    aux_logits: Sequence[torch.Tensor] | None,
    target: torch.Tensor,
    weights: Sequence[float] = LABEL_GUIDANCE_WEIGHTS,
) -> torch.Tensor:
    """The cascade label guidance loss ``0.4 L(1/16) + 0.4 L(1/8) + 1.0 L(main)`` for a custom loop.

    ``loss_fn(logits, target)`` is any segscope loss; each auxiliary output is scored against ``target``
    down-sampled (nearest) to its size, so ignored pixels stay ignored. ``aux_logits=None`` (guidance off,
    or eval mode) gives ``weights[-1] * loss_fn(logits, target)``.
    """
    return deep_supervision_loss(loss_fn, logits, aux_logits, target, weights[:-1], weights[-1])


register_variant(
    "icnet_resnet50",
    ICNet,
    paper=PAPER,
    doc="ICNet (Zhao et al. ECCV 2018) on a dilated ResNet-50; options: pretrained, label_guidance, "
    "share_conv3_1, fuse_channels, pyramid_channels, pyramid_bins.",
    arch="resnet50",
)
register_variant(
    "icnet_resnet18",
    ICNet,
    paper=PAPER,
    doc="ICNet on a hand-dilated ResNet-18: a lighter CPU variant (a departure, not in the paper); "
    "same options.",
    arch="resnet18",
)
