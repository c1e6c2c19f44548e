"""FCN-32s, FCN-16s and FCN-8s: fully convolutional networks with skip fusion.

J. Long, E. Shelhamer, T. Darrell, "Fully convolutional networks for semantic segmentation",
CVPR 2015; extended in E. Shelhamer, J. Long, T. Darrell, TPAMI 39(4), 2017.

Reproduced: the VGG16 networks of Fig. 3 / Table 1 (the authors' ``voc-fcn{32,16,8}s/net.py``):

* VGG16's 13 convolutions, with conv1_1 padded by 100 and Caffe's ceil-mode pooling;
* fc6 and fc7 "convolutionalised" as 7x7 (no padding) and 1x1 convolutions, ReLU + dropout 0.5, and
  loaded from the ImageNet classifier's weights (``classifier.0``/``classifier.3`` reshaped);
* ``score_fr`` (1x1 on fc7) and the skip scores ``score_pool4``/``score_pool3`` (1x1 on pool4/pool3),
  zero-initialised (Caffe's default filler, section 4.1: "we initialize ... to zero");
* 2x up-sampling by 4x4 transposed convolutions (stride 2, no bias) initialised to bilinear, fused by
  summation with the cropped skip scores, then a final 32x/16x/8x transposed convolution (kernel 64/32/16);
* the crop logic: offsets 5 (pool4 score), 9 (pool3 score) and 19/27/31 (final) realign every map
  with the input for *any* input size; they follow from each layer's centre mapping
  ``x_in = stride * x + offset`` (pool5 of the padded VGG sits at ``32 x - 83.5``, fc6 at ``32 x + 12.5``,
  upscore2 at ``16 x - 11.5`` = pool4's ``16 (x + 5) - 91.5``, and so on).

Parameter count, FCN-8s VGG16, 21 classes: 134,489,759 = VGG16 convs 14,714,688 + fc6 102,764,544 +
fc7 16,781,312 + three score layers 102,207 + up-sampling weights 127,008 (all counted; "134M" in
Table 1, ~538 MB of float32 - the 539 MB quoted for FCN in SegNet's Table 6). Tested exactly.

Departures (each documented where it is chosen):

* all up-sampling layers are learnable by default; the reference code fixes them to bilinear
  (``lr_mult: 0``) and the CVPR paper fixes only the last one: ``freeze_upsampling=True`` fixes them all;
* ``placement="same"`` is a modern equivalent of the Caffe crops (conv1_1 padding 1, fc6 padding 3,
  transposed convolutions padded by ``factor // 2``, input zero-padded to a multiple of 32 and the
  output cropped back): identical parameter count and geometry up to the border handling, and
  cheaper because it does not pad by 100 (2.5x at 360x480). The ResNet variants always use it;
* ResNet variants (torchvision resnet18/34/50): the same score/skip heads on layer4 (as fc7, there is no
  fc6/fc7), layer3 (stride 16) and layer2 (stride 8) - the paper has no ResNet FCN;
* ``width < 1`` shrinks every VGG channel count and fc6/fc7 (4096) for CPU experiments; such variants
  cannot load ImageNet weights.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segscope.models.encoders import Encoder, Pretrained, ResNetEncoder, VGGEncoder, backbone_state_dict
from segscope.models.encoders.base import check_pretrained_width, load_into
from segscope.models.encoders.vgg import scale_channels
from segscope.models.registration import register_model
from segscope.ops.upsampling import bilinear_transposed_conv

PAPER = "Long, Shelhamer, Darrell. Fully Convolutional Networks for Semantic Segmentation. CVPR 2015"
#: Caffe crop offsets of the skip scores (pool4, pool3) and of the final output, per output stride.
CAFFE_SKIP_OFFSETS = {16: 5, 8: 9}
CAFFE_FINAL_OFFSETS = {32: 19, 16: 27, 8: 31}
CAFFE_INPUT_PADDING = 100


def pad_to_multiple(x: torch.Tensor, multiple: int, *, minimum: int = 0) -> torch.Tensor:
    """Zero-pad the bottom/right of ``x`` (N, C, H, W) to a multiple of ``multiple`` (and >= ``minimum``)."""
    h, w = x.shape[-2:]
    target_h = max(-(-h // multiple) * multiple, minimum)
    target_w = max(-(-w // multiple) * multiple, minimum)
    if (target_h, target_w) == (h, w):
        return x
    return F.pad(x, (0, target_w - w, 0, target_h - h))


def crop(x: torch.Tensor, offset: int, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Caffe's ``Crop``: ``x[..., offset:offset + h, offset:offset + w]``, refusing if ``x`` is too small."""
    h, w = int(size[0]), int(size[1])
    if x.shape[-2] < offset + h or x.shape[-1] < offset + w:
        raise ValueError(f"cannot crop {(h, w)} at offset {offset} from a {tuple(x.shape[-2:])} map")
    return x[..., offset : offset + h, offset : offset + w]


