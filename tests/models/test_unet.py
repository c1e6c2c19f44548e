import pytest
import torch

from segscope import create_model
from segscope.models import count_parameters
from segscope.models.semantic.unet import UNet


def test_paper_configuration_parameter_count_and_tile_size():
    model = UNet(num_classes=2, in_channels=1, padding="valid", batch_norm=False)
    # Ronneberger et al. 2015, Fig. 1: ~31.0 M parameters, a 572x572 tile gives a 388x388 map.
    n = count_parameters(model)
    assert abs(n - 31.0e6) / 31.0e6 < 0.01
    # hand count: 23 conv layers of Fig. 1 (3x3 convs, 2x2 up-convs, final 1x1) with biases
    widths = [64, 128, 256, 512, 1024]
    convs = [(1, 64)] + [(64, 64)]
    for a, b in zip(widths, widths[1:]):
        convs += [(a, b), (b, b)]
    hand = sum(9 * i * o + o for i, o in convs)
    for a, b in zip(widths[::-1], widths[::-1][1:]):
        hand += 4 * a * b + b  # up-conv 2x2
        hand += 9 * 2 * b * b + b + 9 * b * b + b
    hand += 64 * 2 + 2
    assert n == hand == 31_030_658
    assert model.output_margin == 92
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 572, 572)).shape == (1, 2, 388, 388)


def test_valid_padding_refuses_bad_sizes_clearly():
    model = UNet(2, 1, base_channels=4, depth=2, padding="valid")
    with pytest.raises(ValueError, match="cannot take a 65x65 input"):
        model(torch.zeros(1, 1, 65, 65))


@pytest.mark.parametrize("size", [(64, 64), (45, 67), (17, 33)])
def test_same_padding_any_size(size):
    model = create_model("unet", num_classes=3, in_channels=3, base_channels=4, depth=3)
    x = torch.randn(2, 3, *size, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 3, *size)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert torch.isfinite(out).all()


def test_base_channels_shrinks_model_quadratically():
    big = count_parameters(create_model("unet", num_classes=2, in_channels=1, batch_norm=False))
    small = count_parameters(create_model("unet_small", num_classes=2, in_channels=1, batch_norm=False))
    assert 14 < big / small < 17  # conv weights scale with width^2 (64 -> 16)
