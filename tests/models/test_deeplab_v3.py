"""DeepLab v3 / v3+ and torchvision's dilated FCN: outputs equal torchvision's and SMP's on the same weights,
hand-counted parameters, multi-grid rates, output strides and auxiliary heads."""

from __future__ import annotations

import pytest
import torch
import torchvision

from segscope.models import count_parameters
from segscope.models.encoders import ResNetEncoder
from segscope.models.encoders.efficientnet_lite import EfficientNetLiteEncoder
from segscope.models.semantic import deeplab_v3, deeplab_v3plus, fcn_dilated
from segscope.models.semantic.deeplab_v3 import DeepLabV3
from segscope.models.semantic.deeplab_v3plus import DeepLabV3Plus
from segscope.models.semantic.fcn_dilated import DilatedFCN
from tests.conftest import randomise_batchnorm

RESNET50, RESNET101 = 23_508_032, 42_500_160  # torchvision ImageNet counts minus the fc classifier


def conv(c_in: int, c_out: int, k: int = 1, bias: bool = False) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def separable(c_in: int, c_out: int) -> int:
    return 9 * c_in + c_in * c_out  # depthwise 3x3 (no bias) + pointwise 1x1 (no bias)


def aspp(c_in: int, sep: bool, c: int = 256) -> int:
    branch3 = (separable(c_in, c) if sep else conv(c_in, c, 3)) + bn(c)
    return 2 * (conv(c_in, c) + bn(c)) + 3 * branch3 + conv(5 * c, c) + bn(c)  # 1x1, pooling, 3x 3x3, project


def test_deeplabv3_equals_torchvision_on_the_same_weights():
    torch.manual_seed(0)
    theirs = torchvision.models.segmentation.deeplabv3_resnet50(
        weights=None, weights_backbone=None, num_classes=5, aux_loss=True
    ).eval()
    randomise_batchnorm(theirs)
    ours = DeepLabV3(
        5, encoder="resnet50", output_stride=8, rates=(12, 24, 36), multi_grid=None, head_conv=True, aux=True
    ).eval()
    ours.load_state_dict(deeplab_v3.from_torchvision_state(theirs.state_dict()))  # strict: every key maps
    assert count_parameters(ours) == count_parameters(theirs) == 41_995_850  # 42,004,074 at 21 classes
    x = torch.randn(1, 3, 67, 93)
    with torch.no_grad():
        expected = theirs(x)["out"]
        assert torch.allclose(ours(x), expected, atol=1e-5)
        x2 = torch.randn(2, 3, 64, 64)  # training mode: batch statistics and dropout, same random stream
        torch.manual_seed(1)
        mine = ours.train()(x2)
        torch.manual_seed(1)
        reference = theirs.train()(x2)
        assert torch.allclose(mine, reference["out"], atol=1e-4)
        assert torch.allclose(ours.aux_logits[0], reference["aux"], atol=1e-4)


def test_fcn_resnet50_equals_torchvision_on_the_same_weights():
    torch.manual_seed(0)
    theirs = torchvision.models.segmentation.fcn_resnet50(
        weights=None, weights_backbone=None, num_classes=4, aux_loss=True
    ).eval()
    randomise_batchnorm(theirs)
    ours = DilatedFCN(4, arch="resnet50", aux=True).eval()
    ours.load_state_dict(fcn_dilated.from_torchvision_state(theirs.state_dict()))
    x = torch.randn(2, 3, 75, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x)["out"], atol=1e-5)
    with torch.device("meta"):
        assert count_parameters(DilatedFCN(21, aux=True)) == 35_322_218  # torchvision's documented count
        head = conv(2048, 512, 3) + bn(512) + conv(512, 21, bias=True)
        assert count_parameters(DilatedFCN(21)) == RESNET50 + head == 32_957_013


