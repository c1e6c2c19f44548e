"""Overlap-tile inference (Ronneberger et al., "U-Net", MICCAI 2015, Fig. 2): predict a large image in
tiles whose receptive field reaches past the tile by mirroring the image at its borders.

A model that declares ``output_margin > 0`` (valid convolutions: its output is smaller than its input
by that many pixels on each side) is run tile by tile on the mirror-padded image, and the output tiles
are stitched without seams. Models without a margin (``same`` padding) run in one pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
    grow until ``tile + 2 * margin`` is valid. Returns ``(N, K, H, W)``.
    """
    n, _, h, w = x.shape
    th, tw = min(tile, _round_up(h, 4)), min(tile, _round_up(w, 4))
    while not (model.valid_input_size(th + 2 * margin) and model.valid_input_size(tw + 2 * margin)):
        th += not model.valid_input_size(th + 2 * margin)
        tw += not model.valid_input_size(tw + 2 * margin)
    ph, pw = _round_up(h, th) - h, _round_up(w, tw) - w
    padded = F.pad(x, (margin, margin + pw, margin, margin + ph), mode="reflect")
    out = None
    for top in range(0, h + ph, th):
        for left in range(0, w + pw, tw):
            y = model(padded[..., top : top + th + 2 * margin, left : left + tw + 2 * margin])
            if out is None:
                out = y.new_zeros((n, y.shape[1], h + ph, w + pw))
            out[..., top : top + th, left : left + tw] = y
    return out[..., :h, :w]


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m
