"""Overlap-tile inference (Ronneberger et al., "U-Net", MICCAI 2015, Fig. 2): predict a large image in
tiles whose receptive field reaches past the tile by mirroring the image at its borders.

A model that declares ``output_margin > 0`` (valid convolutions: its output is smaller than its input
by that many pixels on each side) is run tile by tile on the mirror-padded image, and the output tiles
are stitched without seams. Models without a margin (``same`` padding) run in one pass. The tiling loop
itself is :func:`segscope.inference.sliding_window.sliding_window` (non-overlapping windows, aligned to
the tile size); it works for 2-D images and 3-D volumes alike.
"""

from __future__ import annotations

import torch
from torch import nn

from segscope.inference.sliding_window import sliding_window


def predict_logits(
    model: nn.Module, x: torch.Tensor, *, margin: int | None = None, tile: int = 388
) -> torch.Tensor:
    """``model(x)`` for a ``(N, C, H, W)`` batch, through :func:`overlap_tile` when the model has an
    ``output_margin`` (or ``margin`` says so, for a wrapped model); the result covers the input's size."""
    margin = int(getattr(model, "output_margin", 0)) if margin is None else margin
    return overlap_tile(model, x, margin, tile=tile) if margin else model(x)


def overlap_tile(model: nn.Module, x: torch.Tensor, margin: int, tile: int = 388) -> torch.Tensor:
    """Mirror-pad ``x`` by ``margin`` and predict output tiles of at most ``tile`` pixels a side.

    The model must expose ``valid_input_size(n) -> bool`` (which input sizes its pooling accepts); tiles
    grow until ``tile + 2 * margin`` is valid. Tiles start at multiples of the tile size, the image is
    mirrored past its end to a whole number of tiles. ``x`` is ``(N, C, H, W)`` or ``(N, C, D, H, W)``;
    returns ``(N, K, H, W)`` (or ``(N, K, D, H, W)``).
    """
    sizes = [min(tile, _round_up(s, 4)) for s in x.shape[2:]]
    while not all(model.valid_input_size(t + 2 * margin) for t in sizes):
        sizes = [t + (not model.valid_input_size(t + 2 * margin)) for t in sizes]
    window = [t + 2 * margin for t in sizes]
    return sliding_window(
        model, x, window, overlap=0.0, blend="constant", margin=margin, align=sizes, pad_mode="reflect"
    )


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m
