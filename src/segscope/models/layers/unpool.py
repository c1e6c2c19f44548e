"""Max-pooling that remembers its switches, and the max-unpooling that uses them.

DeconvNet and SegNet up-sample by putting every value back at the position its max came from
(the pooling "switches" / indices) and zeros elsewhere: a sparse map whose non-zeros keep the
encoder's boundary locations, densified by the following (de)convolutions. Recording the
pre-pooling size makes the round trip exact for odd sizes (a 175-pixel axis pools to 87 and
unpools back to 175), so these models need no input padding.

References
----------
.. [1] M. D. Zeiler, G. W. Taylor, R. Fergus, "Adaptive deconvolutional networks for mid and high
   level feature learning", ICCV 2011 (switches).
.. [2] H. Noh, S. Hong, B. Han, "Learning deconvolution network for semantic segmentation",
   ICCV 2015, section 3.1 (unpooling).
.. [3] V. Badrinarayanan, A. Kendall, R. Cipolla, "SegNet", TPAMI 2017, Fig. 3.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class PoolSwitches(NamedTuple):
    """What an unpooling layer needs from its pooling layer."""

    indices: torch.Tensor  # (N, C, H/2, W/2) flat index of each max within its (H, W) plane
    size: torch.Size  # the (H, W) before pooling


class SwitchMaxPool2d(nn.Module):
    """``MaxPool2d`` returning ``(pooled, PoolSwitches)``; floor mode, so odd sizes lose one row."""

    def __init__(self, kernel_size: int = 2, stride: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, PoolSwitches]:
        if min(x.shape[-2:]) < self.kernel_size:
            window = f"{self.kernel_size}x{self.kernel_size}"
            raise ValueError(
                f"feature map {tuple(x.shape[-2:])} is smaller than the {window} pooling window: "
                "the input image is too small for this network"
            )
        pooled, indices = F.max_pool2d(x, self.kernel_size, self.stride, return_indices=True)
        return pooled, PoolSwitches(indices, x.shape[-2:])

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MaxUnpool2d(nn.Module):
    """Place each value at its recorded switch position in a zero map of the recorded size."""

    def __init__(self, kernel_size: int = 2, stride: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: torch.Tensor, switches: PoolSwitches) -> torch.Tensor:
        # (N, C, h, w) -> (N, C, H, W), zeros except at the switches
        if torch.jit.is_tracing():  # ONNX export: the same placement as a scatter (ONNX ScatterElements)
            n, c = x.shape[:2]
            h, w = switches.size
            flat = x.new_zeros((n, c, h * w)).scatter(2, switches.indices.flatten(2), x.flatten(2))
            return flat.view(n, c, h, w)
        return F.max_unpool2d(x, switches.indices, self.kernel_size, self.stride, output_size=switches.size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"
