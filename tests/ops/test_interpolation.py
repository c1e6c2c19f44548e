"""Interpolation weight matrices against F.interpolate, OpenCV and PIL: equal where the conventions
agree, and different exactly where the module docstring says they are not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from segscope.ops import (
    CUBIC_A_PIL,
    CUBIC_A_PYTORCH,
    bilinear_kernel,
    bilinear_transposed_conv,
    interpolation_matrix,
    kernel,
    kernel_2d,
    resize,
)

SIZES = [(14, 18), (21, 20), (10, 13), (5, 6), (3, 4), (7, 9)]  # from a 7x9 image: up, mixed, down


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).random((7, 9)).astype(np.float32)


def torch_resize(x: np.ndarray, size, mode: str, **kwargs) -> np.ndarray:
    return F.interpolate(torch.from_numpy(x).double()[None, None], size=size, mode=mode, **kwargs)[
        0, 0
    ].numpy()


def pil_resize(x: np.ndarray, size, flag: int) -> np.ndarray:
    return np.asarray(Image.fromarray(x, mode="F").resize((size[1], size[0]), flag), dtype=np.float64)


def cv_resize(x: np.ndarray, size, flag: int) -> np.ndarray:
    return cv2.resize(x, (size[1], size[0]), interpolation=flag).astype(np.float64)


def test_kernels_hand_values() -> None:
    np.testing.assert_allclose(kernel("linear", [-1.5, -0.5, 0, 0.25, 1]), [0, 0.5, 1, 0.75, 0])
    np.testing.assert_allclose(kernel("nearest", [-0.5, 0.49, 0.5]), [1, 1, 0])
    # Keys' kernel: 1 at 0, 0 at the integers; at 1.5: a(27/8) - 5a(9/4) + 8a(3/2) - 4a = a/8 (negative lobe)
    for a in (CUBIC_A_PYTORCH, CUBIC_A_PIL):
        np.testing.assert_allclose(kernel("cubic", [0, 1, 2, 1.5, -1.5], cubic_a=a), [1, 0, 0, a / 8, a / 8])
        # (a+2)/8 - (a+3)/4 + 1 at 0.5
        np.testing.assert_allclose(kernel("cubic", 0.5, cubic_a=a), (a + 2) / 8 - (a + 3) / 4 + 1)


def test_kernel_2d_is_outer_product_and_fcn_filter() -> None:
    np.testing.assert_allclose(kernel_2d("linear", 2)[0], np.array([0.25, 0.75, 0.75, 0.25]) * 0.25)
    # FCN's upsample_filt(5) for factor 3: 1 - |i - 2| / 3
    filt = 1 - np.abs(np.arange(5) - 2) / 3
    np.testing.assert_allclose(kernel_2d("linear", 3), np.outer(filt, filt))
    assert kernel_2d("cubic", 2).shape == (8, 8) and kernel_2d("nearest", 3).shape == (3, 3)
    np.testing.assert_allclose(bilinear_kernel(4).numpy(), kernel_2d("linear", 4), rtol=1e-6)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_nearest_matches_torch(image: np.ndarray, size, mode: str) -> None:
    np.testing.assert_array_equal(resize(image, size, mode), torch_resize(image, size, mode))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_matches_torch(image: np.ndarray, size, mode: str, align_corners: bool) -> None:
    ours = resize(image, size, mode, align_corners=align_corners)
    np.testing.assert_allclose(ours, torch_resize(image, size, mode, align_corners=align_corners), atol=1e-12)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_antialias_matches_torch_antialias(image: np.ndarray, size, mode: str) -> None:
    # PyTorch's antialiased bicubic uses PIL's a = -0.5, not its usual -0.75.
    ours = resize(image, size, mode, antialias=True, cubic_a=CUBIC_A_PIL)
    expected = torch_resize(image, size, mode, align_corners=False, antialias=True)
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_linear_1d_matches_torch_linear() -> None:
    x = np.random.default_rng(1).random(6)
    for align_corners in (False, True):
        expected = F.interpolate(
            torch.from_numpy(x)[None, None], size=11, mode="linear", align_corners=align_corners
        )
        weights = interpolation_matrix(6, 11, "linear", align_corners=align_corners)
        np.testing.assert_allclose(weights @ x, expected[0, 0].numpy(), atol=1e-12)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0)


@pytest.mark.parametrize("size", SIZES)
def test_opencv_agrees_with_half_pixel_clamped_convention(image: np.ndarray, size) -> None:
    np.testing.assert_array_equal(cv_resize(image, size, cv2.INTER_NEAREST), resize(image, size, "nearest"))
    np.testing.assert_array_equal(
        cv_resize(image, size, cv2.INTER_NEAREST_EXACT), resize(image, size, "nearest-exact")
    )
    np.testing.assert_allclose(
        cv_resize(image, size, cv2.INTER_LINEAR), resize(image, size, "bilinear"), atol=1e-5
    )
    np.testing.assert_allclose(
        cv_resize(image, size, cv2.INTER_CUBIC), resize(image, size, "bicubic", cubic_a=-0.75), atol=1e-5
    )


@pytest.mark.parametrize("size", SIZES)
def test_pil_agrees_with_antialiased_a_half_convention(image: np.ndarray, size) -> None:
    np.testing.assert_array_equal(
        pil_resize(image, size, Image.NEAREST), resize(image, size, "nearest-exact")
    )
    np.testing.assert_allclose(
        pil_resize(image, size, Image.BILINEAR), resize(image, size, "bilinear", antialias=True), atol=1e-5
    )
    np.testing.assert_allclose(
        pil_resize(image, size, Image.BICUBIC),
        resize(image, size, "bicubic", antialias=True, cubic_a=CUBIC_A_PIL),
        atol=1e-5,
    )


# ---- documented differences -------------------------------------------------------------------


def test_pil_bicubic_differs_from_torch_by_a_and_borders(image: np.ndarray) -> None:
    size = (14, 18)  # up-sampling: PIL's kernel is not stretched, so only `a` and borders differ
    pil = pil_resize(image, size, Image.BICUBIC)
    torch_default = torch_resize(image, size, "bicubic", align_corners=False)
    assert np.abs(pil - torch_default).max() > 1e-2
    # With a = -0.5 but PyTorch's clamped taps, PIL agrees away from the border (2 output pixels = 1 input
    # pixel + kernel reach) and differs at the border, where PIL renormalises the dropped taps.
    clamped_half = resize(image, size, "bicubic", cubic_a=CUBIC_A_PIL)
    np.testing.assert_allclose(pil[3:-3, 3:-3], clamped_half[3:-3, 3:-3], atol=1e-5)
    assert np.abs(pil - clamped_half).max() > 1e-3


def test_torch_nearest_is_shifted_against_pil(image: np.ndarray) -> None:
    size = (5, 6)  # 7 -> 5: floor(dst * 1.4) vs floor((dst + 0.5) * 1.4) pick different rows
    assert not np.array_equal(torch_resize(image, size, "nearest"), pil_resize(image, size, Image.NEAREST))
    rows_torch = np.argmax(interpolation_matrix(7, 5, "nearest"), axis=1)
    rows_pil = np.argmax(interpolation_matrix(7, 5, "nearest-exact"), axis=1)
    np.testing.assert_array_equal(rows_torch, [0, 1, 2, 4, 5])
    np.testing.assert_array_equal(rows_pil, [0, 2, 3, 4, 6])


def test_downsampling_aliases_without_antialias(image: np.ndarray) -> None:
    size = (3, 4)
    pil = pil_resize(image, size, Image.BILINEAR)
    assert np.abs(pil - torch_resize(image, size, "bilinear", align_corners=False)).max() > 1e-2
    # The antialiased kernel spans ~2 x 7/3 input pixels instead of 2.
    assert np.count_nonzero(interpolation_matrix(7, 3, "linear", antialias=True)[1]) > 2
    assert np.count_nonzero(interpolation_matrix(7, 3, "linear")[1]) <= 2


def test_align_corners_true_differs_from_opencv(image: np.ndarray) -> None:
    size = (14, 18)
    ours = resize(image, size, "bilinear", align_corners=True)
    np.testing.assert_allclose(
        ours[[0, -1]][:, [0, -1]], image[[0, -1]][:, [0, -1]], atol=1e-7
    )  # corners kept
    assert np.abs(ours - cv_resize(image, size, cv2.INTER_LINEAR)).max() > 1e-2


def test_uint8_fixed_point_within_one_grey_level() -> None:
    img = (np.random.default_rng(2).random((9, 11)) * 255).astype(np.uint8)
    exact = np.clip(np.round(resize(img, (20, 25), "bilinear")), 0, 255)
    cv = cv2.resize(img, (25, 20), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    pil = np.asarray(Image.fromarray(img).resize((25, 20), Image.BILINEAR), dtype=np.float64)
    assert np.abs(cv - exact).max() <= 1 and np.abs(pil - exact).max() <= 1


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_bilinear_transposed_conv_equals_interpolation_inside(factor: int) -> None:
    x = torch.rand(1, 3, 6, 5)
    layer = bilinear_transposed_conv(3, factor)
    with torch.no_grad():
        ours = layer(x)
    expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert ours.shape == expected.shape == (1, 3, 6 * factor, 5 * factor)
    b = factor // 2 + factor % 2  # the outer pixels see the zero padding instead of the replicated edge
    torch.testing.assert_close(ours[..., b:-b, b:-b], expected[..., b:-b, b:-b], atol=1e-6, rtol=1e-6)
    assert (ours[..., 0, :] - expected[..., 0, :]).abs().max() > 1e-3
    # Caffe placement (no padding) gives the same values shifted by factor // 2.
    caffe = bilinear_transposed_conv(3, factor, padding="caffe")
    with torch.no_grad():
        shifted = caffe(x)
    s = factor // 2
    torch.testing.assert_close(
        shifted[..., s : s + 6 * factor, s : s + 5 * factor], ours, atol=1e-6, rtol=1e-6
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: interpolation_matrix(4, 8, "area"), "mode must be one of"),
        (lambda: interpolation_matrix(4, 8, "nearest", align_corners=True), "align_corners"),
        (lambda: interpolation_matrix(0, 8), "positive"),
        (lambda: resize(np.zeros((2, 2, 2, 2)), (4, 4)), "image must be"),
        (lambda: bilinear_transposed_conv(2, 0), "factor"),
    ],
)
def test_invalid_arguments(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
