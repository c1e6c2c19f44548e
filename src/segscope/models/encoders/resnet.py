"""torchvision ResNets as encoders: stem, layer1..layer4 at strides 2, 4, 8, 16, 32.

The modules keep torchvision's attribute names (``conv1``, ``bn1``, ``layer1`` ...), so the
torchvision state dict (minus ``fc.*``) loads unchanged. ``output_stride`` 16 or 8 replaces the
last strides by dilation (Bottleneck ResNets only, as torchvision supports); ``multi_grid`` sets the rates
of layer4's three blocks to ``rate * multi_grid[i]`` (DeepLab v3's multi-grid, Sec. 3.2: (1, 2, 4) at
output stride 16 gives rates 2, 4, 8), weights unchanged.

References
----------
.. [1] K. He, X. Zhang, S. Ren, J. Sun, "Deep residual learning for image recognition", CVPR 2016.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn

from segscope.models.encoders.base import (
    Encoder,
    Pretrained,
    adapt_input_conv,
    backbone_state_dict,
    load_into,
)

RESNET_CHANNELS: dict[str, tuple[int, ...]] = {
    "resnet18": (64, 64, 128, 256, 512),
    "resnet34": (64, 64, 128, 256, 512),
    "resnet50": (64, 256, 512, 1024, 2048),
    "resnet101": (64, 256, 512, 1024, 2048),
    "resnet152": (64, 256, 512, 1024, 2048),
}
_DILATION = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}


class ResNetEncoder(Encoder):
    """A torchvision ResNet without its classifier; returns 5 maps (stem, layer1..layer4).

    Parameters
    ----------
    arch : {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}
    in_channels : int
        Input channels; pretrained RGB ``conv1`` weights are adapted (see ``adapt_input_conv``).
    output_stride : {32, 16, 8}
        Stride of the last map; 16 and 8 dilate layer4 (and layer3) instead (Bottleneck only).
    pretrained : bool | str | Path
        See :mod:`segscope.models.encoders.base`.
    multi_grid : sequence of int, optional
        Unit rates of layer4's blocks (module docstring); ``None`` keeps torchvision's dilation (the
        first dilated block at the previous rate).
    """

    def __init__(
        self,
        arch: str = "resnet50",
        *,
        in_channels: int = 3,
        output_stride: int = 32,
        pretrained: Pretrained = False,
        multi_grid: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if arch not in RESNET_CHANNELS:
            raise ValueError(f"arch must be one of {sorted(RESNET_CHANNELS)}, got {arch!r}")
        if output_stride not in _DILATION:
            raise ValueError(f"output_stride must be 32, 16 or 8, got {output_stride}")
        if output_stride != 32 and arch in ("resnet18", "resnet34"):
            raise ValueError(f"{arch} (BasicBlock) cannot dilate; use output_stride=32 or a resnet50+")
        kwargs = {} if output_stride == 32 else {"replace_stride_with_dilation": _DILATION[output_stride]}
        net = getattr(torchvision.models, arch)(weights=None, **kwargs)
        self.arch = arch
        self.in_channels = in_channels
        self.conv1 = (
            net.conv1 if in_channels == 3 else nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        )
        self.bn1, self.relu, self.maxpool = net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_channels = RESNET_CHANNELS[arch]
        self.strides = tuple(min(s, output_stride) for s in (2, 4, 8, 16, 32))
        self.multi_grid = None if multi_grid is None else tuple(int(m) for m in multi_grid)
        if self.multi_grid is not None:
            self._apply_multi_grid(32 // output_stride)
        state = backbone_state_dict(arch, pretrained)
        if state is not None:
            self.load_torchvision_state(state, source=str(pretrained))

    def _apply_multi_grid(self, rate: int) -> None:
        if self.arch in ("resnet18", "resnet34"):
            raise ValueError(f"multi_grid needs a Bottleneck ResNet (resnet50+), got {self.arch}")
        if len(self.multi_grid) != len(self.layer4) or min(self.multi_grid) < 1:
            raise ValueError(
                f"multi_grid needs {len(self.layer4)} positive unit rates, got {list(self.multi_grid)}"
            )
        for block, unit in zip(self.layer4, self.multi_grid):
            d = rate * unit
            block.conv2.dilation, block.conv2.padding = (d, d), (d, d)

    def load_torchvision_state(self, state: dict[str, torch.Tensor], *, source: str = "state dict") -> None:
        """Load a torchvision ResNet state dict (its ``fc.*`` classifier entries are ignored)."""
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        if "conv1.weight" in state:
            state["conv1.weight"] = adapt_input_conv(state["conv1.weight"], self.in_channels)
        load_into(self, state, source=source)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))  # (N, 64, H/2, W/2)
        c1 = self.layer1(self.maxpool(stem))  # (N, C1, H/4, W/4)
        c2 = self.layer2(c1)  # (N, C2, H/8, W/8)
        c3 = self.layer3(c2)  # (N, C3, H/16, W/16) (or /8 when dilated)
        c4 = self.layer4(c3)  # (N, C4, H/32, W/32) (or /16, /8 when dilated)
        return [stem, c1, c2, c3, c4]
