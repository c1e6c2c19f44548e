"""DeepLab v1 (LargeFOV, CRF-7x7) and v2 (ASPP-L): parameter counts against Table 2 and hand counts, output
stride and Caffe map sizes, centre alignment and field of view, logits at any input size, and ImageNet weight
loading (convolutions and the decimated fc6/fc7) from a local torchvision file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segscope.models import count_parameters
from segscope.models.semantic.deeplab_v1 import DeepLabV1, imagenet_fc_state, upsample_aligned
from segscope.models.semantic.deeplab_v2 import deeplabv2_resnet, deeplabv2_vgg16
from segscope.registry import REGISTRY

VGG16_CONVS = 14_714_688  # the 13 3x3 convolutions of VGG16, weights + biases
RESNET101, RESNET50 = 44_549_160 - (2048 * 1000 + 1000), 25_557_032 - (2048 * 1000 + 1000)  # without fc
LARGEFOV = {"fc6_kernel": 3, "fc6_dilation": 12, "fc6_channels": 1024}
CRF_7X7 = {"fc6_kernel": 7, "fc6_dilation": 4, "fc6_channels": 4096}


def conv(c_in: int, c_out: int, k: int) -> int:
    return k * k * c_in * c_out + c_out


def test_v1_parameter_counts_match_table_2() -> None:
    with torch.device("meta"):
        large_fov = DeepLabV1(21)
        crf_7x7 = DeepLabV1(21, **CRF_7X7)
    expected = VGG16_CONVS + conv(512, 1024, 3) + conv(1024, 1024, 1) + conv(1024, 21, 1)
    assert count_parameters(large_fov) == expected == 20_505_429
    assert abs(expected - 20.5e6) / 20.5e6 < 0.01  # "20.5M" (Table 2)
    expected_7x7 = VGG16_CONVS + conv(512, 4096, 7) + conv(4096, 4096, 1) + conv(4096, 21, 1)
    assert count_parameters(crf_7x7) == expected_7x7 == 134_346_581
    assert abs(expected_7x7 - 134.3e6) / 134.3e6 < 0.001  # "134.3M" (Table 2)


def test_v2_parameter_counts_are_backbone_plus_aspp() -> None:
    with torch.device("meta"):
        r101, r50, vgg = deeplabv2_resnet(21), deeplabv2_resnet(21, arch="resnet50"), deeplabv2_vgg16(21)
    aspp_resnet = 4 * conv(2048, 21, 3)  # fc1_voc12_c0..c3
    assert count_parameters(r101) == RESNET101 + aspp_resnet == 44_048_532
    assert count_parameters(r50) == RESNET50 + aspp_resnet == 25_056_404
    branch = conv(512, 1024, 3) + conv(1024, 1024, 1) + conv(1024, 21, 1)  # fc6_i, fc7_i, fc8_i
    assert count_parameters(vgg) == VGG16_CONVS + 4 * branch == 37_877_652
    assert [b[0].dilation[0] for b in vgg.aspp.branches] == [6, 12, 18, 24]
    assert [b.dilation[0] for b in r101.aspp.branches] == [6, 12, 18, 24]


def _caffe_pool(n: int) -> int:
    """Output size of a 3x3, stride 2, padding 1 Caffe (ceil-mode) max-pooling."""
    return n // 2 + 1


@pytest.mark.parametrize("size", [(321, 321), (176, 240), (175, 239)])
def test_atrous_vgg_is_output_stride_8_with_caffe_sizes(size: tuple[int, int]) -> None:
    with torch.device("meta"):
        model = DeepLabV1(21)
        maps = model.encoder(torch.empty(1, 3, *size))
    assert model.encoder.strides == (2, 4, 8, 8, 8)
    expected, sizes = size, []
    for _ in range(3):
        expected = tuple(_caffe_pool(n) for n in expected)
        sizes.append(expected)
    assert [tuple(m.shape[-2:]) for m in maps] == [*sizes, sizes[-1], sizes[-1]]
    if size == (321, 321):  # the released models' 321x321 crops give 41x41 score maps
        assert sizes[-1] == (41, 41)


def test_v2_resnet_last_map_has_stride_8() -> None:
    with torch.device("meta"):
        model = deeplabv2_resnet(3)
        maps = model.encoder(torch.empty(1, 3, 64, 96))
    assert model.encoder.strides[-1] == 8 and maps[-1].shape[-2:] == (8, 12)
    assert maps[-1].shape[1] == 2048


def _walk(layers: list[nn.Module]) -> tuple[float, float, int]:
    """Independent coordinate bookkeeping: (jump, centre offset, receptive field) after ``layers``; pixel
    ``j`` of the last map is centred on input ``jump * j + offset`` and sees ``field`` input pixels."""
    jump, offset, field = 1, 0.0, 1
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            span, pad, stride = (
                layer.dilation[0] * (layer.kernel_size[0] - 1),
                layer.padding[0],
                layer.stride[0],
            )
        elif isinstance(layer, nn.MaxPool2d | nn.AvgPool2d):
            span, pad, stride = layer.kernel_size - 1, layer.padding, layer.stride
        else:
            continue
        field += span * jump
        offset += jump * (span / 2 - pad)
        jump *= stride
    return jump, offset, field


@pytest.mark.parametrize("pool5a", [True, False])
def test_centre_alignment_and_receptive_field(pool5a: bool) -> None:
    with torch.device("meta"):
        model = DeepLabV1(21, pool5a=pool5a)
    jump, offset, field = _walk([*model.encoder.features, *model.fully_connected])
    assert (jump, offset) == (8, 0.0)  # map pixel j sits on input pixel 8 j: what upsample_aligned assumes
    assert field == (435 if pool5a else 419)


@pytest.mark.parametrize(
    ("kernel", "rate", "fov"),
    [
        (7, 4, 224),
        (4, 4, 128),
        (4, 8, 224),
        (3, 12, 224),
    ],  # Table 2: DeepLab-CRF-7x7, -CRF, -CRF-4x4, -LargeFOV
)
def test_fc6_field_of_view_of_table_2(kernel: int, rate: int, fov: int) -> None:
    with torch.device("meta"):
        model = DeepLabV1(21, fc6_kernel=kernel, fc6_dilation=rate, fc6_channels=8)
        out = model.fully_connected(torch.empty(1, 512, 41, 41))
    fc6 = model.fully_connected.fc6
    assert out.shape[-2:] == (41, 41)  # "same" geometry, even kernels included
    span = fc6.dilation[0] * (fc6.kernel_size[0] - 1) * model.encoder.strides[-1]  # input pixels between taps
    assert span + 32 == fov  # the field of view Table 2 lists (32 = the original fc6's pool5 cell)


def test_upsample_aligned_puts_map_pixel_j_on_input_pixel_8j() -> None:
    ramp = torch.arange(5.0).view(1, 1, 5, 1).expand(1, 1, 5, 3)
    up = upsample_aligned(ramp, 8, (37, 20))  # 5 rows reach input row 32; rows 33..36 take the edge value
    assert up.shape == (1, 1, 37, 20)
    torch.testing.assert_close(up[0, 0, :33, 0], torch.arange(33.0) / 8)
    assert (up[0, 0, 33:] == 4).all()
    torch.testing.assert_close(
        upsample_aligned(ramp, 8, (30, 17))[0, 0, :, 0], torch.arange(30.0) / 8
    )  # cropped


def _check_forward_backward(model: nn.Module, shape: tuple[int, ...], num_classes: int) -> None:
    torch.manual_seed(0)
    model.train()
    logits = model(torch.randn(*shape))
    assert logits.shape == (shape[0], num_classes, *shape[2:]) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.randint(0, num_classes, (shape[0], *shape[2:]))).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


@pytest.mark.parametrize("name", ["deeplabv1_vgg16", "deeplabv2_vgg16"])
def test_small_vgg_models_give_logits_at_the_input_size(name: str) -> None:
    model = REGISTRY.get(name).builder(num_classes=4, width=0.125)
    _check_forward_backward(model, (2, 3, 176, 240), 4)
    model.eval()
    with torch.no_grad():
        for size in [(175, 239), (33, 47), (1, 1), (9, 8)]:
            assert model(torch.randn(1, 3, *size)).shape == (1, 4, *size)


def test_crf_7x7_variant_and_one_channel_input() -> None:
    model = DeepLabV1(3, 1, width=0.125, **CRF_7X7).eval()
    assert model.fully_connected.fc6.kernel_size == (7, 7) and model.fully_connected.fc6.dilation == (4, 4)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 45, 71)).shape == (1, 3, 45, 71)


def test_resnet50_variant_gives_logits_at_odd_sizes() -> None:
    with torch.device("meta"):
        model = REGISTRY.get("deeplabv2_resnet50").builder(num_classes=3)
        assert model(torch.empty(1, 3, 45, 71)).shape == (1, 3, 45, 71)
    light = REGISTRY.get("deeplabv2_resnet50").builder(num_classes=3, output_stride=16)
    assert light.encoder.strides[-1] == 16
    _check_forward_backward(light, (1, 3, 33, 47), 3)


def test_classifiers_are_initialised_as_deeplab() -> None:
    v1 = DeepLabV1(21, width=0.25)
    v2 = deeplabv2_vgg16(21, width=0.25)
    for classifier in (v1.fc8, *(b[6] for b in v2.aspp.branches)):
        assert not classifier.bias.any() and 0.008 < classifier.weight.std().item() < 0.012


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A torchvision ``vgg16`` state dict (random weights, full size) in a local ``.pth`` file."""
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.vgg16(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "vgg16.pth"
    torch.save(state, path)
    return path, state


def test_pretrained_local_torchvision_file(vgg16_file) -> None:
    path, state = vgg16_file
    model = REGISTRY.get("deeplabv1_vgg16").builder(num_classes=21, in_channels=1, pretrained=str(path))
    for index in (2, 28):  # conv1_2, conv5_3 (dilated, same weights)
        torch.testing.assert_close(model.encoder.features[index].weight, state[f"features.{index}.weight"])
    # one input channel: conv1_1 sums the RGB filters (adapt_input_conv)
    torch.testing.assert_close(
        model.encoder.features[0].weight, state["features.0.weight"].sum(1, keepdim=True)
    )
    fc6, fc7 = model.fully_connected.fc6, model.fully_connected.fc7
    classifier6 = state["classifier.0.weight"].reshape(4096, 512, 7, 7)
    # decimation 7x7 -> 3x3 keeps taps 0, 3, 6; a sorted 1,024-filter subset is kept in fc6 and fc7
    # (both sides of fc7)
    # (recovered from one weight per filter: torchvision's random normal weights are almost surely distinct)
    matches = (fc6.weight[:, 0, 0, 0, None] == classifier6[None, :, 0, 0, 0]).nonzero()
    assert matches[:, 0].tolist() == list(range(1024))
    keep = matches[:, 1]
    assert len(set(keep.tolist())) == 1024 and torch.equal(keep, keep.sort().values)
    torch.testing.assert_close(fc6.weight, classifier6[keep][:, :, ::3, ::3])
    torch.testing.assert_close(fc7.weight[..., 0, 0], state["classifier.3.weight"][keep][:, keep])
    torch.testing.assert_close(fc7.bias, state["classifier.3.bias"][keep])

    seven = imagenet_fc_state(
        state, kernel=7, channels=4096
    )  # CRF-7x7: the whole classifier, convolutionalised
    torch.testing.assert_close(seven["fc6.weight"], classifier6)
    torch.testing.assert_close(seven["fc7.weight"][..., 0, 0], state["classifier.3.weight"])

    v2 = deeplabv2_vgg16(21, pretrained=path)
    torch.testing.assert_close(v2.encoder.features[28].weight, state["features.28.weight"])
    for branch in v2.aspp.branches:  # every branch starts from LargeFOV's fc6/fc7
        torch.testing.assert_close(branch[0].weight, fc6.weight)
        torch.testing.assert_close(branch[3].weight, fc7.weight)


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="width=1.0"):
        DeepLabV1(2, width=0.5, pretrained=True)  # refused before any download
    with pytest.raises(ValueError, match="width=1.0"):
        deeplabv2_vgg16(2, width=0.5, pretrained=True)
    with pytest.raises(ValueError, match="output_stride"):
        deeplabv2_resnet(2, output_stride=32)
    with pytest.raises(ValueError, match="fc6_kernel"):
        DeepLabV1(2, width=0.125, fc6_kernel=0)


def test_registered_names() -> None:
    expected = {"deeplabv1_vgg16", "deeplabv2_resnet101", "deeplabv2_resnet50", "deeplabv2_vgg16"}
    assert expected <= set(REGISTRY.names(family="deep", task="semantic"))
    assert "Fully Connected CRFs" in REGISTRY.get("deeplabv1_vgg16").paper
    assert "TPAMI" in REGISTRY.get("deeplabv2_resnet101").paper
