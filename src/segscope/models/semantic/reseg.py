"""ReSeg: VGG16 features, ReNet layers, transposed-convolution up-sampling and a 1x1 classifier.

F. Visin, M. Ciccone, A. Romero, K. Kastner, K. Cho, Y. Bengio, M. Matteucci, A. Courville, "ReSeg: A
Recurrent Neural Network-based Model for Semantic Segmentation", CVPR Workshops (DeepVision) 2016,
arXiv:1511.07053. ReNet layers: :mod:`segscope.models.layers.renet` (Visin et al., arXiv:1505.00393).

Reproduced: the architecture of the paper's Fig. 2 in its CamVid setting (section 4, the CamVid
hyperparameters; checked against the authors' released CamVid configuration, ``fvisin/reseg``
``evaluate_camvid_with_cb.py``, as the paper's text could not be re-read offline):

* the first 7 convolutions of VGG16, conv1_1 ... conv3_3 with their ReLUs and pool1/pool2 (no pool3):
  256 channels at stride 4, ImageNet-pretrained (``pretrained=True`` loads torchvision's VGG16 weights);
* 2 ReNet layers, 1x1 patches, GRUs of 100 units per direction (each layer: 4 GRUs, 200 channels out);
* 2 transposed convolutions, 50 filters each, 2x2 kernels, stride 2, each followed by ReLU (back to
  the input resolution), Glorot-uniform weights and zero biases (the authors' initialisation);
* a 1x1 convolution to the classes (softmax in the loss).

Parameter count, CamVid (11 classes): 2,544,549 = VGG16 conv1_1..conv3_3 1,735,488 + ReNet 1
396,000 + ReNet 2 362,400 + up-sampling 50,100 + classifier 561. The paper reports no count; the test
checks this hand computation from the configuration. The authors' Lasagne GRUs have one bias per
gate (PyTorch: two), i.e. 8 GRU directions x 300 = 2,400 fewer: 2,542,149 in the original.

Departures: PyTorch's GRU/LSTM (two bias vectors per gate, default initialisation; see the ReNet
module); inputs whose size is not a multiple of the total stride (4 x the patch sizes) are zero-padded
at the bottom/right to the next multiple and the logits cropped back (the authors crop a padded output
back to the input size as well); ``width < 1`` shrinks the VGG channels (not the ReNet) for CPU
experiments and cannot load ImageNet weights; the input is not converted to BGR / mean-subtracted
inside the network (normalisation is the data pipeline's). Class balancing (median frequency) is a
loss option, not part of the network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import make_layers

from segscope.models.encoders.base import (
    Pretrained,
    adapt_input_conv,
    backbone_state_dict,
    check_pretrained_width,
    load_into,
)
from segscope.models.encoders.vgg import VGG16_STAGES, scale_channels
from segscope.models.layers.renet import ReNetLayer, as_pair
from segscope.models.registration import register_model

PAPER = (
    "Visin, Ciccone, Romero, Kastner, Cho, Bengio, Matteucci, Courville. ReSeg: A Recurrent Neural "
    "Network-based Model for Semantic Segmentation. CVPR Workshops 2016"
)


class VGGConv33(nn.Module):
    """VGG16 up to conv3_3 + ReLU (7 convolutions, pool1 and pool2): stride 4, torchvision key layout.

    ``features.0`` ... ``features.15`` are torchvision ``vgg16``'s first 16 modules, so ImageNet weights
    (or a segscope run's ``encoder.*`` weights) load by name.
    """

    stride = 4

    def __init__(self, in_channels: int = 3, *, width: float = 1.0, pretrained: Pretrained = False) -> None:
        super().__init__()
        check_pretrained_width(pretrained, width)
        stages = [tuple(scale_channels(c, width) for c in stage) for stage in VGG16_STAGES[:3]]
        cfg: list[int | str] = [*stages[0], "M", *stages[1], "M", *stages[2]]
        self.features = make_layers(cfg, batch_norm=False)
        if in_channels != 3:
            self.features[0] = nn.Conv2d(in_channels, stages[0][0], 3, padding=1)
        self.in_channels = in_channels
        self.out_channels = stages[2][-1]
        state = backbone_state_dict("vgg16", pretrained)
        if state is not None:
            keys = set(self.state_dict())
            own = {k: v for k, v in state.items() if k in keys}
            if "features.0.weight" in own:
                own["features.0.weight"] = adapt_input_conv(own["features.0.weight"], in_channels)
            load_into(self, own, source=str(pretrained))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (N, 256, H / 4, W / 4)


class ReSeg(nn.Module):
    """ReSeg (Visin et al. 2016, Fig. 2): VGG16 to conv3_3, ReNet layers, transposed convolutions, 1x1.

    Parameters
    ----------
    num_classes, in_channels : int
    hidden : sequence of int
        Units of each RNN, one entry per ReNet layer (each layer outputs ``2 * hidden`` channels).
    patch_sizes : sequence of int or (int, int)
        Patch size of each ReNet layer (same length as ``hidden``).
    upsampling_filters : sequence of int
        Filters of each transposed convolution (kernel = stride, followed by ReLU).
    upsampling_strides : sequence of int or (int, int)
        Stride (= kernel size) of each transposed convolution; their product must equal the total
        stride ``4 * prod(patch_sizes)`` so the logits come back at the input resolution.
    rnn : {"gru", "lstm"}
    pretrained : bool | str | Path
        VGG16 weights for the convolutional part (see :mod:`segscope.models.encoders.base`).
    width : float
        VGG channel multiplier (1.0 = the paper).

    Shapes: ``(N, C_in, H, W) -> (N, num_classes, H, W)`` for any ``H, W`` (padded to the total stride
    inside, cropped back).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        hidden: Sequence[int] = (100, 100),
        patch_sizes: Sequence[int | Sequence[int]] = (1, 1),
        upsampling_filters: Sequence[int] = (50, 50),
        upsampling_strides: Sequence[int | Sequence[int]] = (2, 2),
        rnn: str = "gru",
        pretrained: Pretrained = False,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        patches = [as_pair(p) for p in patch_sizes]
        strides = [as_pair(s) for s in upsampling_strides]
        if len(hidden) != len(patches) or not hidden:
            raise ValueError(
                f"hidden and patch_sizes need one entry per ReNet layer, got {hidden} and {patches}"
            )
        if len(upsampling_filters) != len(strides):
            raise ValueError(
                f"upsampling_filters and upsampling_strides differ in length: {upsampling_filters}, {strides}"
            )
        self.stride = (
            VGGConv33.stride * math.prod(p[0] for p in patches),
            VGGConv33.stride * math.prod(p[1] for p in patches),
        )
        up = (math.prod(s[0] for s in strides), math.prod(s[1] for s in strides))
        if up != self.stride:
            raise ValueError(f"upsampling strides multiply to {up}, but the total stride is {self.stride}")
        self.encoder = VGGConv33(in_channels, width=width, pretrained=pretrained)
        layers: list[nn.Module] = []
        channels = self.encoder.out_channels
        for units, patch in zip(hidden, patches):
            layers.append(ReNetLayer(channels, units, patch_size=patch, rnn=rnn))
            channels = 2 * units
        self.renet = nn.Sequential(*layers)
        upsampling: list[nn.Module] = []
        for filters, stride in zip(upsampling_filters, strides):
            deconv = nn.ConvTranspose2d(channels, int(filters), stride, stride=stride)
            nn.init.xavier_uniform_(deconv.weight)
            nn.init.zeros_(deconv.bias)
            upsampling += [deconv, nn.ReLU(inplace=True)]
            channels = int(filters)
        self.upsampling = nn.Sequential(*upsampling)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        nn.init.xavier_uniform_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.stride[0], -w % self.stride[1]
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))  # bottom/right zeros up to a multiple of the total stride
        features = self.encoder(x)  # (N, 256, H/4, W/4)
        features = self.renet(features)  # (N, 2 * hidden[-1], H / stride, W / stride)
        features = self.upsampling(features)  # (N, filters[-1], H, W)
        return self.classifier(features)[..., :h, :w]  # (N, K, H, W)


@register_model("reseg_vgg16", paper=PAPER)
def reseg_vgg16(num_classes: int, in_channels: int = 3, **options) -> ReSeg:
    """ReSeg on VGG16 conv1_1..conv3_3 (Visin et al. 2016), CamVid setting by default; options: hidden,
    patch_sizes, upsampling_filters, upsampling_strides, rnn, pretrained, width."""
    return ReSeg(num_classes, in_channels, **options)
