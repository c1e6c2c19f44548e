"""ENet: an initial block, 22 PReLU bottlenecks in the encoder, 5 ReLU bottlenecks in the decoder.

A. Paszke, A. Chaurasia, S. Kim, E. Culurciello, "ENet: A Deep Neural Network Architecture for
Real-Time Semantic Segmentation", arXiv:1606.02147, 2016.

Reproduced: Table 1 (the layer table, 512 x 512 input there) with the modules of Fig. 2 and
section 3:

* initial block (Fig. 2a): a 3x3 stride-2 convolution with 13 filters beside a 2x2 max-pooling of
  the input, concatenated (16 channels for RGB), then batch norm and PReLU;
* bottleneck (Fig. 2b): 1x1 projection to ``channels / 4`` (internal ratio 4), the main
  convolution, 1x1 expansion, each followed by batch norm (PReLU after the first two), spatial
  dropout on this extension branch, added to the main branch, PReLU after the sum. The main
  convolution is a 3x3 (regular), a dilated 3x3 (2, 4, 8, 16) or a 5x5 split into 5x1 then 1x5
  (asymmetric 5). Projections have no bias (section 4, "we chose to not use bias terms in any of
  the projections"); the main convolutions keep theirs;
* down-sampling bottlenecks 1.0 and 2.0: the projection becomes a 2x2 stride-2 convolution; the
  main branch max-pools (keeping the indices) and is zero-padded to the output channels;
* stages 1-3 exactly as Table 1: 1.0 + 4 regular (64 ch); 2.0 + [regular, dilated 2, asymmetric 5,
  dilated 4, regular, dilated 8, asymmetric 5, dilated 16] (128 ch); stage 3 repeats stage 2
  without 2.0;
* decoder (ReLU, as section 4 says): up-sampling bottleneck 4.0 (128 -> 64) whose main branch is a
  1x1 convolution + batch norm then max-unpooling with bottleneck 2.0's indices and whose extension
  uses a 3x3 stride-2 transposed convolution, 2 regular bottlenecks, up-sampling bottleneck 5.0
  (64 -> 16, bottleneck 1.0's indices), 1 regular bottleneck, and the final 2x2 stride-2
  transposed convolution ("fullconv") to ``num_classes`` at full resolution;
* spatial dropout (``Dropout2d``) p = 0.01 in stage 1 ("before bottleneck2.0") and 0.1 from
  bottleneck 2.0 on, decoder included ("afterwards"). The layer details the paper leaves open
  (biases, BN eps 1e-3, per-channel PReLU, the transposed convolutions' sizes, no BN between the two
  asymmetric convolutions) follow the authors' Torch code (e-lab/ENet-training).

Parameter count (11 classes, RGB): **363,791** learnable parameters (hand-counted in
``tests/models/test_enet.py``), 1.7 % under the paper's "0.37 M" (Table 3). With the 8,352 batch-norm
running statistics (buffers, 2 per normalised channel) the count is 372,143 (+0.6 %), and that is
the reading the paper's figures support: 0.37 M and "79x less parameters" than SegNet's 29.46 M
(Table 3) hold for 372,143 (SegNet/ENet = 79.2 with the same convention, SegNet's 15,872 running
statistics included) but not for 363,791 (0.36 M, 81.0x); the paper gives no breakdown, so this is
an inference. The reference PyTorch port davidtvs/PyTorch-ENet reports 350.65 k (12 classes, its
issue #44): it drops every bias, uses one PReLU slope per layer, 2x2 up-sampling kernels and a
different internal width in the sampling bottlenecks.

Departures:

* any input size: the input is zero-padded at the bottom and right to a multiple of 8 (three
  poolings) and the logits are cropped back; the paper used fixed sizes (512 x 512 in Table 1,
  480 x 360 CamVid, 1024 x 512 Cityscapes);
* ``in_channels`` other than 3: the initial block keeps its 16 output channels (bottleneck 5.0
  unpools 16 channels with bottleneck 1.0's indices), so its convolution has ``16 - in_channels``
  filters beside the ``in_channels`` pooled ones (15 for grey images); at most 15 input channels;
* trained end to end: the paper first trains the encoder with a classifier on its 1/8 output and
  then appends the decoder; that schedule is not reproduced (the encoder classifier is not built);
* ``decoder_dropout`` (default 0.1, the paper's text) sets the decoder's spatial dropout; the
  authors' Torch decoder had none (``decoder_dropout=0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segscope.models.layers.unpool import MaxUnpool2d, PoolSwitches, SwitchMaxPool2d
from segscope.models.registration import register_model

PAPER = (
    "Paszke, Chaurasia, Kim, Culurciello. ENet: A Deep Neural Network Architecture for Real-Time "
    "Semantic Segmentation. arXiv:1606.02147, 2016"
)
BN_EPS = 1e-3  # the authors' Torch code
RATIO = 4  # internal ratio: the projection keeps channels / 4
MULTIPLE = 8  # three 2x2 poolings: the initial block, bottleneck 1.0, bottleneck 2.0


def _act(channels: int, prelu: bool) -> nn.Module:
    return nn.PReLU(channels) if prelu else nn.ReLU(inplace=True)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class InitialBlock(nn.Module):
    """Fig. 2a: 3x3 stride-2 conv (13 filters for RGB) || 2x2 max-pool, concatenated, BN, PReLU.

    Shapes: ``(N, C_in, H, W) -> (N, 16, H/2, W/2)`` for even ``H, W``; the convolution has
    ``16 - C_in`` filters.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 16) -> None:
        super().__init__()
        if not 0 < in_channels < out_channels:
            raise ValueError(
                f"ENet's initial block concatenates a convolution with the pooled input to {out_channels} "
                f"channels: in_channels must be 1 to {out_channels - 1}, got {in_channels}"
            )
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.out_channels = out_channels
        self.bn = _bn(self.out_channels)
        self.act = nn.PReLU(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class Bottleneck(nn.Module):
    """Fig. 2b, size-preserving: 1x1 projection, main conv, 1x1 expansion, dropout, + identity.

    ``kind`` is ``"regular"`` (3x3), ``"dilated"`` (3x3 with ``dilation``) or ``"asymmetric"``
    (``asymmetric`` x 1 then 1 x ``asymmetric``). PReLU in the encoder, ReLU (``prelu=False``) in
    the decoder. Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(
        self,
        channels: int,
        *,
        kind: str = "regular",
        dilation: int = 1,
        asymmetric: int = 5,
        dropout: float = 0.1,
        prelu: bool = True,
    ) -> None:
        super().__init__()
        internal = channels // RATIO
        if kind == "regular":
            main: list[nn.Module] = [nn.Conv2d(internal, internal, 3, padding=1)]
        elif kind == "dilated":
            main = [nn.Conv2d(internal, internal, 3, padding=dilation, dilation=dilation)]
        elif kind == "asymmetric":
            pad = asymmetric // 2
            main = [
                nn.Conv2d(internal, internal, (asymmetric, 1), padding=(pad, 0), bias=False),
                nn.Conv2d(internal, internal, (1, asymmetric), padding=(0, pad)),
            ]
        else:
            raise ValueError(f"unknown bottleneck kind {kind!r} (regular, dilated, asymmetric)")
        self.kind = kind
        self.extension = nn.Sequential(
            nn.Conv2d(channels, internal, 1, bias=False),  # projection
            _bn(internal),
            _act(internal, prelu),
            *main,
            _bn(internal),
            _act(internal, prelu),
            nn.Conv2d(internal, channels, 1, bias=False),  # expansion
            _bn(channels),
            nn.Dropout2d(dropout),
        )
        self.act = _act(channels, prelu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.extension(x))


class DownsamplingBottleneck(nn.Module):
    """Bottlenecks 1.0 / 2.0: 2x2 stride-2 projection; main branch max-pools, keeps the indices and
    zero-pads the channels. Shapes: ``(N, C_in, H, W) -> ((N, C_out, H/2, W/2), PoolSwitches)``."""

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float) -> None:
        super().__init__()
        if in_channels > out_channels:
            raise ValueError(
                f"a down-sampling bottleneck zero-pads {in_channels} channels up to {out_channels}: "
                "it cannot shrink them"
            )
        internal = out_channels // RATIO
        self.pad_channels = out_channels - in_channels
        self.pool = SwitchMaxPool2d(2, 2)
        self.extension = nn.Sequential(
            nn.Conv2d(in_channels, internal, 2, stride=2, bias=False),  # projection, stride 2
            _bn(internal),
            nn.PReLU(internal),
            nn.Conv2d(internal, internal, 3, padding=1),
            _bn(internal),
            nn.PReLU(internal),
            nn.Conv2d(internal, out_channels, 1, bias=False),  # expansion
            _bn(out_channels),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, PoolSwitches]:
        main, switches = self.pool(x)
        main = F.pad(main, (0, 0, 0, 0, 0, self.pad_channels))  # zero feature maps up to C_out
        return self.act(main + self.extension(x)), switches


class UpsamplingBottleneck(nn.Module):
    """Bottlenecks 4.0 / 5.0 (ReLU): main branch 1x1 conv + BN, then max-unpooling with the matching
    down-sampling bottleneck's indices; extension with a 3x3 stride-2 transposed convolution.
    Shapes: ``(N, C_in, h, w), PoolSwitches -> (N, C_out, 2h, 2w)``."""

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float) -> None:
        super().__init__()
        internal = out_channels // RATIO
        self.main = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), _bn(out_channels))
        self.unpool = MaxUnpool2d(2, 2)
        self.extension = nn.Sequential(
            nn.Conv2d(in_channels, internal, 1, bias=False),  # projection
            _bn(internal),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(internal, internal, 3, stride=2, padding=1, output_padding=1),
            _bn(internal),
            nn.ReLU(inplace=True),
            nn.Conv2d(internal, out_channels, 1, bias=False),  # expansion
            _bn(out_channels),
            nn.Dropout2d(dropout),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, switches: PoolSwitches) -> torch.Tensor:
        return self.act(self.unpool(self.main(x), switches) + self.extension(x))


# Stage 2 (and 3) of Table 1 after bottleneck 2.0: (kind, dilation).
STAGE2 = (
    ("regular", 1),
    ("dilated", 2),
    ("asymmetric", 1),
    ("dilated", 4),
    ("regular", 1),
    ("dilated", 8),
    ("asymmetric", 1),
    ("dilated", 16),
)


class ENet(nn.Module):
    """ENet, Table 1. Shapes: ``(N, C_in, H, W) -> (N, num_classes, H, W)`` for any ``H, W``
    (padded to a multiple of 8 inside, cropped back)."""

    def __init__(self, num_classes: int, in_channels: int = 3, *, decoder_dropout: float = 0.1) -> None:
        super().__init__()
        self.initial = InitialBlock(in_channels)  # (N, 16, H/2, W/2)
        self.bottleneck1_0 = DownsamplingBottleneck(16, 64, dropout=0.01)
        self.stage1 = nn.Sequential(*(Bottleneck(64, dropout=0.01) for _ in range(4)))
        self.bottleneck2_0 = DownsamplingBottleneck(64, 128, dropout=0.1)
        self.stage2 = nn.Sequential(*(Bottleneck(128, kind=k, dilation=d, dropout=0.1) for k, d in STAGE2))
        self.stage3 = nn.Sequential(*(Bottleneck(128, kind=k, dilation=d, dropout=0.1) for k, d in STAGE2))
        self.bottleneck4_0 = UpsamplingBottleneck(128, 64, dropout=decoder_dropout)
        self.stage4 = nn.Sequential(*(Bottleneck(64, dropout=decoder_dropout, prelu=False) for _ in range(2)))
        self.bottleneck5_0 = UpsamplingBottleneck(64, 16, dropout=decoder_dropout)
        self.stage5 = Bottleneck(16, dropout=decoder_dropout, prelu=False)
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % MULTIPLE, 0, -height % MULTIPLE))  # bottom/right zeros to x8
        y = self.initial(x)  # (N, 16, H/2, W/2)
        y, switches1 = self.bottleneck1_0(y)  # (N, 64, H/4, W/4)
        y = self.stage1(y)
        y, switches2 = self.bottleneck2_0(y)  # (N, 128, H/8, W/8)
        y = self.stage3(self.stage2(y))
        y = self.stage4(self.bottleneck4_0(y, switches2))  # (N, 64, H/4, W/4)
        y = self.stage5(self.bottleneck5_0(y, switches1))  # (N, 16, H/2, W/2)
        return self.fullconv(y)[..., :height, :width]  # (N, K, H, W)


@register_model("enet", paper=PAPER)
def enet(
    num_classes: int, in_channels: int = 3, *, decoder_dropout: float = 0.1, pretrained: bool = False
) -> ENet:
    """ENet (Paszke et al. 2016, Table 1), 0.36 M parameters; option decoder_dropout."""
    if pretrained:
        raise ValueError("enet has no pretrained weights (it is trained from scratch, as in the paper)")
    return ENet(num_classes, in_channels, decoder_dropout=decoder_dropout)
