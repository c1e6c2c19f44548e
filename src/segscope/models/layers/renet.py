"""ReNet layer: bidirectional RNN sweeps over the rows and columns of a feature map.

F. Visin, K. Kastner, K. Cho, M. Matteucci, A. Courville, Y. Bengio, "ReNet: A Recurrent Neural Network
Based Alternative to Convolutional Networks", arXiv:1505.00393, 2015 (section 2, Fig. 1).

Reproduced (section 2 / Fig. 1): the input is split into non-overlapping ``ph x pw`` patches, each
flattened to a vector (channel-major: ``C * ph * pw`` features, the order of ``pixel_unshuffle``); two
RNNs sweep every column of patches, one top-down and one bottom-up, and their hidden states are
concatenated; two more RNNs then sweep every row of that result, left-right and right-left. The output
at a patch therefore depends on the whole image, and has ``2 * hidden`` channels at ``1 / patch`` of
the input resolution.

Implementation: each sweep is one call to a bidirectional ``torch.nn.GRU`` (or ``LSTM``) over all
columns at once (``N * W`` sequences of length ``H``), then over all rows (``N * H`` sequences of
length ``W``) - never a Python loop over pixels.

Departures: PyTorch's GRU/LSTM have two bias vectors per gate (``b_ih`` and ``b_hh``) where the paper's
Theano/Lasagne layers have one (3 * hidden more parameters per GRU direction, 4 * hidden per LSTM
direction); the weights keep PyTorch's default initialisation; the initial hidden state is zero and
not learned (as the authors' configuration).
"""

from __future__ import annotations

import torch
from torch import nn

RNN_TYPES = {"gru": nn.GRU, "lstm": nn.LSTM}


def as_pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    ph, pw = value
    return int(ph), int(pw)


def patchify(x: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """``(N, C, H, W) -> (N, C * ph * pw, H / ph, W / pw)``: non-overlapping patches, each flattened."""
    ph, pw = patch
    if (ph, pw) == (1, 1):
        return x
    n, c, h, w = x.shape
    if h % ph or w % pw:
        raise ValueError(f"ReNet input size {h}x{w} is not a multiple of the patch size {ph}x{pw}")
    x = x.reshape(n, c, h // ph, ph, w // pw, pw).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, c * ph * pw, h // ph, w // pw)


class ReNetLayer(nn.Module):
    """One ReNet layer (Visin et al. 2015, Fig. 1): patches, a vertical then a horizontal bidirectional sweep.

    Parameters
    ----------
    in_channels : int
        Channels of the input map.
    hidden : int
        Hidden units of each of the four RNNs; the output has ``2 * hidden`` channels.
    patch_size : int or (int, int)
        Height and width of the non-overlapping patches (1 keeps the resolution).
    rnn : {"gru", "lstm"}
        The recurrent unit (the ReSeg experiments use GRUs).

    Shapes: ``(N, in_channels, H, W) -> (N, 2 * hidden, H / ph, W / pw)``; ``H`` and ``W`` must be
    multiples of the patch size (a one-line ``ValueError`` otherwise).
    """

    def __init__(
        self, in_channels: int, hidden: int, *, patch_size: int | tuple[int, int] = 1, rnn: str = "gru"
    ) -> None:
        super().__init__()
        if rnn not in RNN_TYPES:
            raise ValueError(f"rnn must be one of {', '.join(RNN_TYPES)}, got {rnn!r}")
        if in_channels < 1 or hidden < 1:
            raise ValueError(f"in_channels and hidden must be positive, got {in_channels} and {hidden}")
        self.patch_size = as_pair(patch_size)
        if min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be positive, got {patch_size}")
        self.in_channels = in_channels
        self.hidden = hidden
        self.out_channels = 2 * hidden
        features = in_channels * self.patch_size[0] * self.patch_size[1]
        cls = RNN_TYPES[rnn]
        self.vertical_rnn = cls(features, hidden, batch_first=True, bidirectional=True)
        self.horizontal_rnn = cls(2 * hidden, hidden, batch_first=True, bidirectional=True)

    def sweep_vertical(self, x: torch.Tensor) -> torch.Tensor:
        """Down and up every column: ``(N, F, H, W) -> (N, 2 * hidden, H, W)`` as ``N * W`` sequences."""
        n, f, h, w = x.shape
        columns = x.permute(0, 3, 2, 1).reshape(n * w, h, f)  # (N*W, H, F): one sequence per column
        out, _ = self.vertical_rnn(columns)  # (N*W, H, 2*hidden): [down, up]
        return out.reshape(n, w, h, -1).permute(0, 3, 2, 1)

    def sweep_horizontal(self, x: torch.Tensor) -> torch.Tensor:
        """Right and left along every row: ``(N, 2 * hidden, H, W) -> (N, 2 * hidden, H, W)``."""
        n, f, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(n * h, w, f)  # (N*H, W, F): one sequence per row
        out, _ = self.horizontal_rnn(rows)  # (N*H, W, 2*hidden): [right, left]
        return out.reshape(n, h, w, -1).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = patchify(x, self.patch_size)  # (N, C*ph*pw, H/ph, W/pw)
        return self.sweep_horizontal(self.sweep_vertical(patches)).contiguous()

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, hidden={self.hidden}, patch_size={self.patch_size}"
