"""Depthwise-separable convolution: a per-channel ``k x k`` convolution, then a 1x1 (pointwise) one.

F. Chollet, "Xception: Deep learning with depthwise separable convolutions", CVPR 2017; used by DeepLab v3+
(Chen et al., ECCV 2018, Sec. 3.2, "atrous separable convolution") in its ASPP and decoder. A ``k x k``
convolution from ``C`` to ``C'`` channels costs ``k^2 C C'`` weights, the separable one ``k^2 C + C C'``.
"""

from __future__ import annotations

from torch import nn


class SeparableConv2d(nn.Sequential):
    """``depthwise k x k (groups = in_channels, no bias) -> pointwise 1x1`` (children ``0`` and ``1``, the
    layout of ``segmentation_models_pytorch``'s ``SeparableConv2d``, so its weights load unchanged).

    No normalisation between the two (as Xception's entry flow in SMP and torchvision's tutorials);
    ``padding`` defaults to ``dilation * (kernel_size - 1) // 2`` ("same" output size at stride 1).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(
                in_channels,
                in_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=in_channels,
                bias=False,
            ),
            nn.Conv2d(in_channels, out_channels, 1, bias=bias),
        )
        self.out_channels = out_channels
