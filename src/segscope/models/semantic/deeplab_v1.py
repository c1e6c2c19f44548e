"""DeepLab v1 (DeepLab-LargeFOV): an atrous VGG16 at output stride 8 with a dilated fc6.

L.-C. Chen, G. Papandreou, I. Kokkinos, K. Murphy, A. L. Yuille, "Semantic image segmentation with deep
convolutional nets and fully connected CRFs", ICLR 2015 (arXiv 1412.7062).

Reproduced: DeepLab-LargeFOV (Sec. 3.1 and 4, Table 2; the released ``DeepLab-LargeFOV/train.prototxt``):

* VGG16's 13 convolutions in torchvision's ``features`` layout (:class:`AtrousVGG16`), so torchvision's
  ImageNet VGG16 loads unchanged; every max-pooling is 3x3 with padding 1 (Caffe's ceil rounding), stride 2
  for pool1-3 and stride 1 for pool4 and pool5, and conv5_1..conv5_3 are dilated by 2: output stride 8, and
  pixel ``j`` of the stride-8 map is centred on input pixel ``8 j``;
* ``pool5a``, the 3x3 stride-1 average pooling the released prototxt puts before fc6 (not in the paper's text;
  ``pool5a=False`` drops it, it has no parameters);
* fc6 as a 3x3 convolution with dilation ("input stride") 12 and 1024 channels, fc7 1x1 with 1024 channels,
  each followed by ReLU and dropout 0.5, fc8 a 1x1 convolution to the classes initialised N(0, 0.01), bias 0;
* bilinear up-sampling x8 as Caffe's ``Interp`` (``zoom_factor: 8``, i.e. aligned corners: map pixel ``j`` on
  input pixel ``8 j``, :func:`upsample_aligned`), cropped (or edge-extended) to the input size, so any input
  size, odd ones included, gives logits at that size;
* ``pretrained`` initialises fc6/fc7 from the ImageNet classifier as the paper does (Sec. 3.1): fc6's 7x7
  kernel decimated to ``fc6_kernel`` taps (rows/columns 0, 3, 6 for 3x3) and "a random subset of 1,024 out of
  the 4,096 filters" (TPAMI 2017, Sec. 4.1.1) kept in fc6 and fc7 (:func:`imagenet_fc_state`, seed 0);
* the DeepLab-CRF-7x7 row of Table 2 as options: ``fc6_kernel=7, fc6_dilation=4, fc6_channels=4096`` (fc6/fc7
  are then exactly the convolutionalised ImageNet classifier, as in FCN).

Table 2's "receptive field" is fc6's field of view ``8 (k - 1) r + 32`` pixels: 224 for both 3x3 rate 12
(LargeFOV) and 7x7 rate 4 (128 for 4x4 rate 4); the whole network's theoretical receptive field is 435 pixels
(419 without ``pool5a``). Both are tested in ``tests/models/test_deeplab_v1_v2.py``.

Parameter count, 21 classes (tested exactly): LargeFOV 20,505,429 = VGG16 convs 14,714,688 + fc6 4,719,616 +
fc7 1,049,600 + fc8 21,525 (Table 2: 20.5M); DeepLab-CRF-7x7 134,346,581 = 14,714,688 + fc6 102,764,544 + fc7
16,781,312 + fc8 86,037 (Table 2: 134.3M).

Paper figures (PASCAL VOC 2012 val, mean IoU): DeepLab-LargeFOV 62.25, 67.64 after the CRF (DeepLab-CRF-7x7:
64.38 / 67.64; test 70.3 with the CRF). Not measured here (no VOC, no ImageNet weights offline).

Departures:

* the fully connected CRF is not part of the network: it is segscope's separate ``crf`` post-processing stage
  (``-o crf=true``), the paper's mean-field dense CRF;
* the paper's fc6/fc7 initialisation came from the authors' own decimated ``vgg16_20M.caffemodel``; the random
  1,024-filter subset here is a fixed (seeded) one, not theirs; without ``pretrained`` fc6/fc7 use PyTorch's
  default initialisation;
* ``width < 1`` shrinks every channel count (VGG stages, fc6/fc7) for CPU experiments; such variants cannot
  load ImageNet weights (a local file of matching shapes still loads).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segscope.errors import UserError
from segscope.models.encoders.base import Pretrained, backbone_state_dict, check_pretrained_width, load_into
from segscope.models.encoders.vgg import VGGEncoder, scale_channels
from segscope.models.layers.unpool import PoolSwitches
from segscope.models.registration import register_model

PAPER = (
    "Chen, Papandreou, Kokkinos, Murphy, Yuille. Semantic Image Segmentation with Deep Convolutional Nets "
    "and Fully Connected CRFs. ICLR 2015"
)
#: Stride of each of the five 3x3 max-poolings of the atrous VGG16 (output stride 8).
POOL_STRIDES = (2, 2, 2, 1, 1)
CONV5_DILATION = 2
#: Caffe VGG16 fc6 kernel size (the classifier's 25088 = 512 x 7 x 7 inputs).
VGG_FC6_KERNEL = 7
FC_SUBSET_SEED = 0


class AtrousVGG16(VGGEncoder):
    """VGG16 with DeepLab's atrous changes; returns pool1..pool5 (strides 2, 4, 8, 8, 8).

    The state-dict keys and shapes are :class:`VGGEncoder`'s (torchvision's ``features.*``), so the same
    weights load; only the pooling (3x3, padding 1, ceil mode; strides :data:`POOL_STRIDES`) and conv5's
    dilation differ. ``in_channels``, ``width`` and ``pretrained`` as :class:`VGGEncoder`.
    """

    def __init__(self, *, in_channels: int = 3, width: float = 1.0, pretrained: Pretrained = False) -> None:
        super().__init__(in_channels=in_channels, width=width, pretrained=pretrained)
        pools = [i for i, layer in enumerate(self.features) if isinstance(layer, nn.MaxPool2d)]
        for index, stride in zip(pools, POOL_STRIDES):
            self.features[index] = nn.MaxPool2d(3, stride=stride, padding=1, ceil_mode=True)
        for layer in self.features[pools[3] + 1 : pools[4]]:  # conv5_1 .. conv5_3
            if isinstance(layer, nn.Conv2d):
                layer.dilation, layer.padding = (CONV5_DILATION,) * 2, (CONV5_DILATION,) * 2
        self.strides = (2, 4, 8, 8, 8)

    def forward_with_switches(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[PoolSwitches]]:
        raise TypeError("the atrous VGG16 pools 3x3 with stride 1 at pool4/pool5: no unpooling switches")


def upsample_aligned(x: torch.Tensor, stride: int, size: Sequence[int]) -> torch.Tensor:
    """Bilinear up-sampling by ``stride`` with map pixel ``j`` on output pixel ``stride * j`` (Caffe's
    ``Interp`` with ``zoom_factor``: ``(h - 1) * stride + 1`` rows, aligned corners), then cropped to ``size``
    or, where the map falls short of it, extended by its edge values. ``(N, K, h, w) -> (N, K, *size)``."""
    h, w = x.shape[-2:]
    out_h, out_w = int(size[0]), int(size[1])
    x = F.interpolate(
        x, size=((h - 1) * stride + 1, (w - 1) * stride + 1), mode="bilinear", align_corners=True
    )
    x = x[..., :out_h, :out_w]
    pad_h, pad_w = out_h - x.shape[-2], out_w - x.shape[-1]
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


def fc6_padding(kernel: int, dilation: int) -> int | str:
    """Padding keeping fc6's output at its input's size (``"same"`` for an even kernel)."""
    return dilation * (kernel - 1) // 2 if kernel % 2 else "same"


def atrous_fully_connected(
    in_channels: int,
    channels: int,
    *,
    kernel: int = 3,
    dilation: int = 12,
    dropout: float = 0.5,
    pool5a: bool = True,
) -> nn.Sequential:
    """``[pool5a] -> fc6 (k x k, dilation r) -> ReLU -> dropout -> fc7 (1x1) -> ReLU -> dropout``."""
    if kernel < 1 or dilation < 1:
        raise ValueError(f"fc6_kernel and fc6_dilation must be positive, got {kernel} and {dilation}")
    layers: list[tuple[str, nn.Module]] = []
    if pool5a:
        layers.append(("pool5a", nn.AvgPool2d(3, stride=1, padding=1)))
    layers += [
        (
            "fc6",
            nn.Conv2d(
                in_channels, channels, kernel, padding=fc6_padding(kernel, dilation), dilation=dilation
            ),
        ),
        ("relu6", nn.ReLU(inplace=True)),
        ("drop6", nn.Dropout(dropout)),
        ("fc7", nn.Conv2d(channels, channels, 1)),
        ("relu7", nn.ReLU(inplace=True)),
        ("drop7", nn.Dropout(dropout)),
    ]
    return nn.Sequential(OrderedDict(layers))


def imagenet_fc_state(
    state: dict[str, torch.Tensor], *, kernel: int, channels: int, seed: int = FC_SUBSET_SEED
) -> dict[str, torch.Tensor]:
    """fc6/fc7 weights (keys ``fc6.*``, ``fc7.*``) from a torchvision VGG16 classifier, as DeepLab initialises
    them: fc6's 7x7 kernel decimated to ``kernel`` evenly spaced taps per axis and, when ``channels`` is below
    the classifier's 4096, a random (seeded) subset of the filters kept in fc6 and, on both sides, in fc7."""
    w6, b6 = state["classifier.0.weight"], state["classifier.0.bias"]
    w7, b7 = state["classifier.3.weight"], state["classifier.3.bias"]
    source = w6.shape[0]
    if kernel > VGG_FC6_KERNEL:
        raise ValueError(f"fc6_kernel {kernel} exceeds the 7x7 ImageNet fc6 it is initialised from")
    if channels > source:
        raise UserError(f"fc6_channels={channels} exceeds the {source} filters of the pretrained classifier")
    w6 = w6.reshape(source, -1, VGG_FC6_KERNEL, VGG_FC6_KERNEL)
    taps = torch.linspace(0, VGG_FC6_KERNEL - 1, kernel).round().long() if kernel > 1 else torch.tensor([3])
    w6 = w6[:, :, taps][:, :, :, taps]
    if channels < source:
        generator = torch.Generator().manual_seed(seed)
        keep = torch.randperm(source, generator=generator)[:channels].sort().values
    else:
        keep = torch.arange(source)
    return {
        "fc6.weight": w6[keep].contiguous(),
        "fc6.bias": b6[keep],
        "fc7.weight": w7[keep][:, keep, None, None].contiguous(),
        "fc7.bias": b7[keep],
    }


