"""Convolution and transposed convolution written as one matrix product.

A 2-D convolution (deep-learning convention: cross-correlation) of an input ``x`` of shape
``(C_in, H, W)`` with a kernel ``w`` of shape ``(C_out, C_in, kh, kw)`` is linear in ``x``, so there is
a matrix ``C`` of shape ``(C_out * H_out * W_out, C_in * H * W)`` with::

    conv2d(x, w).ravel() == C @ x.ravel()
    conv_transpose2d(y, w).ravel() == C.T @ y.ravel()        # the "transposed" convolution

Each row of ``C`` is the kernel laid over one output position; padding rows/columns simply fall
outside the input and are dropped. The transposed convolution is literally the transpose: it
scatters every output value back onto the input positions that produced it (the gradient of the
convolution with respect to its input), which is why it up-samples when ``stride > 1``.

Written by hand on purpose (teaching): libraries compute the same thing with im2col/GEMM but never
expose the matrix. It is built with :mod:`scipy.sparse` because ``C`` has only
``C_in * kh * kw`` non-zeros per row.

References
----------
.. [1] V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
   arXiv:1603.07285, 2016 (section 4, "Transposed convolution arithmetic").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

IntPair = int | tuple[int, int]

#: The lecture's worked example: a 4x4 input, a 3x3 kernel, their 2x2 convolution, a 2x2 map to
#: transpose-convolve and its 4x4 result.
LECTURE_INPUT = np.array([[4, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]], dtype=np.float64)
LECTURE_KERNEL = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]], dtype=np.float64)
LECTURE_CONV_OUTPUT = np.array([[122, 148], [126, 134]], dtype=np.float64)
LECTURE_TRANSPOSED_INPUT = np.array([[2, 1], [4, 4]], dtype=np.float64)
LECTURE_TRANSPOSED_OUTPUT = np.array(
    [[2, 9, 6, 1], [6, 29, 30, 7], [10, 29, 33, 13], [12, 24, 16, 4]], dtype=np.float64
)


def _pair(value: IntPair, name: str, *, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < minimum for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _geometry(
    stride: IntPair, padding: IntPair, dilation: IntPair
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    return (
        _pair(stride, "stride", minimum=1),
        _pair(padding, "padding", minimum=0),
        _pair(dilation, "dilation", minimum=1),
    )


def conv_output_shape(
    input_hw: Sequence[int],
    kernel_hw: Sequence[int],
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> tuple[int, int]:
    """``(H_out, W_out)`` of a convolution: ``floor((H + 2p - d (k - 1) - 1) / s) + 1`` per axis."""
    s, p, d = _geometry(stride, padding, dilation)
    out = tuple((n + 2 * p[a] - d[a] * (kernel_hw[a] - 1) - 1) // s[a] + 1 for a, n in enumerate(input_hw))
    if min(out) < 1:
        raise ValueError(
            f"kernel {tuple(kernel_hw)} (dilation {d}) does not fit input {tuple(input_hw)} with padding {p}"
        )
    return out[0], out[1]


def transposed_output_padding(
    input_hw: Sequence[int],
    kernel_hw: Sequence[int],
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> tuple[int, int]:
    """``output_padding`` that makes ``conv_transpose2d`` return exactly ``input_hw``.

    With ``stride > 1`` several input sizes give the same convolution output size; the transposed
    convolution is ambiguous by up to ``stride - 1`` pixels and PyTorch resolves it with
    ``output_padding``. ``C.T`` has no ambiguity: its shape fixes the size.
    """
    out = conv_output_shape(input_hw, kernel_hw, stride, padding, dilation)
    s, p, d = _geometry(stride, padding, dilation)
    return tuple(  # type: ignore[return-value]
        input_hw[a] - ((out[a] - 1) * s[a] - 2 * p[a] + d[a] * (kernel_hw[a] - 1) + 1) for a in range(2)
    )


def conv_matrix(
    kernel: np.ndarray,
    input_shape: Sequence[int],
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    *,
    sparse: bool = True,
) -> sp.csr_array | np.ndarray:
    """The matrix ``C`` with ``conv2d(x, kernel).ravel() == C @ x.ravel()``.

    Parameters
    ----------
    kernel : array, shape (kh, kw) or (C_out, C_in, kh, kw)
        Cross-correlation weights, laid out as ``torch.nn.Conv2d.weight``.
    input_shape : (H, W) or (C_in, H, W)
        Shape of one input image (no batch axis). ``(H, W)`` requires a 2-D kernel or ``C_in == 1``.
    stride, padding, dilation : int or (int, int)
        As in :func:`torch.nn.functional.conv2d` (zero padding).
    sparse : bool
        Return a :class:`scipy.sparse.csr_array` (default) or a dense ``ndarray``.

    Returns
    -------
    C : shape (C_out * H_out * W_out, C_in * H * W)
        Row ``(o, i, j)`` (C order) holds the kernel of output channel ``o`` placed at output
        position ``(i, j)``. ``C.T @ y.ravel()`` is ``conv_transpose2d(y, kernel, stride, padding,
        output_padding=transposed_output_padding(...), dilation)``.

    Examples
    --------
    The lecture's worked example:

    >>> C = conv_matrix(LECTURE_KERNEL, (4, 4), sparse=False)
    >>> (C @ LECTURE_INPUT.ravel()).reshape(2, 2).tolist()
    [[122.0, 148.0], [126.0, 134.0]]
    >>> (C.T @ LECTURE_TRANSPOSED_INPUT.ravel()).reshape(4, 4)[1].tolist()
    [6.0, 29.0, 30.0, 7.0]
    """
    kernel = np.asarray(kernel)
    if kernel.ndim == 2:
        kernel = kernel[None, None]
    if kernel.ndim != 4:
        raise ValueError(f"kernel must have shape (kh, kw) or (C_out, C_in, kh, kw), got {kernel.shape}")
    c_out, c_in, kh, kw = kernel.shape
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[0] != c_in:
        raise ValueError(f"input_shape {tuple(input_shape)} does not match the kernel's C_in = {c_in}")
    _, h, w = shape
    (sh, sw), (ph, pw), (dh, dw) = _geometry(stride, padding, dilation)
    h_out, w_out = conv_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))

    # Every (output channel, output row, output col, input channel, kernel row, kernel col) pairs
    # one output pixel with one input pixel through one weight: enumerate them all at once.
    o, i, j, c, u, v = np.meshgrid(
        np.arange(c_out),
        np.arange(h_out),
        np.arange(w_out),
        np.arange(c_in),
        np.arange(kh),
        np.arange(kw),
        indexing="ij",
    )
    rows_in = i * sh - ph + u * dh  # input row read by kernel tap (u, v) at output (i, j)
    cols_in = j * sw - pw + v * dw
    inside = (rows_in >= 0) & (rows_in < h) & (cols_in >= 0) & (cols_in < w)  # padding taps read zeros
    row_index = (o * h_out + i) * w_out + j
    col_index = (c * h + rows_in) * w + cols_in
    values = kernel[o, c, u, v]
    matrix = sp.csr_array(
        (values[inside], (row_index[inside], col_index[inside])),
        shape=(c_out * h_out * w_out, c_in * h * w),
    )
    return matrix if sparse else matrix.toarray()


def convolve(
    x: np.ndarray, kernel: np.ndarray, stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1
) -> np.ndarray:
    """``conv2d`` of one image ``x`` (H, W) or (C_in, H, W) computed as ``C @ x``; returns (C_out, H', W')."""
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel)
    k4 = kernel[None, None] if kernel.ndim == 2 else kernel
    matrix = conv_matrix(k4, x.shape, stride, padding, dilation)
    h_out, w_out = conv_output_shape(x.shape[-2:], k4.shape[-2:], stride, padding, dilation)
    return (matrix @ x.ravel()).reshape(k4.shape[0], h_out, w_out)


def transposed_convolve(
    y: np.ndarray,
    kernel: np.ndarray,
    output_shape: Sequence[int],
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> np.ndarray:
    """Transposed convolution of ``y`` (C_out, H', W') computed as ``C.T @ y``.

    ``output_shape`` is the ``(H, W)`` of the convolution input this transposes (it fixes the
    ``output_padding`` ambiguity). Returns ``(C_in, H, W)``.
    """
    y = np.asarray(y, dtype=np.float64)
    kernel = np.asarray(kernel)
    k4 = kernel[None, None] if kernel.ndim == 2 else kernel
    c_in = k4.shape[1]
    h, w = (int(v) for v in output_shape[-2:])
    matrix = conv_matrix(k4, (c_in, h, w), stride, padding, dilation)
    if y.size != matrix.shape[0]:
        raise ValueError(
            f"y has {y.size} values but the convolution of a {(c_in, h, w)} input gives {matrix.shape[0]}"
        )
    return (matrix.T @ y.ravel()).reshape(c_in, h, w)
