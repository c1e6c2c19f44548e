"""Sliding-window inference streamed over rows: peak memory bounded by a strip of windows, not the image.

:func:`segscope.inference.sliding_window.sliding_window` keeps the whole ``(K, H, W)`` accumulator; on an
8192 x 8192 image with 11 classes that alone is 2.9 GB. Here the windows are visited row by row of the
window grid and the accumulator holds only the output rows that a later window can still touch (one
window's height plus the overlap): when a window row is done, every output row above the next row's
first window is final and is handed to ``emit`` (decision, writing) and dropped. The input is read the
same way, one window at a time, from any :class:`~segscope.inference.large_image.ImageReader`.

Three placements, each a list of :class:`Window` (where to read, which output pixels it gives, with
which weights):

- :func:`blend_plan`: overlapping windows blended with Gaussian or constant weights, MONAI's placement
  and importance map (the same windows and weights as ``sliding_window``, so the two agree to float
  rounding: tested).
- :func:`exact_plan`: non-overlapping output *cores*, each computed from a window that adds ``halo``
  pixels of real context on every side (clipped at the image border, never padded) and starts on a
  multiple of the network's stride. When ``halo`` covers the network's receptive field, every core pixel
  sees exactly what it sees in a whole-image pass, so the tiled output equals the whole-image output to
  float rounding (tested with the halo from :func:`receptive_radius`); a smaller halo trades that
  equality for speed.
- :func:`margin_plan`: the U-Net paper's overlap-tile for valid-convolution models (Ronneberger et al.,
  MICCAI 2015, Fig. 2): output tiles at multiples of ``tile``, inputs mirrored at the image border.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

import numpy as np
import torch

from segscope.inference.sliding_window import blend_weights, window_starts


@dataclass(frozen=True)
class Window:
    """Read ``src`` (rows ``y0:y1``, cols ``x0:x1``; outside the image means mirrored), run the network,
    and add its output block ``crop`` (rows, cols of the network output) to image pixels ``dst``."""

    src: tuple[int, int, int, int]
    dst: tuple[int, int, int, int]
    crop: tuple[int, int, int, int]
    weighted: bool = True  # Gaussian/constant blend weights over the whole output; False: weight 1

    @property
    def src_shape(self) -> tuple[int, int]:
        return self.src[1] - self.src[0], self.src[3] - self.src[2]


def blend_plan(height: int, width: int, window: Sequence[int], overlap: float) -> list[Window]:
    """MONAI's overlapping windows (``window`` = (h, w) no larger than the image)."""
    th, tw = window
    if th > height or tw > width:
        raise ValueError(f"window {th}x{tw} is larger than the {height}x{width} image")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    steps = [t if t == s else max(int(t * (1 - overlap)), 1) for t, s in ((th, height), (tw, width))]
    plan = []
    for y in window_starts(height, th, steps[0]):
        for x in window_starts(width, tw, steps[1]):
            box = (y, y + th, x, x + tw)
            plan.append(Window(box, box, (0, th, 0, tw)))
    return plan


