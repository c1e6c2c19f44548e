"""Atrous spatial pyramid pooling (ASPP) in DeepLab v2's and DeepLab v3's forms.

* v2 (Chen et al., "DeepLab: semantic image segmentation with deep convolutional nets, atrous convolution,
  and fully connected CRFs", TPAMI 2017, Fig. 7 / Sec. 3.2): parallel branches, each a 3x3 convolution with
  its own rate (ASPP-L: 6, 12, 18, 24) ending in class logits; the branches' logits are *summed*.
  :class:`ASPPv2` holds the branches; a branch is one dilated conv straight to the classes (the ResNet-101
  model, ``fc1_c0..c3``) or ``3x3 rate r (1024) -> ReLU -> dropout -> 1x1 (1024) -> ReLU -> dropout -> 1x1
  (classes)`` (the VGG16 model, ``fc6_i, fc7_i, fc8_i``), see ``head_channels``.
* v3 (Chen et al., "Rethinking atrous convolution for semantic image segmentation", arXiv 1706.05587, 2017,
  Sec. 3.3 / Fig. 5): a 1x1 branch, three 3x3 branches (rates 6, 12, 18 at output stride 16; doubled at
  8), and image-level pooling (global average -> 1x1 -> BN -> up-sampled), each with BatchNorm and
  256 channels, concatenated and projected by a 1x1 conv-BN-ReLU (then dropout). :class:`ASPP` keeps
  torchvision's ``ASPP`` module layout (``convs.0..4``, ``project``), which is also
  ``segmentation_models_pytorch``'s, so both state dicts load; ``separable=True`` makes the 3x3 branches
  depthwise-separable (DeepLab v3+, Sec. 3.2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segscope.models.layers.separable import SeparableConv2d

ASPP_V2_RATES = (6, 12, 18, 24)  # ASPP-L
ASPP_V3_RATES = (6, 12, 18)  # at output stride 16


class ASPPv2(nn.Module):
    """DeepLab v2's ASPP: ``sum_r branch_r(x)`` over ``rates``; every branch ends in ``num_classes`` logits.

    ``head_channels=None``: each branch is a 3x3 conv with dilation ``r`` straight to the classes (the
    ResNet-101 model). An integer (1024 for VGG16): ``3x3 rate r -> ReLU -> Dropout -> 1x1 -> ReLU ->
    Dropout -> 1x1 classes`` per branch, i.e. DeepLab-LargeFOV's fc6/fc7/fc8 once per rate.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        rates: Sequence[int] = ASPP_V2_RATES,
        *,
        head_channels: int | None = None,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.rates = tuple(int(r) for r in rates)
        branches = []
        for r in self.rates:
            if head_channels is None:
                branches.append(nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r))
            else:
                branches.append(
                    nn.Sequential(
                        nn.Conv2d(in_channels, head_channels, 3, padding=r, dilation=r),
                        nn.ReLU(inplace=True),
                        nn.Dropout(dropout),
                        nn.Conv2d(head_channels, head_channels, 1),
                        nn.ReLU(inplace=True),
                        nn.Dropout(dropout),
                        nn.Conv2d(head_channels, num_classes, 1),
                    )
                )
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


class ASPPPooling(nn.Sequential):
    """Image-level features: global average pool -> 1x1 conv -> BN -> ReLU, up-sampled to the input size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for module in self:
            x = module(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _branch(in_channels: int, out_channels: int, rate: int, separable: bool) -> nn.Sequential:
    conv: nn.Module
    if separable:
        conv = SeparableConv2d(in_channels, out_channels, 3, dilation=rate, bias=False)
    else:
        conv = nn.Conv2d(in_channels, out_channels, 3, padding=rate, dilation=rate, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU())


class ASPP(nn.Module):
    """DeepLab v3's ASPP (module docstring): ``(N, C, h, w) -> (N, out_channels, h, w)``."""

    def __init__(
        self,
        in_channels: int,
        rates: Sequence[int] = ASPP_V3_RATES,
        out_channels: int = 256,
        *,
        separable: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.rates = tuple(int(r) for r in rates)
        branches: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()
            )
        ]
        branches += [_branch(in_channels, out_channels, r, separable) for r in self.rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))
