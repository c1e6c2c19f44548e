"""Encoder contract, torchvision layout compatibility and local weight files (never downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from segscope.errors import UserError
from segscope.models.encoders import (
    Encoder,
    ResNetEncoder,
    VGGEncoder,
    adapt_input_conv,
    backbone_state_dict,
    create_encoder,
)
from segscope.models.layers.unpool import MaxUnpool2d, SwitchMaxPool2d


@pytest.mark.parametrize(
    "encoder, channels",
    [
        (VGGEncoder(width=0.125), (8, 16, 32, 64, 64)),
        (VGGEncoder(batch_norm=True, width=0.125, in_channels=1), (8, 16, 32, 64, 64)),
        (ResNetEncoder("resnet18"), (64, 64, 128, 256, 512)),
    ],
)
def test_contract_shapes(encoder: Encoder, channels: tuple[int, ...]) -> None:
    x = torch.randn(2, encoder.in_channels, 64, 96)
    features = encoder(x)
    assert isinstance(encoder, Encoder)
    assert encoder.out_channels == channels and encoder.strides == (2, 4, 8, 16, 32)
    assert [f.shape[1] for f in features] == list(channels)
    assert [(f.shape[2], f.shape[3]) for f in features] == [(64 // s, 96 // s) for s in encoder.strides]


def test_resnet50_dilated_strides() -> None:
    with torch.device("meta"):
        encoder = ResNetEncoder("resnet50", output_stride=8)
    assert encoder.strides == (2, 4, 8, 8, 8) and encoder.out_channels[-1] == 2048
    with pytest.raises(ValueError, match="cannot dilate"):
        ResNetEncoder("resnet18", output_stride=16)


def test_full_size_layouts_match_torchvision_state_dicts() -> None:
    """Keys and shapes equal torchvision's, so its ImageNet checkpoints load unchanged."""
    with torch.device("meta"):
        for arch, ours in (
            ("vgg16", VGGEncoder()),
            ("vgg16_bn", VGGEncoder(batch_norm=True)),
            ("resnet50", ResNetEncoder("resnet50")),
        ):
            reference = getattr(torchvision.models, arch)().state_dict()
            expected = {k: v.shape for k, v in reference.items() if not k.startswith(("classifier.", "fc."))}
            assert {k: v.shape for k, v in ours.state_dict().items()} == expected


def test_load_local_pth_and_safetensors(tmp_path: Path) -> None:
    source = torchvision.models.resnet18(weights=None)  # random weights saved as a "checkpoint"
    pth = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), pth)
    encoder = ResNetEncoder("resnet18", pretrained=str(pth))
    torch.testing.assert_close(encoder.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    torch.testing.assert_close(encoder.bn1.running_var, source.bn1.running_var)

    small = VGGEncoder(batch_norm=True, width=0.125)
    st = tmp_path / "vgg_small.safetensors"
    save_file({k: v.contiguous() for k, v in small.state_dict().items()}, str(st))
    reloaded = VGGEncoder(batch_norm=True, width=0.125)
    reloaded.load_torchvision_state(backbone_state_dict("vgg16_bn", st))
    for key, value in small.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value)


def test_pretrained_rgb_weights_adapted_to_grey(tmp_path: Path) -> None:
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pt"
    torch.save({"state_dict": source.state_dict()}, path)  # nested checkpoints are unwrapped
    grey = ResNetEncoder("resnet18", in_channels=1, pretrained=path)
    torch.testing.assert_close(grey.conv1.weight, source.conv1.weight.sum(dim=1, keepdim=True))
    # A grey image gives the same stem activations as the RGB image of that grey.
    x = torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(grey.conv1(x), source.conv1(x.expand(1, 3, 32, 32)), atol=1e-5, rtol=1e-5)
    five = adapt_input_conv(source.conv1.weight, 5)
    assert five.shape[1] == 5
    torch.testing.assert_close(five[:, 3], source.conv1.weight[:, 0] * 3 / 5)


def test_bad_weights_give_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        ResNetEncoder("resnet18", pretrained=str(tmp_path / "missing.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), wrong)
    with pytest.raises(UserError, match="do not fit ResNetEncoder"):
        ResNetEncoder("resnet18", pretrained=wrong)
    with pytest.raises(UserError, match="torchvision weights name"):
        backbone_state_dict("resnet18", "NO_SUCH_WEIGHTS")
    with pytest.raises(ValueError, match="width=1.0"):
        VGGEncoder(width=0.5, pretrained="DEFAULT")  # refused before any download
    with pytest.raises(UserError, match="wrong shape"):
        VGGEncoder(width=0.5).load_torchvision_state(VGGEncoder(width=0.25).state_dict())
    with pytest.raises(ValueError, match="unknown encoder"):
        create_encoder("alexnet")


def test_switch_pool_and_unpool_round_trip_odd_sizes() -> None:
    x = torch.rand(1, 2, 7, 5) + 0.1  # positive, so re-pooling the sparse map finds the same maxima
    pooled, switches = SwitchMaxPool2d()(x)
    assert pooled.shape[-2:] == (3, 2) and switches.size == (7, 5)
    restored = MaxUnpool2d()(pooled, switches)
    assert restored.shape == x.shape
    # Each max goes back where it came from, every other position is zero.
    assert torch.equal(restored[restored != 0], x[restored != 0])
    assert (restored != 0).sum() == pooled.numel()
    torch.testing.assert_close(torch.nn.functional.max_pool2d(restored[..., :6, :4], 2), pooled)
    with pytest.raises(ValueError, match="too small"):
        SwitchMaxPool2d()(torch.randn(1, 1, 1, 4))
