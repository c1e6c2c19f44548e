"""ParseNet: global context by global average pooling, L2 normalisation and unpooling.

W. Liu, A. Rabinovich, A. C. Berg, "ParseNet: Looking Wider to See Better", arXiv 1506.04579 (ICLR 2016
workshop); code in the authors' Caffe branch ``weiliu89/caffe@fcn``.

Reproduced (Fig. 1e, Sec. 3), the PASCAL VOC network: the authors' released VOC model is "finetuned from the
fully convolutional reduced VGGNet" (``VGG_ILSVRC_16_layers_fc_reduced``, the DeepLab-LargeFOV body; the
model-zoo note of the released ``VGG_VOC2012ext.caffemodel``), so for an ``H x W`` input:

* the DeepLab-LargeFOV body, imported from :mod:`segscope.models.semantic.deeplab_v1`: VGG16's 13
  convolutions (torchvision layout, ImageNet weights via ``pretrained``) in its ``AtrousVGG16`` (3x3 max
  pools, stride 1 at pool4/pool5, conv5 dilated by 2, output stride 8), fc6 a 3x3 convolution with dilation
  12 and 1024 channels, fc7 1x1 with 1024, each with ReLU and dropout 0.5; with ``pretrained`` fc6/fc7 are
  reduced from the ImageNet classifier as DeepLab does (7x7 taps 0, 3, 6; a seeded 1,024-filter subset);
* the ParseNet context module on fc7 (:class:`GlobalContext`): (1) global average pooling of the map to a
  1024-vector, (2) L2 normalisation of that vector and of the local map (per pixel, across channels), each
  with its own learned per-channel scale (:class:`~segscope.models.layers.l2norm.L2Norm`, initialised to 10:
  the paper finds unit norm "can hardly train", while "10 or 20" learns well), (3) "unpooling" (the vector
  replicated over the map) and concatenation with the local features: 2048 channels;
* a 1x1 classifier (DeepLab's N(0, 0.01) filler) and bilinear up-sampling x8 to ``H x W`` (DeepLab v1's
  aligned-corner ``Interp``, :func:`~segscope.models.semantic.deeplab_v1.upsample_aligned`).

``context=False`` gives the baseline: the same network with the classifier on fc7 itself (no pooling, no
normalisation), i.e. DeepLab-LargeFOV without CRF and without ``pool5a`` (the same count as
``deeplabv1_vgg16``).

The paper's numbers (mean IoU, PASCAL VOC 2012): ParseNet 69.8 on the test set (the figure benchmark
listings give for the paper) and 69.55 on val (the authors' model-zoo note for the released model). We did
not find the baseline's VOC row in the sources available to us, so no baseline figure is quoted here.

Parameters, hand-counted in ``tests/models/test_pspnet_parsenet.py`` (21 classes): ``parsenet_vgg16``
20,528,981 = VGG16 convolutions 14,714,688 + fc6 4,719,616 + fc7 1,049,600 + two L2 scales 2,048 +
classifier 43,029 (2048 x 21 + 21); ``context=False`` 20,505,429 (classifier 1024 x 21 + 21): the context
costs ``2 C + C K`` = 2,048 + 21,504 parameters.

Departures:

* the reduced fc6/fc7 initialisation is DeepLab's recipe with a seeded random filter subset, not the
  authors' released ``VGG_ILSVRC_16_layers_fc_reduced`` weights; the released DeepLab prototxt's ``pool5a``
  (3x3 average pooling before fc6) is off by default (``pool5a=True`` adds it, no parameters);
* the context module is applied to fc7 after its dropout; the SiftFlow / PASCAL-Context variants of the
  paper (FCN-32s with 4096-channel fc6/fc7 and early fusion of normalised conv4/conv5 features) are not
  built;
* ``width < 1`` shrinks every VGG channel and fc6/fc7 for CPU experiments; such variants cannot load the
  ImageNet weights (a local file of matching shapes still loads).
"""

from __future__ import annotations

import torch
from torch import nn

from segscope.models.encoders.base import Pretrained, backbone_state_dict, check_pretrained_width, load_into
from segscope.models.encoders.vgg import scale_channels
from segscope.models.layers.l2norm import L2Norm
from segscope.models.registration import register_model
from segscope.models.semantic.deeplab_v1 import (
    AtrousVGG16,
    atrous_fully_connected,
    imagenet_fc_state,
    init_classifier,
    upsample_aligned,
)

