"""FCN-32s/16s/8s: parameter counts against the Caffe reference, initialisation, crop geometry,
convolutionalised fc layers, and the forward/backward contract on width-reduced variants."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segscope.models import count_parameters
from segscope.models.semantic.fcn import FCN, fcn_resnet, fcn_vgg16
from segscope.ops import bilinear_weight
from segscope.registry import REGISTRY

VGG16_CONVS = 14_714_688  # the 13 3x3 convolutions of VGG16, weights + biases
FC6, FC7 = 25088 * 4096 + 4096, 4096 * 4096 + 4096


def check_contract(model: nn.Module, shape: tuple[int, ...], num_classes: int) -> torch.Tensor:
    """Forward + backward: output shape, finite values, a finite gradient for every trainable parameter."""
    torch.manual_seed(0)
    model.train()
    model.zero_grad(set_to_none=True)
    logits = model(torch.randn(*shape))
    assert logits.shape == (shape[0], num_classes, *shape[2:]) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.randint(0, num_classes, (shape[0], *shape[2:]))).backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    return logits


@pytest.mark.parametrize("stride", [32, 16, 8])
def test_vgg16_parameter_counts_match_the_caffe_reference(stride: int) -> None:
    with torch.device("meta"):
        caffe = fcn_vgg16(21, output_stride=stride)
        same = fcn_vgg16(21, output_stride=stride, placement="same")
    # voc-fcn{32,16,8}s/net.py: score layers 1x1 with bias; up-sampling layers without bias.
    scores = 4096 * 21 + 21 + (512 * 21 + 21 if stride <= 16 else 0) + (256 * 21 + 21 if stride == 8 else 0)
    upsampling = {32: 0, 16: 1, 8: 2}[stride] * 21 * 21 * 4 * 4 + 21 * 21 * (2 * stride) ** 2
    expected = VGG16_CONVS + FC6 + FC7 + scores + upsampling
    assert count_parameters(caffe) == count_parameters(same) == expected
    if stride == 8:
        assert expected == 134_489_759
        assert abs(expected - 134.5e6) / 134.5e6 < 0.01  # "134M" (Table 1); 538 MB of float32


def test_resnet_parameter_count_is_backbone_plus_heads() -> None:
    with torch.device("meta"):
        model = fcn_resnet(11, arch="resnet50", output_stride=8)
    backbone = 25_557_032 - (2048 * 1000 + 1000)  # torchvision resnet50 minus its fc classifier
    heads = (2048 + 1024 + 512) * 11 + 3 * 11 + 2 * 11 * 11 * 16 + 11 * 11 * 16 * 16
    assert count_parameters(model) == backbone + heads


def test_initialisation_as_in_the_paper() -> None:
    model = fcn_vgg16(5, width=0.125)
    for score in (model.score_fr, *model.score_skips):
        assert not score.weight.any() and not score.bias.any()
    torch.testing.assert_close(model.upscore_skips[0].weight, bilinear_weight(5, 2))
    torch.testing.assert_close(model.upscore.weight, bilinear_weight(5, 8))
    assert model.upscore.kernel_size == (16, 16) and model.upscore.stride == (8, 8)
    with torch.no_grad():  # zero scores: the untrained network predicts all-zero logits
        assert not model(torch.randn(1, 3, 40, 40)).any()
    frozen = fcn_vgg16(5, width=0.125, freeze_upsampling=True)
    assert not any(layer.weight.requires_grad for layer in (frozen.upscore, *frozen.upscore_skips))


def _centre_map(model: FCN) -> tuple[list[tuple[float, float]], list[tuple[float, float]], float]:
    """Independent coordinate bookkeeping (Caffe's coord_map): each map's pixel x is centred at
    input coordinate scale * x + offset. Returns (skip maps, up-sampled maps, final offset)."""
    scale, offset, pooled = 1.0, 0.0, []
    for layer in model.encoder.features:
        if isinstance(layer, nn.Conv2d):
            offset += scale * ((layer.kernel_size[0] - 1) / 2 - layer.padding[0])
        elif isinstance(layer, nn.MaxPool2d):
            offset += scale * (layer.kernel_size - 1) / 2
            scale *= layer.stride
            pooled.append((scale, offset))
    fc6 = model.fully_connected.fc6
    offset += scale * ((fc6.kernel_size[0] - 1) / 2 - fc6.padding[0])

    def up(layer: nn.ConvTranspose2d, scale: float, offset: float) -> tuple[float, float]:
        s, k, p = layer.stride[0], layer.kernel_size[0], layer.padding[0]
        return scale / s, offset + scale * (p - (k - 1) / 2) / s

    skips, ups = [], []
    for layer, index in zip(model.upscore_skips, model.skip_indices):
        scale, offset = up(layer, scale, offset)
        ups.append((scale, offset))
        skips.append(pooled[index])
    scale, offset = up(model.upscore, scale, offset)
    assert scale == 1.0
    return skips, ups, offset


@pytest.mark.parametrize("placement", ["caffe", "same"])
@pytest.mark.parametrize("stride", [32, 16, 8])
def test_crop_offsets_realign_every_map(placement: str, stride: int) -> None:
    with torch.device("meta"):
        model = fcn_vgg16(3, output_stride=stride, placement=placement)
    skips, ups, final = _centre_map(model)
    for (skip_scale, skip_offset), (up_scale, up_offset), crop in zip(skips, ups, model.skip_offsets):
        assert skip_scale == up_scale
        assert skip_offset + skip_scale * crop == up_offset  # skip pixel x + crop sits where up pixel x sits
    assert final + model.final_offset == 0  # output pixel x sits on input pixel x
    if placement == "caffe":
        # the offsets of the authors' voc-fcn{32,16,8}s/net.py
        assert model.skip_offsets == {32: [], 16: [5], 8: [5, 9]}[stride]
        assert model.final_offset == {32: 19, 16: 27, 8: 31}[stride]


@pytest.mark.parametrize("placement", ["caffe", "same"])
@pytest.mark.parametrize("stride", [32, 16, 8])
def test_contract_small_vgg(placement: str, stride: int) -> None:
    model = fcn_vgg16(4, width=0.125, output_stride=stride, placement=placement, zero_init_scores=False)
    check_contract(model, (2, 3, 64, 64), 4)
    for parameter in model.parameters():
        assert parameter.grad.abs().sum() > 0  # random score init: every layer learns from step one


@pytest.mark.parametrize("size", [(175, 239), (33, 47), (1, 1)])
def test_odd_sizes_handled_by_crop_logic(size: tuple[int, int]) -> None:
    for placement in ("caffe", "same"):
        model = fcn_vgg16(3, width=0.0625, placement=placement).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, *size)).shape == (1, 3, *size)


def test_contract_resnet18() -> None:
    model = REGISTRY.get("fcn8s_resnet18").builder(num_classes=3, in_channels=1, zero_init_scores=False)
    check_contract(model, (2, 1, 64, 64), 3)
    check_contract(model, (1, 1, 45, 71), 3)  # odd sizes: padded to 64x96 inside, cropped back
    for stride in (32, 16):
        other = REGISTRY.get(f"fcn{stride}s_resnet18").builder(num_classes=3)
        assert len(other.score_skips) == {32: 0, 16: 1}[stride]
        with torch.no_grad():
            assert other.eval()(torch.randn(1, 3, 45, 71)).shape == (1, 3, 45, 71)


def test_registered_names() -> None:
    expected = {"fcn32s_vgg16", "fcn16s_vgg16", "fcn8s_vgg16", "fcn8s_resnet18", "fcn8s_resnet50"}
    assert expected <= set(REGISTRY.names(family="deep", task="semantic"))
    assert "Long" in REGISTRY.get("fcn8s_vgg16").paper


def test_pretrained_local_file_convolutionalises_fc6_fc7(tmp_path: Path) -> None:
    """A torchvision-layout checkpoint (width-reduced here to stay small): fc6/fc7 become 7x7/1x1
    convolutions computing exactly the classifier's Linear layers on a 7x7 pool5 map."""
    width, fc = 0.125, 512
    reference = fcn_vgg16(2, width=width, placement="same").encoder
    state = {k: v for k, v in reference.state_dict().items()}
    state |= {
        "classifier.0.weight": torch.randn(fc, 64 * 7 * 7) * 0.01,
        "classifier.0.bias": torch.randn(fc),
        "classifier.3.weight": torch.randn(fc, fc) * 0.01,
        "classifier.3.bias": torch.randn(fc),
    }
    path = tmp_path / "vgg16_small.pth"
    torch.save(state, path)
    model = fcn_vgg16(2, width=width, pretrained=str(path)).eval()
    torch.testing.assert_close(model.encoder.features[2].weight, reference.features[2].weight)
    pool5 = torch.randn(1, 64, 7, 7)
    fc6 = model.fully_connected.fc6(pool5).flatten()
    torch.testing.assert_close(
        fc6, F.linear(pool5.flatten(), state["classifier.0.weight"], state["classifier.0.bias"])
    )
    fc7 = model.fully_connected.fc7(fc6[None, :, None, None]).flatten()
    torch.testing.assert_close(fc7, F.linear(fc6, state["classifier.3.weight"], state["classifier.3.bias"]))


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="output_stride"):
        fcn_vgg16(2, width=0.125, output_stride=4)
    with pytest.raises(ValueError, match="placement"):
        fcn_vgg16(2, width=0.125, placement="valid")
    with pytest.raises(ValueError, match="width=1.0"):
        fcn_vgg16(2, width=0.5, pretrained=True)  # refused before any download


@pytest.mark.slow
def test_full_width_fcn8s_vgg16_forward() -> None:
    model = fcn_vgg16(21).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 64, 80)).shape == (1, 21, 64, 80)