def vgg_fully_connected(in_channels: int, channels: int, *, padding: int) -> nn.Sequential:
    """fc6 (7x7) and fc7 (1x1) as convolutions, each followed by ReLU and dropout 0.5."""
    return nn.Sequential(
        OrderedDict(
            fc6=nn.Conv2d(in_channels, channels, 7, padding=padding),
            relu6=nn.ReLU(inplace=True),
            drop6=nn.Dropout(0.5),
            fc7=nn.Conv2d(channels, channels, 1),
            relu7=nn.ReLU(inplace=True),
            drop7=nn.Dropout(0.5),
        )
    )


class FCN(nn.Module):
    """FCN with skip fusion over any :class:`Encoder` whose strides include 8, 16 and 32.

    Parameters
    ----------
    encoder : Encoder
        Returns maps whose last has stride 32; the stride-16/8 maps feed the skips.
    num_classes : int
    output_stride : {32, 16, 8}
        FCN-32s (no skip), FCN-16s (pool4 skip) or FCN-8s (pool4 + pool3 skips).
    fully_connected : nn.Module or None
        fc6/fc7 applied to the last map (VGG); ``None`` scores the last map directly (ResNet).
    score_channels : int
        Channels entering ``score_fr``.
    placement : {"caffe", "same"}
        Caffe crops (the encoder must pad conv1_1 by 100) or padded "same" geometry (see module doc).
    zero_init_scores : bool
        Zero-initialise ``score_fr`` and the skip scores, as the paper.
    freeze_upsampling : bool
        Fix every transposed convolution to bilinear interpolation, as the reference code.

    Shapes: ``(N, C_in, H, W) -> (N, num_classes, H, W)``.
    """

    def __init__(
        self,
        encoder: Encoder,
        num_classes: int,
        *,
        output_stride: int = 8,
        fully_connected: nn.Module | None = None,
        score_channels: int,
        placement: str = "caffe",
        zero_init_scores: bool = True,
        freeze_upsampling: bool = False,
    ) -> None:
        super().__init__()
        if output_stride not in CAFFE_FINAL_OFFSETS:
            raise ValueError(f"output_stride must be 32, 16 or 8, got {output_stride}")
        if placement not in ("caffe", "same"):
            raise ValueError(f"placement must be 'caffe' or 'same', got {placement!r}")
        if encoder.strides[-1] != 32 or 16 not in encoder.strides or 8 not in encoder.strides:
            raise ValueError(f"FCN needs encoder strides 8, 16 and 32 (last), got {encoder.strides}")
        self.encoder = encoder
        self.fully_connected = fully_connected if fully_connected is not None else nn.Identity()
        self.placement = placement
        self.output_stride = output_stride
        self.score_fr = nn.Conv2d(score_channels, num_classes, 1)
        skip_strides = [s for s in (16, 8) if s >= output_stride]
        self.skip_indices = [encoder.strides.index(s) for s in skip_strides]
        self.skip_offsets = [CAFFE_SKIP_OFFSETS[s] if placement == "caffe" else 0 for s in skip_strides]
        self.final_offset = CAFFE_FINAL_OFFSETS[output_stride] if placement == "caffe" else 0
        self.score_skips = nn.ModuleList(
            nn.Conv2d(encoder.out_channels[i], num_classes, 1) for i in self.skip_indices
        )
        self.upscore_skips = nn.ModuleList(
            bilinear_transposed_conv(num_classes, 2, padding=placement) for _ in skip_strides
        )
        self.upscore = bilinear_transposed_conv(num_classes, output_stride, padding=placement)
        if zero_init_scores:
            for score in (self.score_fr, *self.score_skips):
                nn.init.zeros_(score.weight)
                nn.init.zeros_(score.bias)
        if freeze_upsampling:
            for layer in (self.upscore, *self.upscore_skips):
                layer.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        if self.placement == "same":
            x = pad_to_multiple(x, 32)
        features = self.encoder(x)  # [..., stride 8, stride 16, stride 32]
        score = self.score_fr(self.fully_connected(features[-1]))  # (N, K, ~H/32, ~W/32)
        for upscore, score_skip, index, offset in zip(
            self.upscore_skips, self.score_skips, self.skip_indices, self.skip_offsets
        ):
            score = upscore(score)  # 2x: (N, K, ~H/16, ~W/16), then ~H/8
            score = score + crop(score_skip(features[index]), offset, score.shape[-2:])
        return crop(self.upscore(score), self.final_offset, size)  # (N, K, H, W)


