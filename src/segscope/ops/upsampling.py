"""Learnable up-sampling initialised as bilinear interpolation (FCN's transposed convolutions).

FCN initialises every up-sampling ("deconvolution") layer with a bilinear kernel on the diagonal
(class ``c`` only feeds class ``c``) so that, before training, it *is* bilinear interpolation:

* kernel side ``2f - f % 2``, stride ``f``;
* ``padding = f // 2`` ("same" placement): ``n`` inputs give exactly ``n f`` outputs, aligned like
  ``F.interpolate(mode="bilinear", align_corners=False)``; they agree everywhere except the outer
  ``f // 2`` output pixels of each border, where the transposed convolution sees zeros outside the
  input (interpolation replicates the edge);
* ``padding = 0`` (Caffe, used by FCN with its crop layers): ``(n - 1) f + 2f - f % 2`` outputs, the
  same values shifted by ``f // 2``: crop ``f // 2`` pixels to realign.

References
----------
.. [1] J. Long, E. Shelhamer, T. Darrell, "Fully convolutional networks for semantic
   segmentation", CVPR 2015, section 3.3; ``surgery.upsample_filt`` in the authors' code.
"""

from __future__ import annotations

import torch
from torch import nn

from segscope.ops.interpolation import kernel_2d


def bilinear_kernel(factor: int) -> torch.Tensor:
    """The ``(2f - f % 2, 2f - f % 2)`` bilinear up-sampling kernel of an integer ``factor``."""
    return torch.from_numpy(kernel_2d("linear", factor)).float()


def bilinear_weight(channels: int, factor: int) -> torch.Tensor:
    """``(channels, channels, k, k)`` transposed-convolution weight: the bilinear kernel on the diagonal."""
    k = bilinear_kernel(factor)
    weight = torch.zeros(channels, channels, *k.shape)
    weight[range(channels), range(channels)] = k
    return weight


def bilinear_transposed_conv(
    channels: int, factor: int, *, padding: str = "same", bias: bool = False
) -> nn.ConvTranspose2d:
    """An ``nn.ConvTranspose2d`` up-sampling ``channels`` maps by ``factor``, initialised bilinear.

    ``padding="same"`` gives ``n * factor`` outputs aligned with ``align_corners=False``
    interpolation; ``padding="caffe"`` (no padding) is FCN's original layer, to be cropped by
    ``factor // 2`` (see the module docstring). The weight stays learnable.
    """
    if int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    if padding not in ("same", "caffe"):
        raise ValueError(f"padding must be 'same' or 'caffe', got {padding!r}")
    size = 2 * factor - factor % 2
    layer = nn.ConvTranspose2d(
        channels,
        channels,
        size,
        stride=factor,
        padding=factor // 2 if padding == "same" else 0,
        bias=bias,
    )
    with torch.no_grad():
        layer.weight.copy_(bilinear_weight(channels, factor))
        if bias:
            layer.bias.zero_()
    return layer