def init_classifier(conv: nn.Conv2d) -> None:
    """DeepLab's classifier filler: weights N(0, 0.01), bias 0 (``fc8`` of the prototxt)."""
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.zeros_(conv.bias)


class DeepLabV1(nn.Module):
    """DeepLab v1 on the atrous VGG16 (module docstring): ``(N, C_in, H, W) -> (N, K, H, W)`` logits.

    Parameters
    ----------
    num_classes, in_channels : int
    pretrained : bool | str | Path
        torchvision VGG16 weights (see :mod:`segscope.models.encoders.base`): ``features.*`` load into the
        encoder and, when present, the classifier initialises fc6/fc7 (:func:`imagenet_fc_state`).
    width : float
        Channel multiplier (1.0 = the paper's network).
    fc6_kernel, fc6_dilation, fc6_channels : int
        3, 12, 1024 = DeepLab-LargeFOV; 7, 4, 4096 = DeepLab-CRF-7x7 (Table 2). ``fc6_channels`` is also
        fc7's.
    dropout : float
        Dropout after fc6 and fc7 (0.5).
    pool5a : bool
        The released prototxt's 3x3 average pooling before fc6.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        pretrained: Pretrained = False,
        width: float = 1.0,
        fc6_kernel: int = 3,
        fc6_dilation: int = 12,
        fc6_channels: int = 1024,
        dropout: float = 0.5,
        pool5a: bool = True,
    ) -> None:
        super().__init__()
        check_pretrained_width(pretrained, width)
        self.encoder = AtrousVGG16(in_channels=in_channels, width=width)
        channels = scale_channels(fc6_channels, width)
        self.fully_connected = atrous_fully_connected(
            self.encoder.out_channels[-1],
            channels,
            kernel=fc6_kernel,
            dilation=fc6_dilation,
            dropout=dropout,
            pool5a=pool5a,
        )
        self.fc8 = nn.Conv2d(channels, num_classes, 1)
        init_classifier(self.fc8)
        self.num_classes = num_classes
        state = backbone_state_dict("vgg16", pretrained)
        if state is not None:
            self.encoder.load_torchvision_state(state, source=str(pretrained))
            if "classifier.0.weight" in state:
                fc_state = imagenet_fc_state(state, kernel=fc6_kernel, channels=channels)
                load_into(self.fully_connected, fc_state, source=str(pretrained))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pool5 = self.encoder(x)[-1]  # (N, 512, ~H/8, ~W/8)
        logits = self.fc8(self.fully_connected(pool5))  # (N, K, ~H/8, ~W/8)
        return upsample_aligned(logits, self.encoder.strides[-1], size)  # (N, K, H, W)


@register_model("deeplabv1_vgg16", paper=PAPER)
def deeplabv1_vgg16(num_classes: int, in_channels: int = 3, **options) -> DeepLabV1:
    """DeepLab-LargeFOV (Chen et al. ICLR 2015) on the atrous VGG16; options: pretrained, width, fc6_kernel,
    fc6_dilation, fc6_channels (7, 4, 4096 = DeepLab-CRF-7x7), dropout, pool5a. The dense CRF is the ``crf``
    stage."""
    return DeepLabV1(num_classes, in_channels, **options)