def exact_plan(height: int, width: int, core: int, halo: int, stride: int = 32) -> list[Window]:
    """Cores of ``core`` pixels (a multiple of ``stride``) with ``halo`` pixels of context, windows
    starting on multiples of ``stride`` and clipped to the image."""
    if core < 1 or core % stride:
        raise ValueError(f"core {core} must be a positive multiple of the network stride {stride}")
    halo = -(-max(int(halo), 0) // stride) * stride  # window starts stay on the stride grid
    plan = []
    for y in range(0, height, core):
        for x in range(0, width, core):
            dst = (y, min(y + core, height), x, min(x + core, width))
            src = (
                max(y - halo, 0),
                min(y + core + halo, height),
                max(x - halo, 0),
                min(x + core + halo, width),
            )
            crop = (dst[0] - src[0], dst[1] - src[0], dst[2] - src[2], dst[3] - src[2])
            plan.append(Window(src, dst, crop, weighted=False))
    return plan


def margin_plan(height: int, width: int, tile: Sequence[int], margin: int) -> list[Window]:
    """Output tiles of ``tile`` = (h, w) at multiples of the tile, inputs ``tile + 2 * margin`` mirrored
    past the image; tiles running past the end are cropped (as
    :func:`~segscope.inference.tiling.overlap_tile`)."""
    th, tw = tile
    plan = []
    for y in range(0, height, th):
        for x in range(0, width, tw):
            src = (y - margin, y + th + margin, x - margin, x + tw + margin)
            dst = (y, min(y + th, height), x, min(x + tw, width))
            plan.append(Window(src, dst, (0, dst[1] - y, 0, dst[3] - x), weighted=False))
    return plan


def receptive_radius(net: Callable[[torch.Tensor], torch.Tensor], in_channels: int, size: int = 1024) -> int:
    """Pixels from an output pixel to the farthest input pixel it depends on, measured by autograd: the
    gradient of the centre output (all classes) w.r.t. a random ``size``-square input is non-zero exactly
    on its receptive field (Luo et al., NeurIPS 2016). Returns ``size // 2`` when the field fills the input
    (measure again larger)."""
    x = torch.randn(1, in_channels, size, size, requires_grad=True)
    with torch.enable_grad():
        y = net(x)
        y[0, :, size // 2, size // 2].sum().backward()
    support = (x.grad[0].abs().sum(0) > 0).nonzero()
    return int((support - size // 2).abs().max()) if len(support) else 0


Reader = Callable[[tuple[int, int, int, int]], torch.Tensor]  # src box -> (C, h, w) network input


def stream_logits(
    net: Callable[[torch.Tensor], torch.Tensor],
    read: Reader,
    height: int,
    width: int,
    plan: Sequence[Window],
    emit: Callable[[int, torch.Tensor], None],
    *,
    blend: str = "gaussian",
    sigma_scale: float = 0.125,
    batch_size: int = 1,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Run ``net`` over the windows of ``plan`` and call ``emit(y0, logits)`` with the finished blended
    logits ``(K, rows, width)`` of consecutive output rows from ``y0``, top to bottom, each row once.

    ``read(src)`` gives the ``(C, h, w)`` network input of a window; windows of one plan row with the same
    input shape run ``batch_size`` at a time. ``progress(n)`` is called after every ``n`` windows."""
    rows = [
        list(g) for _, g in groupby(sorted(plan, key=lambda w: (w.dst[0], w.dst[2])), key=lambda w: w.dst[0])
    ]
    starts = [r[0].dst[0] for r in rows] + [height]
    if starts[0] != 0:
        raise ValueError(f"the plan leaves output rows 0:{starts[0]} uncovered")
    reach = np.maximum.accumulate([max(w.dst[1] for w in r) for r in rows])
    depth = int(max(reach[i] - starts[i] for i in range(len(rows))))
    weights: dict[tuple[int, int], torch.Tensor] = {}
    acc = norm = None
    top = 0  # image row of the accumulator's first row
    for i, row in enumerate(rows):
        shift = starts[i] - top
        if acc is not None and shift:
            acc = torch.cat([acc[:, shift:], torch.zeros_like(acc[:, :shift])], 1)
            norm = torch.cat([norm[shift:], torch.zeros_like(norm[:shift])], 0)
        top = starts[i]
        same_shape = [list(g) for _, g in groupby(row, key=lambda w: w.src_shape)]
        for group in same_shape:
            for first in range(0, len(group), batch_size):
                chunk = group[first : first + batch_size]
                y = net(torch.stack([read(w.src) for w in chunk]))
                if acc is None:
                    acc = torch.zeros((y.shape[1], depth, width), dtype=torch.float32)
                    norm = torch.zeros((depth, width), dtype=torch.float32)
                for w, out in zip(chunk, y.float()):
                    wt = _weight(weights, out.shape[1:], blend, sigma_scale) if w.weighted else None
                    cy0, cy1, cx0, cx1 = w.crop
                    dy0, dy1, dx0, dx1 = w.dst
                    block = out[:, cy0:cy1, cx0:cx1]
                    region = (slice(dy0 - top, dy1 - top), slice(dx0, dx1))
                    if wt is None:
                        acc[(slice(None), *region)] += block
                        norm[region] += 1.0
                    else:
                        acc[(slice(None), *region)] += block * wt[cy0:cy1, cx0:cx1]
                        norm[region] += wt[cy0:cy1, cx0:cx1]
                if progress is not None:
                    progress(len(chunk))
        done = starts[i + 1] - top
        if done > 0:
            if (norm[:done] == 0).any():
                raise ValueError(f"the plan leaves pixels in rows {top}:{top + done} uncovered")
            emit(top, acc[:, :done] / norm[:done])


def _weight(cache: dict, shape: Sequence[int], blend: str, sigma_scale: float) -> torch.Tensor:
    key = tuple(int(s) for s in shape)
    if key not in cache:
        cache[key] = blend_weights(key, blend, sigma_scale)
    return cache[key]
