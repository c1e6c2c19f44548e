"""Convolution + normalisation + activation blocks."""

from __future__ import annotations

from torch import nn


class ConvNormAct(nn.Sequential):
    """``Conv2d -> BatchNorm2d (optional) -> ReLU``; the conv has no bias when a norm follows."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        padding: int | str = "same",
        stride: int = 1,
        dilation: int = 1,
        norm: bool = True,
        act: bool = True,
    ) -> None:
        if padding == "same":
            padding = dilation * (kernel_size - 1) // 2
        elif padding == "valid":
            padding = 0
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=not norm)
        ]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels
