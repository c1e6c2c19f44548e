"""PSPNet and ParseNet: parameter counts against hand counts, the pyramid pooling module (shape, bins), the
auxiliary loss (present in training only, weight 0.4), the L2 normalisation layer, ParseNet's context on/off,
its DeepLab-LargeFOV body, weights-file loading, and the logits' shape at 176x240 and at odd sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from segscope.factory import create_model
from segscope.models import count_parameters
from segscope.models.encoders.efficientnet_lite import EfficientNetLiteEncoder
from segscope.models.encoders.vgg import VGGEncoder
from segscope.models.layers.l2norm import L2Norm
from segscope.models.layers.ppm import PyramidPoolingModule
from segscope.models.semantic.deeplab_v1 import DeepLabV1, imagenet_fc_state
from segscope.models.semantic.parsenet import GlobalContext, ParseNet
from segscope.models.semantic.pspnet import PSPNet

# torchvision ResNets without their fc classifier (ImageNet counts minus fc weights and biases).
RESNET50 = 25_557_032 - (2048 * 1000 + 1000)
RESNET101 = 44_549_160 - (2048 * 1000 + 1000)
VGG16_CONVS = 14_714_688  # the 13 convolutions of VGG16 (138,357,544 minus the three fc layers)


def conv_bn(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + 2 * c_out  # no conv bias before BN; BN weight + bias


def conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def psp_head(c4: int, c3: int, k: int, aux: bool) -> int:
    """Everything outside the encoder, from Fig. 3 / Sec. 3.3: pyramid, final conv, classifier, aux head."""
    reduction = c4 // 4
    pyramid = 4 * conv_bn(c4, reduction, 1)
    final = conv_bn(c4 + 4 * reduction, 512, 3) + conv(512, k, 1)
    auxiliary = conv_bn(c3, c3 // 4, 3) + conv(c3 // 4, k, 1) if aux else 0
    return pyramid + final + auxiliary


def test_torchvision_backbone_counts_are_the_documented_ones():
    with torch.device("meta"):
        for arch, expected in (("resnet50", 23_508_032), ("resnet101", 42_500_160)):
            net = getattr(torchvision.models, arch)()
            assert count_parameters(net) - count_parameters(net.fc) == expected
        vgg = torchvision.models.vgg16()
    assert count_parameters(vgg.features) == VGG16_CONVS
    assert RESNET50 == 23_508_032 and RESNET101 == 42_500_160


@pytest.mark.parametrize(("arch", "backbone"), [("resnet50", RESNET50), ("resnet101", RESNET101)])
@pytest.mark.parametrize("aux", [True, False])
def test_pspnet_parameter_count_is_backbone_plus_hand_counted_head(arch, backbone, aux):
    with torch.device("meta"):
        model = PSPNet(21, encoder=arch, aux=aux)
    assert count_parameters(model.encoder) == backbone
    assert count_parameters(model) == backbone + psp_head(2048, 1024, 21, aux)
    documented = {
        ("resnet50", True): 48_957_802,
        ("resnet50", False): 46_592_597,
        ("resnet101", True): 67_949_930,
        ("resnet101", False): 65_584_725,
    }
    assert count_parameters(model) == documented[(arch, aux)]
    assert psp_head(2048, 1024, 21, False) == 4_198_400 + 18_886_165  # pyramid + final conv/classifier


def test_pspnet_efficientnet_lite0_count_and_taps():
    with torch.device("meta"):
        model = PSPNet(21, encoder="efficientnet_lite0")
        encoder = EfficientNetLiteEncoder("efficientnet_lite0")
    assert model.encoder.strides == (2, 4, 8, 8, 8)  # dilated to output stride 8
    assert model.encoder.out_channels[-2:] == (112, 320)
    assert count_parameters(model.encoder) == count_parameters(encoder) == 2_958_848  # dilation adds none
    assert count_parameters(model) == 2_958_848 + psp_head(320, 112, 21, True) == 6_051_694
    assert model.ppm.out_channels == 640 and model.aux_head[0].in_channels == 112
    assert model.input_mean == (0.5, 0.5, 0.5) and model.input_std == (0.5, 0.5, 0.5)


def test_pyramid_pooling_module_shape_bins_and_layout():
    torch.manual_seed(0)
    ppm = PyramidPoolingModule(2048).eval()
    assert ppm.bins == (1, 2, 3, 6) and ppm.reduction == 512 and ppm.out_channels == 4096
    for stage in ppm.stages:
        assert stage[0].kernel_size == (1, 1) and (stage[0].in_channels, stage[0].out_channels) == (2048, 512)
        assert isinstance(stage[1], nn.BatchNorm2d) and isinstance(stage[2], nn.ReLU)
    pooled: list[tuple[int, int]] = []
    for stage in ppm.stages:
        stage.register_forward_hook(lambda m, i, o: pooled.append(tuple(o.shape[-2:])))
    x = torch.randn(2, 2048, 9, 11)
    with torch.no_grad():
        out = ppm(x)
    assert out.shape == (2, 4096, 9, 11)
    assert pooled == [(1, 1), (2, 2), (3, 3), (6, 6)]
    assert torch.equal(out[:, :2048], x)  # concatenated with the input map
    global_level = out[:, 2048:2560]
    assert torch.allclose(global_level, global_level[..., :1, :1].expand_as(global_level))  # 1x1 bin
    expected = ppm.stages[1](F.adaptive_avg_pool2d(x, 2))
    expected = F.interpolate(expected, size=(9, 11), mode="bilinear", align_corners=False)
    assert torch.allclose(out[:, 2560:3072], expected, atol=1e-6)
    custom = PyramidPoolingModule(64, bins=(1, 3))
    assert custom.reduction == 32 and custom.out_channels == 128


def test_pspnet_layout_differs_from_segmentation_models_pytorch_as_documented():
    smp = pytest.importorskip("segmentation_models_pytorch")
    with torch.device("meta"):
        theirs = smp.PSPNet(encoder_name="resnet50", encoder_weights=None, classes=21)
        ours = PSPNet(21, encoder="resnet50")
    # SMP's pyramid sits on layer2 (encoder_depth=3: 512 channels at stride 8), ours on dilated layer4.
    assert theirs.encoder.out_channels[-1] == 512 and ours.ppm.in_channels == 2048
    blocks = [b.pool[1] for b in theirs.decoder.psp.blocks]
    assert [b[0].weight.shape for b in blocks] == [torch.Size([128, 512, 1, 1])] * 4  # C/4 per bin, as ours
    assert isinstance(blocks[0][1], nn.Identity)  # no BN on SMP's 1x1 bin; ours keeps it
    assert all(isinstance(stage[1], nn.BatchNorm2d) for stage in ours.ppm.stages)
    assert theirs.decoder.conv[0].kernel_size == (1, 1) and ours.head[0][0].kernel_size == (3, 3)
    assert theirs.decoder.dropout.p == 0.2 and ours.head[1].p == 0.1
    assert theirs.segmentation_head[0].kernel_size == (3, 3) and ours.head[2].kernel_size == (1, 1)
    assert not hasattr(theirs, "aux_head") and ours.aux_head is not None
    smp_decoder = conv(512, 128, 1) + 3 * conv_bn(512, 128, 1) + conv_bn(1024, 512, 1)
    assert count_parameters(theirs.decoder) == smp_decoder == 788_352
    assert count_parameters(theirs) == RESNET50 + smp_decoder + conv(512, 21, 3) == 24_393_173


def _lite(aux: bool = True, k: int = 3) -> PSPNet:
    """EfficientNet-Lite0 at its native stride 32 (fast on CPU: dilated depthwise convolutions are not);
    the auxiliary mechanism does not depend on the stride."""
    return PSPNet(k, encoder="efficientnet_lite0", aux=aux, output_stride=32)


def test_aux_logits_in_training_only_and_weighted_04():
    torch.manual_seed(0)
    model = _lite().train()
    x, y = torch.randn(2, 3, 64, 96), torch.randint(0, 3, (2, 64, 96))
    y[:, :5] = 255
    out = model(x)
    assert out.shape == (2, 3, 64, 96)
    assert model.aux_weights == (0.4,)
    (aux,) = model.aux_logits
    assert aux.shape == (2, 3, 64, 96)  # up-sampled to the input
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    loss = model.training_loss(loss_fn, out, y)
    assert torch.allclose(loss, 1.0 * loss_fn(out, y) + 0.4 * loss_fn(aux, y))
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    model.eval()
    assert model.aux_logits is None
    with torch.no_grad():
        model(x[:1])
    assert model.aux_logits is None
    plain = _lite(aux=False).train()
    out = plain(x)
    assert plain.aux_head is None and plain.aux_logits is None and plain.aux_weights == ()
    assert torch.allclose(plain.training_loss(loss_fn, out, y), loss_fn(out, y))


def test_l2norm_gives_scaled_unit_norm_and_its_scale_learns():
    torch.manual_seed(0)
    layer = L2Norm(8)
    assert torch.equal(layer.weight.detach(), torch.full((8,), 10.0))
    x = torch.randn(2, 8, 5, 7)
    y = layer(x)
    assert torch.allclose(y.norm(dim=1), torch.full((2, 5, 7), 10.0), atol=1e-5)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(1.0, 9.0))
    y = layer(x)
    assert torch.allclose(y, x / x.norm(dim=1, keepdim=True) * torch.arange(1.0, 9.0)[None, :, None, None])
    y.sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert torch.equal(L2Norm(4)(torch.zeros(1, 4, 2, 2)), torch.zeros(1, 4, 2, 2))  # no NaN at zero
    assert L2Norm(4)(torch.randn(3, 4)).shape == (3, 4)  # vectors too


def test_global_context_concatenates_normalised_local_and_unpooled_global_features():
    torch.manual_seed(0)
    module = GlobalContext(16, scale=10.0)
    x = torch.relu(torch.randn(2, 16, 6, 9))
    out = module(x)
    assert out.shape == (2, 32, 6, 9) and module.out_channels == 32
    local, glob = out[:, :16], out[:, 16:]
    assert torch.allclose(local.norm(dim=1), torch.full((2, 6, 9), 10.0), atol=1e-5)
    mean = x.mean(dim=(-2, -1))
    expected = 10.0 * mean / mean.norm(dim=1, keepdim=True)
    assert torch.allclose(glob, expected[..., None, None].expand_as(glob), atol=1e-5)  # replicated


def parsenet_count(width_channels: tuple[int, int], k: int, context: bool) -> int:
    """VGG16 convs + fc6 (3x3) + fc7 (1x1) + [2 C scales] + classifier, for conv5 width c5, fc width c."""
    c5, c = width_channels
    fc = conv(c5, c, 3) + conv(c, c, 1)
    return fc + (2 * c + conv(2 * c, k, 1) if context else conv(c, k, 1))


@pytest.mark.parametrize("context", [True, False])
def test_parsenet_parameter_count_and_the_cost_of_context(context):
    with torch.device("meta"):
        model = ParseNet(21, context=context)
        small = ParseNet(21, context=context, width=0.25)
        small_vgg = VGGEncoder(width=0.25)
    assert count_parameters(model.encoder) == VGG16_CONVS
    assert count_parameters(model) == VGG16_CONVS + parsenet_count((512, 1024), 21, context)
    assert count_parameters(model) == (20_528_981 if context else 20_505_429)
    assert count_parameters(small) == count_parameters(small_vgg) + parsenet_count((128, 256), 21, context)
    assert 20_528_981 - 20_505_429 == 2 * 1024 + 1024 * 21  # two scale vectors + the wider classifier


def test_parsenet_geometry_is_deeplab_largefov_and_the_baseline_is_deeplab_v1():
    model = ParseNet(3, width=0.25).eval()
    pools = [m for m in model.encoder.features if isinstance(m, nn.MaxPool2d)]
    assert [p.stride for p in pools] == [2, 2, 2, 1, 1] and all(p.kernel_size == 3 for p in pools)
    conv5 = [m for m in model.encoder.features if isinstance(m, nn.Conv2d)][-3:]
    assert all(c.dilation == (2, 2) and c.padding == (2, 2) for c in conv5)
    fc6, fc7 = model.fully_connected.fc6, model.fully_connected.fc7
    assert fc6.kernel_size == (3, 3) and fc6.dilation == (12, 12) and fc7.kernel_size == (1, 1)
    assert not hasattr(model.fully_connected, "pool5a") and hasattr(
        ParseNet(3, pool5a=True).fully_connected, "pool5a"
    )
    shapes = []
    model.fully_connected.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[-2:])))
    with torch.no_grad():
        model(torch.randn(1, 3, 176, 240))
    assert shapes == [(23, 31)]  # fc7 at output stride 8, pixel j on input pixel 8 j: ceil((H - 1) / 8) + 1
    with torch.device("meta"):
        baseline, deeplab = ParseNet(21, context=False), DeepLabV1(21)
    assert baseline.fully_connected.fc6.out_channels == 1024
    assert count_parameters(baseline) == count_parameters(deeplab) == 20_505_429


def test_parsenet_loads_a_torchvision_format_weights_file(tmp_path):
    """``pretrained`` = a file in torchvision's VGG16 key format (here a width-0.25 one, 1024-wide fc)."""
    torch.manual_seed(0)
    features = {k: torch.randn_like(v) for k, v in VGGEncoder(width=0.25).state_dict().items()}
    state = {
        **features,
        "classifier.0.weight": torch.randn(1024, 128 * 49),
        "classifier.0.bias": torch.randn(1024),
        "classifier.3.weight": torch.randn(1024, 1024),
        "classifier.3.bias": torch.randn(1024),
        "classifier.6.weight": torch.randn(1000, 1024),
        "classifier.6.bias": torch.randn(1000),
    }
    path = tmp_path / "vgg16_small.pth"
    torch.save(state, path)
    model = ParseNet(3, width=0.25, pretrained=str(path))
    assert torch.equal(model.encoder.features[0].weight, state["features.0.weight"])
    reduced = imagenet_fc_state(state, kernel=3, channels=256)  # DeepLab's reduction: 7x7 taps 0, 3, 6
    assert torch.equal(model.fully_connected.fc6.weight, reduced["fc6.weight"])
    assert torch.equal(model.fully_connected.fc7.weight, reduced["fc7.weight"])
    assert model.fully_connected.fc6.weight.shape == (256, 128, 3, 3)
    with pytest.raises(ValueError, match="width"):
        ParseNet(3, width=0.25, pretrained=True)


@pytest.mark.parametrize("size", [(176, 240), (69, 67)])
@pytest.mark.parametrize(
    "build",
    [
        lambda: create_model("pspnet_resnet50", num_classes=4),
        lambda: create_model("pspnet_efficientnet_lite0", num_classes=4),
        lambda: create_model("parsenet_vgg16", num_classes=4, width=0.25),
        lambda: create_model("parsenet_vgg16", num_classes=4, width=0.25, context=False),
    ],
    ids=["pspnet_resnet50", "pspnet_efficientnet_lite0", "parsenet_vgg16_w025", "parsenet_baseline_w025"],
)
def test_logits_at_the_input_size(build, size):
    torch.manual_seed(0)
    model = build().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 4, *size) and torch.isfinite(out).all()
    assert getattr(model, "aux_logits", None) is None