def fcn_vgg16(
    num_classes: int,
    in_channels: int = 3,
    *,
    output_stride: int = 8,
    pretrained: Pretrained = False,
    width: float = 1.0,
    placement: str = "caffe",
    zero_init_scores: bool = True,
    freeze_upsampling: bool = False,
) -> FCN:
    """FCN on VGG16 (``output_stride`` 32, 16 or 8); ``pretrained`` loads ImageNet VGG16 incl. fc6/fc7."""
    check_pretrained_width(pretrained, width)
    caffe = placement == "caffe"
    encoder = VGGEncoder(
        in_channels=in_channels,
        width=width,
        first_padding=CAFFE_INPUT_PADDING if caffe else 1,
        ceil_mode=caffe,
    )
    fc_channels = scale_channels(4096, width)
    fully_connected = vgg_fully_connected(encoder.out_channels[-1], fc_channels, padding=0 if caffe else 3)
    state = backbone_state_dict("vgg16", pretrained)
    if state is not None:
        encoder.load_torchvision_state(state, source=str(pretrained))
        fc6 = state["classifier.0.weight"].reshape(fc_channels, encoder.out_channels[-1], 7, 7)
        fc_state = {
            "fc6.weight": fc6,
            "fc6.bias": state["classifier.0.bias"],
            "fc7.weight": state["classifier.3.weight"][..., None, None],
            "fc7.bias": state["classifier.3.bias"],
        }
        load_into(fully_connected, fc_state, source=str(pretrained))
    return FCN(
        encoder,
        num_classes,
        output_stride=output_stride,
        fully_connected=fully_connected,
        score_channels=fc_channels,
        placement=placement,
        zero_init_scores=zero_init_scores,
        freeze_upsampling=freeze_upsampling,
    )


def fcn_resnet(
    num_classes: int,
    in_channels: int = 3,
    *,
    arch: str = "resnet50",
    output_stride: int = 8,
    pretrained: Pretrained = False,
    zero_init_scores: bool = True,
    freeze_upsampling: bool = False,
) -> FCN:
    """FCN skip heads on a torchvision ResNet: score layer4, fuse layer3 (16s) and layer2 (8s)."""
    encoder = ResNetEncoder(arch, in_channels=in_channels, pretrained=pretrained)
    return FCN(
        encoder,
        num_classes,
        output_stride=output_stride,
        score_channels=encoder.out_channels[-1],
        placement="same",
        zero_init_scores=zero_init_scores,
        freeze_upsampling=freeze_upsampling,
    )


def _vgg_builder(stride: int) -> Callable[..., FCN]:
    def build(num_classes: int, in_channels: int = 3, **opts: Any) -> FCN:
        return fcn_vgg16(num_classes, in_channels, output_stride=stride, **opts)

    build.__name__ = f"fcn{stride}s_vgg16"
    build.__doc__ = (
        f"FCN-{stride}s on VGG16 (Long et al. CVPR 2015), Caffe crop layout; options: pretrained, width, "
        "placement, zero_init_scores, freeze_upsampling."
    )
    return build


def _resnet_builder(arch: str, stride: int) -> Callable[..., FCN]:
    def build(num_classes: int, in_channels: int = 3, **opts: Any) -> FCN:
        return fcn_resnet(num_classes, in_channels, arch=arch, output_stride=stride, **opts)

    build.__name__ = f"fcn{stride}s_{arch}"
    build.__doc__ = (
        f"FCN-{stride}s skip heads on torchvision {arch} (after Long et al. 2015); options: pretrained, "
        "zero_init_scores, freeze_upsampling."
    )
    return build


for _stride in (32, 16, 8):
    register_model(f"fcn{_stride}s_vgg16", paper=PAPER)(_vgg_builder(_stride))
    for _arch in ("resnet18", "resnet34", "resnet50"):
        register_model(f"fcn{_stride}s_{_arch}", paper=PAPER)(_resnet_builder(_arch, _stride))
