"""Image interpolation written as weight matrices: nearest, (bi)linear and (bi)cubic.

Resizing a signal ``x`` of length ``n_in`` to ``n_out`` samples is linear, ``y = W @ x``, with one
row of ``W`` per output sample holding the interpolation kernel evaluated at the distances to the
input samples. A 2-D resize is separable: ``Y = W_rows @ X @ W_cols.T`` per channel, so the 2-D
kernel is the outer product of the 1-D ones.

The conventions that make libraries disagree, all exposed as arguments here:

* **Where an output sample sits on the input grid.** ``align_corners=False`` (PyTorch default,
  OpenCV, PIL, scikit-image): pixels are unit squares, ``src = (dst + 0.5) * n_in / n_out - 0.5``.
  ``align_corners=True`` (PyTorch option; Caffe/FCN era): the corner pixel *centres* coincide,
  ``src = dst * (n_in - 1) / (n_out - 1)``. OpenCV and PIL have no ``align_corners=True``.
* **Nearest rounding.** PyTorch ``"nearest"`` and OpenCV ``INTER_NEAREST`` take
  ``floor(dst * n_in / n_out)`` (no half-pixel shift: the image drifts by half an input pixel);
  ``"nearest-exact"``, OpenCV ``INTER_NEAREST_EXACT``, PIL and scikit-image take
  ``floor((dst + 0.5) * n_in / n_out)``.
* **The cubic coefficient** of Keys' kernel: ``a = -0.75`` in PyTorch and OpenCV, ``a = -0.5`` in
  PIL (and in PyTorch's antialiased bicubic, which copies PIL). ``a = -0.5`` is the value for which
  the kernel reproduces quadratics (Keys 1981); ``-0.75`` gives a sharper, more overshooting kernel.
* **Borders.** PyTorch and OpenCV clamp the taps' indices into the image (replicate the edge
  pixel); PIL drops the taps that fall outside and renormalises the remaining weights. For the
  (bi)linear kernel the two agree; for the cubic kernel they differ in the outer two pixels.
* **Antialiasing when shrinking.** PIL always (and PyTorch with ``antialias=True``) stretches the
  kernel by the reduction factor so every input pixel contributes (a low-pass filter);
  PyTorch's default and OpenCV ``INTER_LINEAR``/``INTER_CUBIC`` only sample, which aliases.
* **Integer images.** PIL and OpenCV compute ``uint8`` resizes in fixed point and round, so they
  can differ from the exact float result by one grey level; float images agree to ~1e-6.

Written by hand on purpose (teaching): :func:`torch.nn.functional.interpolate`, OpenCV and PIL
compute the same sums but never show the weights.

References
----------
.. [1] R. Keys, "Cubic convolution interpolation for digital image processing",
   IEEE Trans. Acoustics, Speech and Signal Processing 29(6), 1981.
.. [2] PyTorch ``aten/src/ATen/native/UpSample.h``; Pillow ``libImaging/Resample.c``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Keys' cubic coefficient used by PyTorch (``F.interpolate(mode="bicubic")``) and OpenCV.
CUBIC_A_PYTORCH = -0.75
#: Keys' cubic coefficient used by PIL (``Image.BICUBIC``) and PyTorch's antialiased bicubic.
CUBIC_A_PIL = -0.5

_MODES = {
    "nearest": "nearest",
    "nearest-exact": "nearest-exact",
    "linear": "linear",
    "bilinear": "linear",
    "cubic": "cubic",
    "bicubic": "cubic",
}
_SUPPORT = {"nearest": 0.5, "linear": 1.0, "cubic": 2.0}  # kernel half-width in input pixels


def _canonical_mode(mode: str) -> str:
    try:
        return _MODES[mode]
    except KeyError:
        raise ValueError(f"mode must be one of {sorted(_MODES)}, got {mode!r}") from None


def kernel(mode: str, x: np.ndarray | float, *, cubic_a: float = CUBIC_A_PYTORCH) -> np.ndarray:
    """The continuous 1-D interpolation kernel ``k(x)``; ``x`` in input pixels.

    * nearest: box, ``1`` on ``[-0.5, 0.5)``;
    * linear: triangle, ``max(0, 1 - |x|)``;
    * cubic (Keys): ``(a+2)|x|^3 - (a+3)|x|^2 + 1`` for ``|x| <= 1``,
      ``a|x|^3 - 5a|x|^2 + 8a|x| - 4a`` for ``1 < |x| < 2``, else 0.
    """
    mode = _canonical_mode(mode)
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    if mode in ("nearest", "nearest-exact"):
        return ((x >= -0.5) & (x < 0.5)).astype(np.float64)
    if mode == "linear":
        return np.clip(1.0 - ax, 0.0, None)
    a = cubic_a
    near = ((a + 2) * ax - (a + 3)) * ax * ax + 1
    far = ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a
    return np.where(ax <= 1, near, np.where(ax < 2, far, 0.0))


def kernel_2d(mode: str, factor: int, *, cubic_a: float = CUBIC_A_PYTORCH) -> np.ndarray:
    """The separable 2-D kernel of an integer up-sampling ``factor``, sampled on the output grid.

    Side ``f`` (nearest), ``2f - f % 2`` (linear) or ``4f - f % 2`` (cubic): the output samples inside
    the kernel's support, centred on the input sample. ``kernel_2d("linear", f)`` is FCN's
    ``upsample_filt(2f - f % 2)``. It is the outer product of the 1-D kernel with itself.
    """
    mode = _canonical_mode(mode)
    if int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    half_width = _SUPPORT["nearest" if mode == "nearest-exact" else mode]
    # Output samples within the kernel's support; an odd factor puts one on the centre.
    size = factor if half_width == 0.5 else int(2 * half_width * factor) - factor % 2
    positions = (np.arange(size) - (size - 1) / 2) / factor
    k1 = kernel(mode, positions, cubic_a=cubic_a)
    return np.outer(k1, k1)


def source_coordinates(in_size: int, out_size: int, *, align_corners: bool = False) -> np.ndarray:
    """Position of every output sample on the input grid (input pixel centres at 0, 1, ...)."""
    dst = np.arange(out_size, dtype=np.float64)
    if align_corners:
        return dst * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
    return (dst + 0.5) * (in_size / out_size) - 0.5


def interpolation_matrix(
    in_size: int,
    out_size: int,
    mode: str = "linear",
    *,
    align_corners: bool = False,
    cubic_a: float = CUBIC_A_PYTORCH,
    antialias: bool = False,
) -> np.ndarray:
    """The ``(out_size, in_size)`` matrix ``W`` with ``resize(x) == W @ x`` for a 1-D signal.

    Parameters
    ----------
    mode : {"nearest", "nearest-exact", "linear", "cubic"} (aliases "bilinear", "bicubic")
    align_corners : bool
        Corner-pixel-centre alignment (see the module docstring); not defined for nearest modes.
    cubic_a : float
        Keys' coefficient: -0.75 (PyTorch, OpenCV) or -0.5 (PIL).
    antialias : bool
        PIL's resampling (PyTorch ``antialias=True``): the kernel is stretched by the reduction
        factor when shrinking, and taps outside the image are dropped and the weights renormalised.
        Without it taps are clamped into the image (PyTorch default, OpenCV).

    Returns
    -------
    W : ndarray (out_size, in_size), float64; every row sums to 1.
    """
    mode = _canonical_mode(mode)
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got in_size={in_size}, out_size={out_size}")
    if align_corners and mode.startswith("nearest"):
        raise ValueError("align_corners is only defined for linear and cubic modes (as in PyTorch)")
    matrix = np.zeros((out_size, in_size))
    rows = np.arange(out_size)

    if mode.startswith("nearest"):
        # Exact integer arithmetic: floor(dst * in / out) or floor((dst + 0.5) * in / out).
        numerator = rows * in_size if mode == "nearest" else (2 * rows + 1) * in_size
        denominator = out_size if mode == "nearest" else 2 * out_size
        matrix[rows, np.minimum(numerator // denominator, in_size - 1)] = 1.0
        return matrix

    if antialias:
        if align_corners:
            raise ValueError("antialias=True is implemented for align_corners=False only")
        return _antialiased_matrix(in_size, out_size, mode, cubic_a)

    src = source_coordinates(in_size, out_size, align_corners=align_corners)
    if mode == "linear":
        src = np.maximum(src, 0.0)  # PyTorch clamps; with the index clamping below it changes nothing
    first_tap = np.floor(src).astype(np.int64) - (1 if mode == "cubic" else 0)
    for offset in range(4 if mode == "cubic" else 2):
        tap = first_tap + offset
        weight = kernel(mode, src - tap, cubic_a=cubic_a)
        np.add.at(matrix, (rows, np.clip(tap, 0, in_size - 1)), weight)  # clamp = replicate border
    return matrix


def _antialiased_matrix(in_size: int, out_size: int, mode: str, cubic_a: float) -> np.ndarray:
    """PIL's ``precompute_coeffs`` (``libImaging/Resample.c``), also PyTorch's ``antialias=True``."""
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    support = _SUPPORT[mode] * stretch
    matrix = np.zeros((out_size, in_size))
    for dst in range(out_size):
        center = (dst + 0.5) * scale
        first = max(math.trunc(center - support + 0.5), 0)
        last = min(math.trunc(center + support + 0.5), in_size)
        taps = np.arange(first, last)
        weights = kernel(mode, (taps - center + 0.5) / stretch, cubic_a=cubic_a)
        total = weights.sum()
        matrix[dst, taps] = weights / total if total != 0 else weights
    return matrix


def resize(
    image: np.ndarray,
    size: Sequence[int],
    mode: str = "bilinear",
    *,
    align_corners: bool = False,
    cubic_a: float = CUBIC_A_PYTORCH,
    antialias: bool = False,
) -> np.ndarray:
    """Resize ``image`` (H, W) or (H, W, C) to ``size = (H_out, W_out)`` as ``W_r @ X @ W_c.T``.

    Returns float64. Same options as :func:`interpolation_matrix`, applied to both axes.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
    if len(size) != 2:
        raise ValueError(f"size must be (H_out, W_out), got {size!r}")
    options = dict(mode=mode, align_corners=align_corners, cubic_a=cubic_a, antialias=antialias)
    rows = interpolation_matrix(image.shape[0], int(size[0]), **options)
    cols = interpolation_matrix(image.shape[1], int(size[1]), **options)
    return np.einsum("ij,jk...,lk->il...", rows, image, cols)


def scaled_size(in_size: int, scale: float) -> int:
    """``floor(in_size * scale)``, the output size PyTorch uses for a ``scale_factor``."""
    out = math.floor(in_size * scale)
    if out < 1:
        raise ValueError(f"scale {scale} shrinks size {in_size} to nothing")
    return out