def test_deeplabv3plus_equals_smp_on_the_same_weights():
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    theirs = smp.DeepLabV3Plus("resnet50", encoder_weights=None, classes=5, decoder_atrous_rates=(6, 12, 18))
    theirs.eval()
    randomise_batchnorm(theirs)
    ours = DeepLabV3Plus(5, encoder="resnet50", decoder_convs=1, aspp_conv=True).eval()
    ours.load_state_dict(deeplab_v3plus.from_smp_state(theirs.state_dict()))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        differ = (ours(x) - theirs(x)).abs().max()
        first = ours.encoder.layer4[0].conv2  # SMP dilates layer4's first block too; torchvision does not
        assert first.dilation == (1, 1) and differ > 1e-3
        first.dilation, first.padding = (2, 2), (2, 2)
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)


def test_parameter_counts_by_hand():
    with torch.device("meta"):
        v3 = DeepLabV3(21, encoder="resnet101")
        v3plus = DeepLabV3Plus(21, encoder="resnet101")
        v3plus50 = DeepLabV3Plus(21, encoder="resnet50")
    classifier = conv(256, 21, bias=True)
    assert count_parameters(v3.aspp) == aspp(2048, sep=False) == 15_535_104
    assert count_parameters(v3) == RESNET101 + aspp(2048, sep=False) + classifier == 58_040_661
    decoder = (conv(256, 48) + bn(48)) + (separable(304, 256) + bn(256)) + (separable(256, 256) + bn(256))
    assert count_parameters(v3plus) == RESNET101 + aspp(2048, sep=True) + decoder + classifier == 45_674_853
    assert count_parameters(v3plus50) == RESNET50 + aspp(2048, sep=True) + decoder + classifier == 26_682_725


def test_multi_grid_rates_and_output_strides():
    encoder = ResNetEncoder("resnet50", output_stride=16, multi_grid=(1, 2, 4))
    assert [b.conv2.dilation[0] for b in encoder.layer4] == [2, 4, 8]  # Sec. 3.2: rate 2 x (1, 2, 4)
    encoder8 = ResNetEncoder("resnet50", output_stride=8, multi_grid=(1, 2, 4))
    assert [b.conv2.dilation[0] for b in encoder8.layer4] == [4, 8, 16]
    with pytest.raises(ValueError, match="multi_grid"):
        ResNetEncoder("resnet50", output_stride=16, multi_grid=(1, 2))
    assert deeplab_v3.scaled_rates(None, 16) == (6, 12, 18) and deeplab_v3.scaled_rates(None, 8) == (
        12,
        24,
        36,
    )
    x = torch.randn(1, 3, 64, 96)
    for stride in (32, 16, 8):
        lite = EfficientNetLiteEncoder(output_stride=stride).eval()
        with torch.no_grad():
            sizes = [tuple(f.shape[-2:]) for f in lite(x)]
        assert sizes[-1] == (64 // stride, 96 // stride) and lite.strides[-1] == stride


def test_efficientnet_lite_dilation_keeps_the_weights_and_the_early_features():
    torch.manual_seed(0)
    plain = EfficientNetLiteEncoder().eval()
    dilated = EfficientNetLiteEncoder(output_stride=16).eval()
    dilated.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = plain(x), dilated(x)
    for i in range(4):  # strides 2 .. 16 are computed by the same convolutions
        assert torch.allclose(a[i], b[i], atol=1e-6)
    assert b[-1].shape[-2:] == (4, 4) and a[-1].shape[-2:] == (2, 2)


@pytest.mark.parametrize("model_cls", [DeepLabV3, DeepLabV3Plus])
@pytest.mark.parametrize("size", [(176, 240), (69, 67)])
def test_lite_variants_give_logits_at_the_input_size(model_cls, size):
    model = model_cls(3, encoder="efficientnet_lite0").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 3, *size) and torch.isfinite(out).all()
    assert model.input_mean == (0.5, 0.5, 0.5)  # the Lite weights' [-1, 1] normalisation travels along


def test_aux_head_only_in_training_and_weighted_in_the_loss():
    torch.manual_seed(0)
    model = DeepLabV3(3, encoder="resnet50", aux=True, aux_weight=0.4).train()
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    out = model(x)
    (aux,) = model.aux_logits
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(model.training_loss(ce, out, y), ce(out, y) + 0.4 * ce(aux, y))
    model.eval()
    assert model.aux_logits is None
    with torch.no_grad():
        model(x)
    assert model.aux_logits is None