PAPER = "Liu, Rabinovich, Berg. ParseNet: Looking Wider to See Better. arXiv 1506.04579 (ICLR 2016 workshop)"
FC_CHANNELS = 1024  # the reduced fc6/fc7 of DeepLab-LargeFOV
FC6_DILATION = 12
NORM_SCALE = 10.0


class GlobalContext(nn.Module):
    """ParseNet's context module: ``(N, C, h, w) -> (N, 2C, h, w)`` = ``[L2Norm(x), unpool(L2Norm(gap(x)))]``.

    Both L2 normalisations have their own learned per-channel scale, initialised to ``scale``.
    """

    def __init__(self, channels: int, scale: float = NORM_SCALE) -> None:
        super().__init__()
        self.local_norm = L2Norm(channels, scale)
        self.global_norm = L2Norm(channels, scale)
        self.out_channels = 2 * channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.global_norm(x.mean(dim=(-2, -1), keepdim=True))  # (N, C, 1, 1)
        return torch.cat([self.local_norm(x), pooled.expand_as(x)], dim=1)


class ParseNet(nn.Module):
    """ParseNet on the atrous VGG16 (module docstring): ``(N, C_in, H, W) -> (N, K, H, W)`` logits.

    Parameters
    ----------
    num_classes, in_channels : int
    pretrained : bool | str | Path
        torchvision VGG16 weights (ImageNet, a weights name or a file): convolutions, and fc6/fc7 reduced
        as DeepLab does (:func:`~segscope.models.semantic.deeplab_v1.imagenet_fc_state`).
    width : float
        Channel multiplier of VGG16 and fc6/fc7 (1.0 = the paper's network).
    context : bool
        The global context module (ParseNet); ``False`` = the baseline.
    scale : float
        Initial value of the L2 normalisation scales (10).
    pool5a : bool
        DeepLab's released 3x3 average pooling before fc6 (off: not part of ParseNet's description).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        pretrained: Pretrained = False,
        width: float = 1.0,
        context: bool = True,
        scale: float = NORM_SCALE,
        pool5a: bool = False,
    ) -> None:
        super().__init__()
        check_pretrained_width(pretrained, width)
        self.encoder = AtrousVGG16(in_channels=in_channels, width=width)
        fc_channels = scale_channels(FC_CHANNELS, width)
        self.fully_connected = atrous_fully_connected(
            self.encoder.out_channels[-1], fc_channels, kernel=3, dilation=FC6_DILATION, pool5a=pool5a
        )
        self.context = GlobalContext(fc_channels, scale) if context else None
        self.classifier = nn.Conv2d(2 * fc_channels if context else fc_channels, num_classes, 1)
        init_classifier(self.classifier)
        self.num_classes = num_classes
        state = backbone_state_dict("vgg16", pretrained)
        if state is not None:
            self.encoder.load_torchvision_state(state, source=str(pretrained))
            if "classifier.0.weight" in state:  # a torchvision VGG16 (a segscope run holds encoder.* only)
                fc_state = imagenet_fc_state(state, kernel=3, channels=fc_channels)
                load_into(self.fully_connected, fc_state, source=str(pretrained))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        features = self.fully_connected(self.encoder(x)[-1])  # fc7: (N, 1024, ~H/8, ~W/8)
        if self.context is not None:
            features = self.context(features)  # (N, 2048, ~H/8, ~W/8)
        logits = self.classifier(features)  # (N, K, ~H/8, ~W/8)
        return upsample_aligned(logits, self.encoder.strides[-1], size)  # (N, K, H, W)


def _build(num_classes: int = 2, in_channels: int = 3, **options) -> ParseNet:
    return ParseNet(num_classes, in_channels, **options)


_build.__name__ = "parsenet_vgg16"
_build.__doc__ = (
    "ParseNet (Liu et al. 2015): global-average-pooled, L2-normalised context on fc7 of the atrous VGG16 "
    "(DeepLab-LargeFOV body); options: pretrained, width, context (False = baseline), scale, pool5a."
)
register_model("parsenet_vgg16", paper=PAPER)(_build)
