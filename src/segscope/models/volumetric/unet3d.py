"""3-D U-Net (Çiçek, Abdulkadir, Lienkamp, Brox & Ronneberger, "3D U-Net: Learning Dense Volumetric
Segmentation from Sparse Annotation", MICCAI 2016).

Reproduces Fig. 1 of the paper: an analysis path of four resolution levels (three 2x2x2 max poolings),
each level two 3x3x3 convolutions followed by BatchNorm + ReLU, with the channels doubled *before* each
pooling (the first convolution of a level outputs half of the second: 32 -> 64 | 64 -> 128 | 128 -> 256 |
256 -> 512); a synthesis path of 2x2x2 up-convolutions (transposed, stride 2) that keep the channels
(512 -> 512), concatenation with the analysis feature map of the same level, two 3x3x3 convolutions
(768 -> 256 -> 256, ...), and a final 1x1x1 convolution to the labels. With ``padding="valid"`` it maps a
132x132x116 input to a 44x44x28 output (``output_margin`` 44), as in the paper.

Parameter count. The paper states 19,069,955 parameters (3 input channels, 3 labels). That number is
reproduced exactly by the weights of all convolutions, the biases of the 3x3x3 and the final 1x1x1
convolutions, *no* bias on the up-convolutions and *no* BatchNorm parameters (Caffe's ``BatchNorm``
layer holds running statistics only): ``UNet3D(3, 3, batch_norm=False)`` has exactly 19,069,955. Keeping
the up-convolution bias instead gives 19,070,851; halving the channels in the up-convolutions (as the
2-D U-Net does) 15.4 M, so the paper keeps them. (Other bias placements reach the same number, since the
analysis-level and synthesis-level bias sums coincide with the up-convolution bias sum, 896; this one
treats every 3x3x3 convolution alike.) With ``batch_norm=True`` (default, as in the paper) the 3x3x3
convolutions drop their bias (BatchNorm's shift replaces it) and BatchNorm adds its scale and shift:
19,072,291 parameters, 0.012 % above the paper's count.

Departures from the paper, all optional:

* ``padding="same"`` (default) keeps the output the size of the input: like the 2-D
  :class:`~segscope.models.semantic.unet.UNet`, an input whose D/H/W are not multiples of
  ``2 ** (depth - 1)`` (8 for the paper's 4 levels) is reflect-padded at the end and the output cropped
  back, so any size works. The paper uses valid convolutions (``padding="valid"``; the model then
  exposes ``output_margin`` and ``valid_input_size`` for overlap-tile inference).
* ``base_channels`` (paper: 32) scales every width; CPU runs use 8 or 16.
* ``depth`` counts resolution *levels* (paper: 4, i.e. 3 poolings), unlike the 2-D ``UNet`` whose
  ``depth`` counts poolings.
* The weighted softmax loss over sparse annotations (unlabelled voxels weight 0) lives in the loss, not
  here: use the ignore index.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segscope.models.registration import register_model
from segscope.models.volumetric.segmenter import VolumeSegmenter

PAPER = "Çiçek et al., 3D U-Net: Learning Dense Volumetric Segmentation from Sparse Annotation, MICCAI 2016"


class ConvNormAct3d(nn.Sequential):
    """``Conv3d 3x3x3 -> BatchNorm3d (optional) -> ReLU``; the conv has no bias when a norm follows."""

    def __init__(self, in_channels: int, out_channels: int, *, padding: str, batch_norm: bool) -> None:
        layers: list[nn.Module] = [
            nn.Conv3d(
                in_channels, out_channels, 3, padding=1 if padding == "same" else 0, bias=not batch_norm
            )
        ]
        if batch_norm:
            layers.append(nn.BatchNorm3d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv3d(nn.Sequential):
    """Two 3x3x3 convolutions ``in -> mid -> out``, each followed by (BatchNorm and) ReLU."""

    def __init__(self, in_channels: int, mid: int, out: int, *, padding: str, batch_norm: bool) -> None:
        super().__init__(
            ConvNormAct3d(in_channels, mid, padding=padding, batch_norm=batch_norm),
            ConvNormAct3d(mid, out, padding=padding, batch_norm=batch_norm),
        )


def center_crop3d(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Crop the centre ``size`` (D, H, W) of an ``(N, C, D, H, W)`` tensor (the paper's skip cropping)."""
    starts = [(s - t) // 2 for s, t in zip(x.shape[-3:], size)]
    return x[..., *(slice(a, a + t) for a, t in zip(starts, size))]


class UNet3D(nn.Module):
    """3-D U-Net mapping ``(N, in_channels, D, H, W)`` to ``(N, num_classes, D', H', W')`` logits.

    ``D' = D`` for ``padding="same"``; ``D' = D - 2 * output_margin`` for ``padding="valid"``.

    Parameters
    ----------
    num_classes, in_channels
        Output labels and input channels (paper: 3 and 3).
    base_channels
        Width of the first convolution (paper: 32); level ``l`` has ``base * 2**l`` then
        ``base * 2**(l + 1)`` channels.
    depth
        Resolution levels (paper: 4 = three 2x2x2 poolings).
    padding
        ``"same"`` (default; any size, padded internally) or ``"valid"`` (the paper's).
    batch_norm
        BatchNorm after every 3x3x3 convolution (the paper's, default).
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 1,
        *,
        base_channels: int = 32,
        depth: int = 4,
        padding: str = "same",
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        if depth < 1:
            raise ValueError(f"depth (resolution levels) must be >= 1, got {depth}")
        if base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}")
        self.padding, self.depth = padding, depth
        self.num_classes, self.in_channels = num_classes, in_channels
        kw = {"padding": padding, "batch_norm": batch_norm}
        self.down = nn.ModuleList()
        c_in = in_channels
        for level in range(depth):  # 32 -> 64 | 64 -> 128 | 128 -> 256 | 256 -> 512
            mid, out = base_channels * 2**level, base_channels * 2 ** (level + 1)
            self.down.append(DoubleConv3d(c_in, mid, out, **kw))
            c_in = out
        self.up = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        for level in reversed(range(depth - 1)):
            skip = base_channels * 2 ** (level + 1)
            # "up-convolution" keeping the channels (512 -> 512); no bias, as the paper's count implies
            self.up.append(nn.ConvTranspose3d(c_in, c_in, kernel_size=2, stride=2, bias=False))
            self.up_convs.append(DoubleConv3d(c_in + skip, skip, skip, **kw))
            c_in = skip
        self.head = nn.Conv3d(c_in, num_classes, kernel_size=1)

    @property
    def output_margin(self) -> int:
        """Voxels lost per side with valid convolutions (44 for 4 levels: 132 -> 44)."""
        if self.padding == "same":
            return 0
        # Down, level i loses 4 voxels at scale 2**i; up, level i (< depth - 1) loses 4 at 2**i.
        lost = sum(4 * 2**i for i in range(self.depth)) + sum(4 * 2**i for i in range(self.depth - 1))
        return lost // 2

    def valid_input_size(self, size: int) -> bool:
        """Whether a valid-padding input side length passes every pooling evenly and leaves an output."""
        for _ in range(self.depth - 1):
            size -= 4
            if size <= 0 or size % 2:
                return False
            size //= 2
        size -= 4  # bottom level
        for _ in range(self.depth - 1):
            if size <= 0:
                return False
            size = 2 * size - 4  # up-convolution, then two valid convolutions
        return size > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"UNet3D expects an (N, C, D, H, W) input, got shape {tuple(x.shape)}")
        size = tuple(x.shape[-3:])
        if self.padding == "same":
            multiple = 2 ** (self.depth - 1)
            pads = [(-s) % multiple for s in size]
            if any(pads):
                mode = "reflect" if all(p < s for p, s in zip(pads, size)) else "replicate"
                x = F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]), mode=mode)
        elif not all(self.valid_input_size(s) for s in size):
            shape = "x".join(map(str, size))
            raise ValueError(
                f"UNet3D with valid padding cannot take a {shape} input: each side must be 4 more than even "
                f"at every level (e.g. 132x132x116 -> 44x44x28); use padding='same' or overlap-tile inference"
            )
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)  # (N, base * 2**(i+1), D / 2**i, H / 2**i, W / 2**i)
            if i < self.depth - 1:
                skips.append(x)
                x = F.max_pool3d(x, 2)
        for up, conv, skip in zip(self.up, self.up_convs, reversed(skips)):
            x = up(x)  # (N, C, 2D, 2H, 2W): channels kept
            x = conv(torch.cat([center_crop3d(skip, tuple(x.shape[-3:])), x], dim=1))
        x = self.head(x)  # (N, num_classes, D', H', W')
        if self.padding == "same":
            x = x[..., : size[0], : size[1], : size[2]]
        return x


@register_model("unet3d", paper=PAPER, segmenter=VolumeSegmenter)
def unet3d(num_classes: int = 2, in_channels: int = 1, **options) -> UNet3D:
    """3-D U-Net (Çiçek et al. 2016): paper widths 32..512 and 4 levels by default."""
    return UNet3D(num_classes, in_channels, **options)
