import pytest
import torch
import torch.nn.functional as F

from segscope.inference.tiling import overlap_tile
from segscope.models import count_parameters
from segscope.models.volumetric import UNet3D, unet3d

PAPER_COUNT = 19_069_955  # Çiçek et al. 2016, Sec. 2: "The architecture has 19069955 parameters in total."


def hand_count(*, conv_bias: bool, batch_norm: bool) -> int:
    """Fig. 1 of the paper, 3 input channels, 3 labels: 3x3x3 convs, 2x2x2 up-convs keeping the channels
    (no bias), final 1x1x1 conv with bias."""
    analysis = [(3, 32), (32, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512)]
    synthesis = [(512 + 256, 256), (256, 256), (256 + 128, 128), (128, 128), (128 + 64, 64), (64, 64)]
    n = 0
    for i, o in analysis + synthesis:
        n += 27 * i * o + conv_bias * o + batch_norm * 2 * o  # BatchNorm: scale and shift per channel
    n += sum(8 * c * c for c in (512, 256, 128))  # up-convolutions
    return n + 64 * 3 + 3


def test_paper_parameter_count_is_exact():
    # The paper's count holds conv weights and biases, no BatchNorm parameters and no up-conv bias.
    assert count_parameters(UNet3D(3, 3, batch_norm=False)) == hand_count(conv_bias=True, batch_norm=False)
    assert hand_count(conv_bias=True, batch_norm=False) == PAPER_COUNT
    # With BatchNorm (default) the 3x3x3 convs drop their bias and BatchNorm adds scale + shift.
    n = count_parameters(UNet3D(3, 3))
    assert n == hand_count(conv_bias=False, batch_norm=True) == 19_072_291
    assert abs(n - PAPER_COUNT) / PAPER_COUNT < 0.01


def test_paper_tile_size_and_margin():
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = UNet3D(3, 3, padding="valid")
        out = model(torch.zeros(1, 3, 116, 132, 132))  # the paper's 132x132x116 input (x, y, z)
    assert tuple(out.shape) == (1, 3, 28, 44, 44)
    assert model.output_margin == 44
    assert model.valid_input_size(132) and model.valid_input_size(116)
    assert not model.valid_input_size(130) and not model.valid_input_size(20)


def test_builder_defaults():
    model = unet3d(base_channels=4, depth=2)
    assert (model.in_channels, model.num_classes) == (1, 2)
    assert model.down[0][0][0].out_channels == 4 and model.down[0][1][0].out_channels == 8


@pytest.mark.parametrize("size", [(8, 8, 8), (9, 13, 17), (3, 5, 6)])
def test_same_padding_any_size(size):
    model = UNet3D(3, 2, base_channels=4, depth=3)
    x = torch.randn(2, 2, *size, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 3, *size) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_inputs_are_refused_clearly():
    model = UNet3D(2, 1, base_channels=2, depth=2, padding="valid")
    with pytest.raises(ValueError, match="cannot take a 15x16x16 input"):
        model(torch.zeros(1, 1, 15, 16, 16))
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        model(torch.zeros(1, 16, 16, 16))
    with pytest.raises(ValueError, match="padding must be"):
        UNet3D(padding="full")
    with pytest.raises(ValueError, match="depth"):
        UNet3D(depth=0)


def test_valid_margin_overlap_tile_equals_one_pass_on_the_mirrored_volume():
    torch.manual_seed(0)
    model = UNet3D(2, 1, base_channels=2, depth=2, padding="valid").eval()
    margin = model.output_margin  # down 4 + 8, up 4: (16) / 2
    assert margin == 8
    x = torch.randn(1, 1, 16, 16, 24)
    with torch.no_grad():
        whole = model(F.pad(x, (margin,) * 6, mode="reflect"))  # 32x32x40: one valid pass
        tiled = overlap_tile(model, x, margin, tile=8)  # 2x2x3 tiles of 24^3 inputs
    assert whole.shape == tiled.shape == (1, 2, 16, 16, 24)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-4)
