"""SegNet and SegNet-Basic: paper parameter counts, index unpooling, contract on small variants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segscope.models import count_parameters
from segscope.models.semantic.segnet import SegNet, segnet_basic, segnet_vgg16
from segscope.registry import REGISTRY


def check_contract(model: nn.Module, shape: tuple[int, ...], num_classes: int) -> None:
    """Forward + backward: output shape, finite values, a finite non-zero gradient for every parameter."""
    torch.manual_seed(0)
    model.train()
    model.zero_grad(set_to_none=True)
    logits = model(torch.randn(*shape))
    assert logits.shape == (shape[0], num_classes, *shape[2:]) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.randint(0, num_classes, (shape[0], *shape[2:]))).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_segnet_parameter_count_matches_paper() -> None:
    with torch.device("meta"):
        model = segnet_vgg16(11)  # CamVid's 11 classes
    n = count_parameters(model)
    # Hand count: VGG16 convs (encoder) + mirrored decoder convs + 3x3 classifier + BN (2 per channel).
    decoder = 3 * (9 * 512 * 512 + 512) + 2 * (9 * 512 * 512 + 512) + (9 * 512 * 256 + 256)
    decoder += 2 * (9 * 256 * 256 + 256) + (9 * 256 * 128 + 128) + (9 * 128 * 128 + 128) + (9 * 128 * 64 + 64)
    decoder += 9 * 64 * 64 + 64 + 9 * 64 * 11 + 11
    bn = 2 * (64 * 2 + 128 * 2 + 256 * 3 + 512 * 6) + 2 * (512 * 5 + 256 * 3 + 128 * 2 + 64 * 2)
    assert n == 14_714_688 + decoder + bn == 29_449_355
    assert abs(n - 29.5e6) / 29.5e6 < 0.01  # SegNet paper: 29.5 M


def test_segnet_basic_parameter_count_matches_table_1() -> None:
    n = count_parameters(segnet_basic(11))
    hand = 49 * 3 * 64 + 7 * 49 * 64 * 64 + 8 * 2 * 64 + 64 * 11 + 11  # no conv biases; BN; 1x1 classifier
    assert n == hand == 1_416_075
    assert abs(n - 1.425e6) / 1.425e6 < 0.01  # SegNet paper, Table 1: 1.425 M


def test_segnet_encoder_is_vgg16_bn_and_decoder_mirrors_it() -> None:
    with torch.device("meta"):
        model = segnet_vgg16(11)
    assert model.encoder.arch == "vgg16_bn" and model.encoder.batch_norm
    convs = [m for m in model.decoder.modules() if isinstance(m, nn.Conv2d)]
    assert [c.in_channels for c in convs] == [512] * 6 + [256] * 3 + [128] * 2 + [64] * 2
    assert [c.out_channels for c in convs] == [512] * 5 + [256] * 3 + [128] * 2 + [64] * 2 + [11]
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())  # unpooling is not learned


def test_decoder_places_values_at_the_encoder_switches() -> None:
    """The first decoder input is pool5 unpooled: non-zero exactly at the argmax of each 2x2 window."""
    model = SegNet(3, width=0.125).eval()
    captured = {}
    model.decoder[0].register_forward_pre_hook(lambda module, args: captured.setdefault("x", args[0]))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
        pre_pool = model.encoder.features[:-1](x)  # conv5_3 output, before pool5
    sparse = captured["x"]
    assert sparse.shape == pre_pool.shape
    positive = pre_pool.clamp(min=0)  # ReLU outputs; zero-valued maxima stay zero either way
    torch.testing.assert_close(F.max_pool2d(sparse, 2), F.max_pool2d(positive, 2))
    assert (sparse != 0).sum() <= sparse.numel() // 4


def test_contract_small_segnet() -> None:
    check_contract(segnet_vgg16(4, width=0.125), (2, 3, 64, 64), 4)


def test_contract_segnet_basic() -> None:
    check_contract(segnet_basic(4, base_channels=8, in_channels=1), (2, 1, 64, 64), 4)


@pytest.mark.parametrize("size", [(175, 239), (33, 47)])
def test_odd_sizes_handled_without_padding(size: tuple[int, int]) -> None:
    for model in (segnet_vgg16(3, width=0.0625), segnet_basic(3, base_channels=4)):
        with torch.no_grad():
            assert model.eval()(torch.randn(1, 3, *size)).shape == (1, 3, *size)


def test_too_small_inputs_refused_clearly() -> None:
    with pytest.raises(ValueError, match="at least 32x32"):
        segnet_vgg16(3, width=0.0625)(torch.randn(1, 3, 31, 64))
    with pytest.raises(ValueError, match="at least 16x16"):
        segnet_basic(3, base_channels=4)(torch.randn(1, 3, 64, 15))
    with pytest.raises(ValueError, match="no pretrained"):
        segnet_basic(3, pretrained=True)


def test_registered() -> None:
    assert {"segnet_vgg16", "segnet_basic"} <= set(REGISTRY.names(family="deep"))
    assert "SegNet" in REGISTRY.get("segnet_basic").paper
