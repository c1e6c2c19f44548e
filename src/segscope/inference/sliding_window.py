"""N-D sliding-window inference: one loop for 2-D tiles and 3-D patches alike.

A model too large (or trained too small) for a whole image or volume is run on overlapping windows; the
window outputs are accumulated with blend weights (Gaussian: centres count more than borders, where
``same``-padded convolutions see padding instead of context) and divided by the summed weights.

Window placement follows MONAI's ``sliding_window_inference`` (``monai.inferers``): along each axis the
step is ``int(window * (1 - overlap))`` (at least 1; the whole axis when the window fits it exactly),
windows start at multiples of the step and the last one is shifted back to end at the input's end. The
Gaussian weights are MONAI's too (``compute_importance_map``: ``exp(-x**2 / (2 sigma**2))`` per axis over
the window's centred coordinates, ``sigma = sigma_scale * window``, clamped below at ``max(min, 1e-3)``).
Inputs shorter than the window along an axis are padded symmetrically to the window (``pad_mode``:
``"constant"`` zeros as MONAI's default, or ``"reflect"``) and the result is cropped back.

Valid-convolution models (``margin > 0``: the output is smaller than its input by ``margin`` per side)
follow the overlap-tile strategy of Ronneberger et al., "U-Net", MICCAI 2015, Fig. 2: the input is
mirror-padded by ``margin`` and each window's output covers the window's centre
(``window - 2 * margin`` per axis), so the windows tile the *output* grid. ``align`` makes window starts
multiples of a step (a U-Net's pooling phase stays the same in every tile, so tiles join seamlessly); the
last aligned window may then run past the end, which is padded (with the mirror when ``margin > 0``)
and cropped off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import product

import torch
import torch.nn.functional as F

BLENDS = ("gaussian", "constant")


def window_starts(size: int, tile: int, step: int, align: int = 1) -> list[int]:
    """Start offsets of ``tile``-long windows every ``step`` along an axis of ``size`` (MONAI's rule), the
    last moved back to end at ``size``; then rounded up to multiples of ``align`` (may run past the end)."""
    span = max(size, tile)
    starts: list[int] = []
    k = 0
    while True:
        s = -(-min(k * step, span - tile) // align) * align
        if starts and s - starts[-1] > tile:
            raise ValueError(f"windows of {tile} every {step}, aligned to {align}, leave gaps")
        if not starts or s != starts[-1]:
            starts.append(s)
        if s + tile >= span:
            return starts
        k += 1


def blend_weights(shape: Sequence[int], blend: str = "gaussian", sigma_scale: float = 0.125) -> torch.Tensor:
    """Blend weights of one window output, ``shape`` (spatial); Gaussian as MONAI's importance map."""
    if blend == "constant":
        return torch.ones(tuple(shape))
    if blend != "gaussian":
        raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    w = torch.ones(())
    for i, n in enumerate(shape):
        x = torch.arange(n, dtype=torch.float32) - (n - 1) / 2.0
        g = torch.exp(-(x**2) / (2 * (sigma_scale * n) ** 2))
        w = w.unsqueeze(-1) * g.view((1,) * i + (n,))
    return w.clamp(min=max(float(w.min()), 1e-3))


def _pad(x: torch.Tensor, before: Sequence[int], after: Sequence[int], mode: str) -> torch.Tensor:
    """Pad the spatial axes of ``x``; ``reflect`` falls back to ``replicate`` when a side is too short."""
    if not any(before) and not any(after):
        return x
    pads = [p for b, a in zip(reversed(before), reversed(after)) for p in (b, a)]
    if mode == "constant":
        return F.pad(x, pads)
    short = any(max(b, a) >= s for b, a, s in zip(before, after, x.shape[2:]))
    return F.pad(x, pads, mode="replicate" if short else "reflect")


def _per_axis(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    out = (int(value),) * ndim if isinstance(value, int) else tuple(int(v) for v in value)
    if len(out) != ndim:
        raise ValueError(f"{name} needs {ndim} values (one per spatial axis), got {value!r}")
    return out


def sliding_window(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    window: int | Sequence[int],
    overlap: float = 0.5,
    blend: str = "gaussian",
    sigma_scale: float = 0.125,
    batch_size: int = 1,
    margin: int = 0,
    *,
    pad_mode: str = "constant",
    align: int | Sequence[int] = 1,
) -> torch.Tensor:
    """Logits of ``model`` over ``x`` computed window by window and blended.

    Parameters
    ----------
    model
        Maps ``(B, C, *window)`` to ``(B, K, *(window - 2 * margin))``.
    x
        ``(N, C, *spatial)`` with 2 or 3 spatial axes.
    window
        The model's input size per spatial axis (one int for all axes).
    overlap
        Fraction of a window shared with its neighbour, in ``[0, 1)`` (MONAI's meaning).
    blend
        ``"gaussian"`` (MONAI's importance map, ``sigma = sigma_scale * window output``) or ``"constant"``.
    batch_size
        Windows per model call (each window taken from all ``N`` inputs at once: ``B = N * batch_size``).
    margin
        Voxels per side a valid-convolution model loses; the input is mirror-padded by it.
    pad_mode
        How inputs shorter than the window are padded (``margin == 0``): ``"constant"`` (zeros) or
        ``"reflect"``.
    align
        Window starts (in output coordinates) are multiples of ``align`` per axis.

    Returns
    -------
    ``(N, K, *spatial)`` logits in the model's output dtype (accumulated in float32 or float64).
    """
    ndim = x.ndim - 2
    if ndim not in (2, 3):
        raise ValueError(f"sliding_window expects (N, C, H, W) or (N, C, D, H, W), got {tuple(x.shape)}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if pad_mode not in ("constant", "reflect"):
        raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
    if batch_size < 1 or margin < 0:
        raise ValueError(f"batch_size must be >= 1 and margin >= 0, got {batch_size}, {margin}")
    window = _per_axis(window, ndim, "window")
    aligns = _per_axis(align, ndim, "align")
    tile = tuple(w - 2 * margin for w in window)  # output size of one window
    if min(tile) < 1 or min(aligns) < 1:
        raise ValueError(f"window {window} leaves no output with margin {margin} (or align < 1)")
    weights = blend_weights(tile, blend, sigma_scale)

    size = tuple(x.shape[2:])
    crop = [slice(None)] * ndim
    if margin == 0:  # MONAI: pad short axes symmetrically to the window
        deficit = [max(t - s, 0) for t, s in zip(tile, size)]
        before = [d // 2 for d in deficit]
        x = _pad(x, before, [d - b for d, b in zip(deficit, before)], pad_mode)
        crop = [slice(b, b + s) for b, s in zip(before, size)]
    grid = tuple(x.shape[2:])  # the output grid the windows cover
    steps = [t if t == g else max(int(t * (1 - overlap)), 1) for t, g in zip(tile, grid)]
    starts = [window_starts(g, t, s, a) for g, t, s, a in zip(grid, tile, steps, aligns)]
    extra = [st[-1] + t - g for st, t, g in zip(starts, tile, grid)]  # aligned windows past the end
    if margin:  # overlap-tile: the mirror by the margin, and past the end, in one reflection
        x = _pad(x, [margin] * ndim, [margin + e for e in extra], "reflect")
    else:
        x = _pad(x, [0] * ndim, extra, pad_mode)

    out = norm = None
    corners = list(product(*starts))
    for first in range(0, len(corners), batch_size):
        group = corners[first : first + batch_size]
        batch = torch.cat([x[(..., *(slice(c, c + w) for c, w in zip(cs, window)))] for cs in group])
        y = model(batch)  # (len(group) * N, K, *tile)
        if tuple(y.shape[2:]) != tile:
            raise ValueError(
                f"model output {tuple(y.shape[2:])} for a {window} window; expected {tile} (margin {margin})"
            )
        if out is None:
            acc = torch.float64 if y.dtype == torch.float64 else torch.float32
            full = tuple(g + e for g, e in zip(grid, extra))
            out = torch.zeros((x.shape[0], y.shape[1], *full), dtype=acc, device=y.device)
            norm = torch.zeros(full, dtype=acc, device=y.device)
            weights = weights.to(device=y.device, dtype=acc)
            out_dtype = y.dtype
        for j, cs in enumerate(group):
            region = tuple(slice(c, c + t) for c, t in zip(cs, tile))
            out[(..., *region)] += y[j * x.shape[0] : (j + 1) * x.shape[0]].to(out.dtype) * weights
            norm[region] += weights
    out = out / norm
    out = out[(..., *(slice(0, g) for g in grid))][(..., *crop)]
    return out.to(out_dtype)
