"""The pyramid pooling module of PSPNet (Zhao, Shi, Qi, Wang, Jia, "Pyramid Scene Parsing Network",
CVPR 2017, Fig. 3 and Sec. 3.2).

For a feature map ``x`` of ``C`` channels: for each bin size ``b`` in (1, 2, 3, 6), average-pool ``x`` to
``b x b`` (adaptive pooling), reduce it by a 1x1 convolution to ``C / N`` channels (``N`` = number of levels:
512 for the 2048-channel ResNet map) followed by batch norm and ReLU, and up-sample it bilinearly to the size
of ``x``; the result is ``x`` concatenated with the ``N`` up-sampled maps: ``C + N * (C / N) = 2 C`` channels
(4096 for 2048). The paper's ablation (its Table 1 as we read it) found average pooling over the four levels
with this 1x1 dimension reduction best ("B1236+AVE+DR").

Batch norm is kept on every level, the 1x1 bin included, as in the paper's Caffe model; a 1x1 bin in
training mode therefore needs a batch of at least two images (segmentation-models-pytorch drops the norm of
that bin instead). Up-sampling uses ``align_corners=False`` (Caffe's ``Interp`` aligns corners).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segscope.models.layers.conv import ConvNormAct
from segscope.models.layers.pooling import adaptive_avg_pool2d

PYRAMID_BINS = (1, 2, 3, 6)


class PyramidPoolingModule(nn.Module):
    """``(N, C, h, w) -> (N, C + len(bins) * reduction, h, w)``: ``[x, up(conv(pool_b(x))) for b in bins]``.

    Parameters
    ----------
    in_channels : int
    bins : sequence of int
        Output sizes of the adaptive average pools (1, 2, 3, 6 in the paper).
    reduction : int, optional
        Channels of each level after its 1x1 conv; ``in_channels // len(bins)`` by default (the paper's
        "1/N of the original", 512 for 2048 and four levels).
    """

    def __init__(
        self, in_channels: int, bins: Sequence[int] = PYRAMID_BINS, *, reduction: int | None = None
    ) -> None:
        super().__init__()
        self.bins = tuple(int(b) for b in bins)
        if not self.bins or min(self.bins) < 1:
            raise ValueError(f"bins must be positive pooled sizes, got {list(bins)}")
        self.reduction = reduction or in_channels // len(self.bins)
        self.stages = nn.ModuleList(ConvNormAct(in_channels, self.reduction, 1) for _ in self.bins)
        self.in_channels = in_channels
        self.out_channels = in_channels + len(self.bins) * self.reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        levels = [x]
        for b, stage in zip(self.bins, self.stages):
            pooled = stage(adaptive_avg_pool2d(x, b))  # (N, reduction, b, b)
            levels.append(F.interpolate(pooled, size=size, mode="bilinear", align_corners=False))
        return torch.cat(levels, dim=1)
