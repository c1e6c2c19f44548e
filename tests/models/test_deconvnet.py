"""DeconvNet: Table 1 layer configuration, parameter count, switches, contract on a small variant."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segscope.models import count_parameters
from segscope.models.semantic.deconvnet import deconvnet_vgg16
from segscope.registry import REGISTRY


@pytest.fixture(scope="module")
def full_model() -> nn.Module:
    with torch.device("meta"):  # 252 M parameters: shapes only, no memory
        return deconvnet_vgg16(21)


def test_parameter_count_matches_paper(full_model: nn.Module) -> None:
    n = count_parameters(full_model)
    weights = sum(
        m.weight.numel() + m.bias.numel()
        for m in full_model.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    )
    # VGG16 convs + fc6 + fc7 + deconv-fc6 + mirrored 3x3 deconvolutions + 1x1 output layer.
    decoder = 3 * (9 * 512 * 512 + 512) + 2 * (9 * 512 * 512 + 512) + (9 * 512 * 256 + 256)
    decoder += 2 * (9 * 256 * 256 + 256) + (9 * 256 * 128 + 128) + (9 * 128 * 128 + 128) + (9 * 128 * 64 + 64)
    decoder += 2 * (9 * 64 * 64 + 64) + 64 * 21 + 21
    fc = (25088 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 49 * 512 + 512)
    assert weights == 14_714_688 + fc + decoder == 251_772_245
    assert n == 251_805_653
    assert abs(n - 252e6) / 252e6 < 0.01  # DeconvNet: 252 M parameters


def test_layer_configuration_of_table_1(full_model: nn.Module) -> None:
    assert full_model.fc6[0].kernel_size == (7, 7) and full_model.fc6[0].padding == (0, 0)
    assert full_model.deconv_fc6[0].kernel_size == (7, 7)
    deconvs = [m for m in full_model.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [d.out_channels for d in deconvs] == [512] * 5 + [256] * 3 + [128] * 2 + [64] * 3
    assert all(d.kernel_size == (3, 3) and d.stride == (1, 1) for d in deconvs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in full_model.modules()) == 13 + 3 + 13


def test_224_input_reduces_to_1x1_at_fc7() -> None:
    model = deconvnet_vgg16(3, width=0.0625).eval()
    captured = {}
    model.fc7.register_forward_hook(lambda module, args, out: captured.setdefault("fc7", out))
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 3, 224, 224)
    assert captured["fc7"].shape[-2:] == (1, 1)


def test_contract_small_variant() -> None:
    torch.manual_seed(0)
    model = deconvnet_vgg16(4, width=0.0625)
    logits = model(torch.randn(2, 3, 64, 64))  # padded to 224x224 inside, cropped back
    assert logits.shape == (2, 4, 64, 64) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.randint(0, 4, (2, 64, 64))).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("size", [(175, 239), (231, 257)])
def test_odd_sizes(size: tuple[int, int]) -> None:
    model = deconvnet_vgg16(3, width=0.0625).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 3, *size)


def test_min_size_validated_and_registered() -> None:
    with pytest.raises(ValueError, match="min_size"):
        deconvnet_vgg16(3, width=0.0625, min_size=64)
    assert "Noh" in REGISTRY.get("deconvnet_vgg16").paper
