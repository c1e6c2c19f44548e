"""Receptive field of stacked dilated convolutions: the formula, autograd, and the gridding artefact.

A stride-1 convolution with a ``k x k`` kernel dilated by ``r`` (taps ``r`` pixels apart) widens the
receptive field by ``(k - 1) r``, so a stack with dilations ``r_1 .. r_L`` sees

    RF_L = 1 + sum_i (k - 1) r_i            (k = 3, r = 1, 2, 4: 1 + 2 + 4 + 8 = 15)

pixels per axis: exponential growth with exponential rates, no down-sampling (Yu & Koltun 2016).
:func:`empirical_receptive_field` checks the formula on a real ``nn.Conv2d`` stack: the gradient of
the centre output pixel w.r.t. the input is non-zero exactly on the pixels that output depends on.
The extent of that support is ``RF_L``, but it need not be filled: with equal rates (2, 2, 2) every
tap lands on even offsets and the odd ones are never touched - the *gridding* artefact. Hybrid
rates without a common factor (1, 2, 5: Wang et al.'s HDC) cover the extent fully.

References
----------
.. [1] F. Yu, V. Koltun, "Multi-scale context aggregation by dilated convolutions", ICLR 2016.
.. [2] P. Wang et al., "Understanding convolution for semantic segmentation", WACV 2018 (HDC).
.. [3] W. Luo et al., "Understanding the effective receptive field in deep convolutional neural
   networks", NeurIPS 2016 (the gradient as the receptive field).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def _check(rates: Sequence[int], kernel: int) -> list[int]:
    rates = [int(r) for r in rates]
    if not rates:
        raise ValueError("rates: give at least one dilation rate")
    if min(rates) < 1:
        raise ValueError(f"rates must be positive integers, got {rates}")
    if int(kernel) < 1:
        raise ValueError(f"kernel size must be a positive integer, got {kernel}")
    return rates


def analytic_receptive_field(rates: Sequence[int], kernel: int = 3) -> list[int]:
    """Receptive field side after each layer: ``1 + sum_{i <= l} (kernel - 1) r_i``."""
    rates = _check(rates, kernel)
    return [1 + (int(kernel) - 1) * int(s) for s in np.cumsum(rates)]


def dilated_stack(
    rates: Sequence[int], kernel: int = 3, *, weights: str = "ones", seed: int = 0
) -> nn.Sequential:
    """One-channel stride-1 ``nn.Conv2d`` layers without bias or padding, one per rate (float64).

    ``weights="ones"`` makes the gradient count the paths from each input pixel to the output;
    ``"random"`` draws positive weights in ``[0.1, 1)`` (no cancellation, same support)."""
    rates = _check(rates, kernel)
    if weights not in ("ones", "random"):
        raise ValueError(f"weights must be 'ones' or 'random', got {weights!r}")
    generator = torch.Generator().manual_seed(seed)
    layers = []
    for r in rates:
        conv = nn.Conv2d(1, 1, int(kernel), dilation=r, bias=False).double()
        with torch.no_grad():
            if weights == "ones":
                conv.weight.fill_(1.0)
            else:
                conv.weight.copy_(0.1 + 0.9 * torch.rand(conv.weight.shape, generator=generator))
        layers.append(conv)
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class LayerField:
    """The receptive field of the centre output after ``layer`` layers of the stack."""

    layer: int  # 1-based
    rate: int
    analytic: int  # 1 + sum (k - 1) r_i
    extent: int  # side of the bounding box of the non-zero gradient (must equal ``analytic``)
    touched: int  # input pixels with non-zero gradient
    gradient: np.ndarray  # (N, N) d y_centre / d x on the common input grid

    @property
    def coverage(self) -> float:
        """Fraction of the ``extent x extent`` box the output actually depends on (1 = no holes)."""
        return self.touched / self.extent**2


def empirical_receptive_field(
    rates: Sequence[int], kernel: int = 3, *, weights: str = "ones", margin: int = 1, seed: int = 0
) -> list[LayerField]:
    """Autograd receptive field after each layer of :func:`dilated_stack`.

    The input is ``N x N`` with ``N = RF_L + 2 margin`` (the whole stack's field plus a margin), the
    same for every layer so the maps can be compared; for the first ``l`` layers the output pixel is
    the centre one of their (valid, unpadded) output, and its gradient w.r.t. the input is returned.
    """
    rates = _check(rates, kernel)
    stack = dilated_stack(rates, kernel, weights=weights, seed=seed)
    analytic = analytic_receptive_field(rates, kernel)
    side = analytic[-1] + 2 * int(margin)
    fields = []
    for depth in range(1, len(rates) + 1):
        x = torch.zeros(1, 1, side, side, dtype=torch.float64, requires_grad=True)
        y = stack[:depth](x)  # (1, 1, side - RF + 1, side - RF + 1)
        centre = (y.shape[-1] - 1) // 2
        (gradient,) = torch.autograd.grad(y[0, 0, centre, centre], x)
        gradient = gradient[0, 0].numpy()
        rows, cols = np.nonzero(gradient)
        extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
        fields.append(
            LayerField(depth, rates[depth - 1], analytic[depth - 1], int(extent), len(rows), gradient)
        )
    return fields


def support_picture(gradient: np.ndarray, *, touched: str = "#", hole: str = ".") -> str:
    """The bounding box of the non-zero gradient as text: ``touched`` where it depends, ``hole`` not."""
    rows, cols = np.nonzero(gradient)
    box = gradient[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] != 0
    return "\n".join(" ".join(touched if v else hole for v in row) for row in box)
