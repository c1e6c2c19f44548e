"""N-D sliding-window inference against MONAI's ``sliding_window_inference`` and hand-derived cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segscope.inference.sliding_window import blend_weights, sliding_window, window_starts


def small_conv_model(ndim: int, seed: int = 0) -> nn.Module:
    """Two random same-padded convolutions (so window borders matter) and a nonlinearity."""
    torch.manual_seed(seed)
    conv = nn.Conv2d if ndim == 2 else nn.Conv3d
    return nn.Sequential(conv(2, 4, 3, padding=1), nn.Tanh(), conv(4, 3, 3, padding=1)).eval()


CASES = [
    # (spatial size, window, overlap)
    ((23, 31), (8, 12), 0.5),
    ((17, 40), (16, 16), 0.25),
    ((5, 30), (8, 8), 0.5),  # shorter than the window along one axis: padded (zeros), cropped back
    ((11, 13, 14), (6, 8, 8), 0.5),
    ((9, 12, 7), (4, 5, 6), 0.3),
    ((3, 10, 10), (6, 6, 6), 0.5),
]


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize(("size", "window", "overlap"), CASES)
def test_matches_monai(size, window, overlap, blend):
    from monai.inferers import sliding_window_inference

    model = small_conv_model(len(size))
    x = torch.randn(2, 2, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = sliding_window(model, x, window, overlap=overlap, blend=blend, sigma_scale=0.125, batch_size=3)
        ref = sliding_window_inference(
            x, window, 3, model, overlap=overlap, mode=blend, sigma_scale=0.125, padding_mode="constant"
        )
    assert ours.shape == ref.shape == (2, 3, *size)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_gaussian_weights_match_monai_importance_map():
    from monai.data.utils import compute_importance_map

    for shape in [(8, 12), (7, 5, 6)]:
        ref = compute_importance_map(shape, mode="gaussian", sigma_scale=0.25)
        torch.testing.assert_close(blend_weights(shape, "gaussian", 0.25), ref)


def test_window_starts_cover_the_axis_with_the_last_at_the_end():
    assert window_starts(16, 8, 4) == [0, 4, 8]
    assert window_starts(23, 8, 4) == [0, 4, 8, 12, 15]  # the last window ends at 23
    assert window_starts(8, 8, 8) == [0]
    assert window_starts(56, 20, 20, align=20) == [0, 20, 40]  # aligned: runs 4 past the end


def test_translation_equivariant_model_equals_whole_pass_away_from_window_borders():
    torch.manual_seed(0)
    conv = nn.Conv3d(1, 2, 3, padding=1).eval()  # one same-padded 3x3x3 convolution
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        whole = conv(x)
        tiled = sliding_window(conv, x, 8, overlap=0.5, blend="constant")
    # windows start at 0, 4, 8 per axis: [0, 8), [4, 12), [8, 16). A same-padded 3x3x3 conv sees zeros
    # instead of neighbours on a window face inside the volume: indices 7 (of [0, 8)), 4 and 11, and 8.
    bad = torch.zeros(16, dtype=torch.bool)
    bad[[4, 7, 8, 11]] = True
    good = ~(bad[:, None, None] | bad[None, :, None] | bad[None, None, :])
    torch.testing.assert_close(tiled[..., good], whole[..., good], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(tiled[..., ~good], whole[..., ~good], atol=1e-3)  # the border effect is real


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize(
    ("size", "window"), [((19, 26), (8, 10)), ((7, 9, 13), (4, 6, 5)), ((3, 20), (8, 8))]
)
def test_identity_model_gives_back_the_input(size, window, blend):
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    out = sliding_window(nn.Identity(), x, window, overlap=0.5, blend=blend)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, x, atol=1e-12, rtol=1e-12)


def test_valid_model_with_margin_equals_one_pass_over_the_mirrored_input():
    torch.manual_seed(0)
    valid = nn.Sequential(nn.Conv3d(1, 3, 3), nn.ReLU(), nn.Conv3d(3, 2, 3)).eval()  # loses 2 per side
    x = torch.randn(1, 1, 10, 13, 9)
    with torch.no_grad():
        whole = valid(torch.nn.functional.pad(x, (2,) * 6, mode="reflect"))
        for blend in ("constant", "gaussian"):
            tiled = sliding_window(valid, x, (8, 9, 7), overlap=0.5, blend=blend, margin=2)
            torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)


def test_bad_arguments_are_refused():
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="overlap must be in"):
        sliding_window(nn.Identity(), x, 4, overlap=1.0)
    with pytest.raises(ValueError, match="blend must be one of"):
        sliding_window(nn.Identity(), x, 4, blend="linear")
    with pytest.raises(ValueError, match="2 values"):
        sliding_window(nn.Identity(), x, (4, 4, 4))
    with pytest.raises(ValueError, match="expected"):
        sliding_window(nn.Identity(), x, 6, margin=1)  # the model does not shrink its input
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        sliding_window(nn.Identity(), torch.zeros(1, 8), 4)
