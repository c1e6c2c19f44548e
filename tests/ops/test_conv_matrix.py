"""conv_matrix against torch's conv2d / conv_transpose2d and the lecture's hand-computed example."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from segscope.ops import (
    conv_matrix,
    conv_output_shape,
    convolve,
    transposed_convolve,
    transposed_output_padding,
)

LECTURE_INPUT = [[4, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]]
LECTURE_KERNEL = [[1, 4, 1], [1, 4, 3], [3, 3, 1]]


def test_lecture_example_convolution() -> None:
    matrix = conv_matrix(np.array(LECTURE_KERNEL), (4, 4), sparse=False)
    assert matrix.shape == (4, 16)
    result = matrix @ np.array(LECTURE_INPUT).ravel()
    np.testing.assert_array_equal(result.reshape(2, 2), [[122, 148], [126, 134]])
    # First row: the kernel laid over the top-left 3x3 window of the 4x4 input, zeros elsewhere.
    np.testing.assert_array_equal(matrix[0], [1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0, 0])


def test_lecture_example_transposed() -> None:
    matrix = conv_matrix(np.array(LECTURE_KERNEL), (4, 4))
    result = matrix.T @ np.array([2, 1, 4, 4])
    expected = [[2, 9, 6, 1], [6, 29, 30, 7], [10, 29, 33, 13], [12, 24, 16, 4]]
    np.testing.assert_array_equal(result.reshape(4, 4), expected)
    np.testing.assert_array_equal(
        transposed_convolve(np.array([[2, 1], [4, 4]]), np.array(LECTURE_KERNEL), (4, 4))[0], expected
    )


def test_sparse_and_dense_agree_and_sparsity() -> None:
    kernel = np.arange(9.0).reshape(3, 3) + 1
    sparse = conv_matrix(kernel, (6, 5), padding=1)
    assert sp.issparse(sparse)
    np.testing.assert_array_equal(sparse.toarray(), conv_matrix(kernel, (6, 5), padding=1, sparse=False))
    assert sparse.nnz <= sparse.shape[0] * 9


CASES = [
    # (C_out, C_in, kh, kw, H, W, stride, padding, dilation)
    (1, 1, 3, 3, 7, 6, 1, 0, 1),
    (1, 1, 3, 3, 7, 6, 2, 1, 1),
    (2, 3, 3, 2, 9, 8, (2, 1), (1, 0), 1),
    (3, 2, 3, 3, 10, 11, 1, 2, 2),
    (2, 2, 5, 3, 12, 9, 3, (2, 1), (1, 2)),
    (4, 1, 4, 4, 8, 8, 2, 1, 1),
    (1, 2, 1, 1, 5, 4, 2, 0, 1),
]


@pytest.mark.parametrize("c_out, c_in, kh, kw, h, w, stride, padding, dilation", CASES)
def test_matches_torch_conv2d_and_transpose(
    c_out: int, c_in: int, kh: int, kw: int, h: int, w: int, stride, padding, dilation
) -> None:
    rng = np.random.default_rng(c_out * 100 + h)
    kernel = rng.normal(size=(c_out, c_in, kh, kw))
    x = rng.normal(size=(c_in, h, w))
    matrix = conv_matrix(kernel, (c_in, h, w), stride, padding, dilation)

    expected = F.conv2d(torch.from_numpy(x)[None], torch.from_numpy(kernel), None, stride, padding, dilation)[
        0
    ]
    assert expected.shape[1:] == conv_output_shape((h, w), (kh, kw), stride, padding, dilation)
    np.testing.assert_allclose((matrix @ x.ravel()).reshape(expected.shape), expected.numpy(), atol=1e-10)
    np.testing.assert_allclose(convolve(x, kernel, stride, padding, dilation), expected.numpy(), atol=1e-10)

    y = rng.normal(size=tuple(expected.shape))
    output_padding = transposed_output_padding((h, w), (kh, kw), stride, padding, dilation)
    expected_t = F.conv_transpose2d(
        torch.from_numpy(y)[None],
        torch.from_numpy(kernel),
        None,
        stride,
        padding,
        output_padding,
        1,
        dilation,
    )[0]
    assert expected_t.shape == (c_in, h, w)
    np.testing.assert_allclose((matrix.T @ y.ravel()).reshape(c_in, h, w), expected_t.numpy(), atol=1e-10)


def test_transposed_is_the_adjoint() -> None:
    """<C x, y> == <x, C^T y>: the transposed convolution is the gradient of the convolution."""
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(2, 3, 3, 3))
    x = torch.tensor(rng.normal(size=(1, 3, 8, 7)), requires_grad=True)
    y = rng.normal(size=(2, 4, 4))
    F.conv2d(x, torch.from_numpy(kernel), stride=2, padding=1).mul(torch.from_numpy(y)).sum().backward()
    np.testing.assert_allclose(
        transposed_convolve(y, kernel, (8, 7), stride=2, padding=1), x.grad[0].numpy(), atol=1e-10
    )


@pytest.mark.parametrize(
    "kernel, shape, kwargs, message",
    [
        (np.ones((3,)), (4, 4), {}, "kernel must have shape"),
        (np.ones((1, 2, 3, 3)), (3, 4, 4), {}, "does not match"),
        (np.ones((3, 3)), (2, 2), {}, "does not fit"),
        (np.ones((3, 3)), (4, 4), {"stride": 0}, "stride"),
        (np.ones((3, 3)), (4, 4), {"padding": -1}, "padding"),
    ],
)
def test_invalid_arguments_raise(kernel: np.ndarray, shape: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        conv_matrix(kernel, shape, **kwargs)
