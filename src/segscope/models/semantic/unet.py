"""U-Net (Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015).

Reproduces Fig. 1 of the paper: a contracting path of four 2x2 max-pool steps with two 3x3 convolutions
+ ReLU per level (64 -> 128 -> 256 -> 512 -> 1024 channels), an expansive path of 2x2 up-convolutions
(transposed convolutions halving the channels) each followed by concatenation with the cropped
contracting feature map and two 3x3 convolutions, and a final 1x1 convolution to the classes. With
``padding="valid"``, ``in_channels=1``, ``num_classes=2``, ``batch_norm=False`` it has 31,030,658
parameters, the paper configuration (≈31.0 M), and maps a 572x572 tile to a 388x388 output (Fig. 1).

Departures from the paper, all optional:

* ``padding="same"`` (default) keeps the output the size of the input; odd sizes are reflect-padded to
  a multiple of ``2**depth`` and cropped back, so any input size works;
* ``batch_norm=True`` (default) adds BatchNorm after every 3x3 convolution (not in the paper; it trains
  much faster from scratch, and adds 2 parameters per channel);
* ``base_channels`` (paper: 64) and ``depth`` (paper: 4) shrink the model for CPU training;
* ``dropout`` (paper: "drop-out layers at the end of the contracting path", rate unstated) defaults to 0.

With ``padding="valid"`` the output is smaller than the input by ``2 * output_margin`` pixels; use the
overlap-tile strategy of the paper (mirror-pad the image by ``output_margin``), as
:class:`segscope.deep.DeepSegmenter` does at inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segscope.models.layers.conv import ConvNormAct
from segscope.models.registration import register_model


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by (BatchNorm and) ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, padding: str, batch_norm: bool) -> None:
        super().__init__(
            ConvNormAct(in_channels, out_channels, 3, padding=padding, norm=batch_norm),
            ConvNormAct(out_channels, out_channels, 3, padding=padding, norm=batch_norm),
        )


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop the centre ``height x width`` of an ``(N, C, H, W)`` tensor (the paper's skip cropping)."""
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


class UNet(nn.Module):
    """U-Net mapping ``(N, in_channels, H, W)`` to ``(N, num_classes, H', W')`` logits.

    ``H' = H`` for ``padding="same"``; ``H' = H - 2 * output_margin`` for ``padding="valid"``.
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 3,
        *,
        base_channels: int = 64,
        depth: int = 4,
        padding: str = "same",
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.padding, self.depth = padding, depth
        widths = [base_channels * 2**i for i in range(depth + 1)]  # 64, 128, 256, 512, 1024
        self.down = nn.ModuleList()
        c_in = in_channels
        for w in widths:
            self.down.append(DoubleConv(c_in, w, padding=padding, batch_norm=batch_norm))
            c_in = w
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c_in, w, kernel_size=2, stride=2))  # "up-convolution"
            self.up_convs.append(DoubleConv(2 * w, w, padding=padding, batch_norm=batch_norm))
            c_in = w
        self.head = nn.Conv2d(c_in, num_classes, kernel_size=1)
        self.num_classes = num_classes
        self.in_channels = in_channels

    @property
    def output_margin(self) -> int:
        """Pixels lost per side with valid convolutions (92 for depth 4: 572 -> 388)."""
        if self.padding == "same":
            return 0
        # Going down, level i loses 4 px at scale 2**i; going up, level i (< depth) loses 4 px at 2**i.
        lost = sum(4 * 2**i for i in range(self.depth + 1)) + sum(4 * 2**i for i in range(self.depth))
        return lost // 2

    def valid_input_size(self, size: int) -> bool:
        """Whether a valid-padding input side length passes every pooling step evenly."""
        for _ in range(self.depth):
            size -= 4
            if size <= 0 or size % 2:
                return False
            size //= 2
        return size - 4 > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.padding == "same":
            multiple = 2**self.depth
            pad_h, pad_w = (-h) % multiple, (-w) % multiple
            if pad_h or pad_w:
                mode = "reflect" if pad_h < h and pad_w < w else "replicate"
                x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        elif not (self.valid_input_size(h) and self.valid_input_size(w)):
            raise ValueError(
                f"U-Net with valid padding cannot take a {h}x{w} input: each side must be 4 more than even "
                f"at every level (e.g. 572 -> 388); use padding='same' or overlap-tile inference"
            )
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)  # (N, base * 2**i, H / 2**i, W / 2**i)
            if i < self.depth:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        x = self.dropout(x)  # bottom of the "U", as in the paper
        for up, conv, skip in zip(self.up, self.up_convs, reversed(skips)):
            x = up(x)  # (N, C/2, 2H, 2W)
            x = conv(torch.cat([center_crop(skip, *x.shape[-2:]), x], dim=1))
        x = self.head(x)  # (N, num_classes, H', W')
        if self.padding == "same":
            x = x[..., :h, :w]
        return x


@register_model("unet", paper="Ronneberger et al., MICCAI 2015")
def unet(num_classes: int = 2, in_channels: int = 3, **options) -> UNet:
    """U-Net (Ronneberger et al. 2015): paper widths 64..1024 by default; ``base_channels`` shrinks it."""
    return UNet(num_classes, in_channels, **options)


@register_model("unet_small", paper="Ronneberger et al., MICCAI 2015")
def unet_small(num_classes: int = 2, in_channels: int = 3, **options) -> UNet:
    """U-Net with 16 base channels (1/16 of the paper's parameters) for quick CPU training."""
    return UNet(num_classes, in_channels, **{"base_channels": 16, **options})
