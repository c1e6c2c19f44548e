"""ICNet: parameter counts against a hand count, the three branch resolutions, the CFF units, cascade
label guidance (aux logits + weighted loss) and the logits' shape at 176x240 and at odd sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segscope.factory import create_model
from segscope.inference import InferenceModel
from segscope.models import count_parameters
from segscope.models.semantic.icnet import ICNet, cascade_loss

# torchvision ResNets without their fc classifier (ImageNet counts minus fc weights and biases).
RESNET50 = 25_557_032 - (2048 * 1000 + 1000)
RESNET18 = 11_689_512 - (512 * 1000 + 1000)


def conv_bn(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + 2 * c_out  # no conv bias before BN; BN weight + bias


def icnet_head(layer2: int, layer4: int, k: int, guidance: bool = False) -> int:
    """Everything outside the ResNet, counted from the paper's Fig. 2 / 3 and the prototxt widths."""
    pyramid = conv_bn(layer4, 256, 1)  # conv5_4_k1
    high = conv_bn(3, 32, 3) + conv_bn(32, 32, 3) + conv_bn(32, 64, 3)  # conv1..3_sub1
    cff_low = conv_bn(256, 128, 3) + conv_bn(layer2, 128, 1)  # conv_sub4 + conv3_1_sub2_proj
    cff_high = conv_bn(128, 128, 3) + conv_bn(64, 128, 1)  # conv_sub2 + conv3_sub1_proj
    classifier = 128 * k + k  # conv6_cls
    aux = (256 * k + k) + (128 * k + k) if guidance else 0
    return pyramid + high + cff_low + cff_high + classifier + aux


@pytest.mark.parametrize(
    ("arch", "backbone", "layer2", "layer4"),
    [("resnet50", RESNET50, 512, 2048), ("resnet18", RESNET18, 128, 512)],
)
@pytest.mark.parametrize("guidance", [False, True])
def test_parameter_count_is_backbone_plus_hand_counted_head(arch, backbone, layer2, layer4, guidance):
    with torch.device("meta"):
        model = ICNet(19, arch=arch, label_guidance=guidance)
    assert count_parameters(model.encoder) == backbone
    assert count_parameters(model) == backbone + icnet_head(layer2, layer4, 19, guidance)
    if arch == "resnet50" and not guidance:
        assert count_parameters(model) == 24_581_171  # the count the module docstring states
        assert icnet_head(layer2, layer4, 19) == 1_073_139


@pytest.mark.parametrize("name", ["icnet_resnet18", "icnet_resnet50"])
@pytest.mark.parametrize("size", [(176, 240), (69, 67)])
def test_logits_at_the_input_size(name, size):
    model = create_model(name, num_classes=4, in_channels=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 4, *size) and torch.isfinite(out).all()
    assert model.aux_logits is None


def _record_shapes(model: ICNet) -> dict[str, list[tuple[int, int]]]:
    shapes: dict[str, list[tuple[int, int]]] = {"conv3_1": [], "layer4": [], "high": [], "stem_in": []}

    def hook(key):
        return lambda module, inputs, output: shapes[key].append(tuple(output.shape[-2:]))

    model.encoder.layer2[0].register_forward_hook(hook("conv3_1"))
    model.encoder.layer4.register_forward_hook(hook("layer4"))
    model.high.register_forward_hook(hook("high"))
    model.encoder.conv1.register_forward_hook(
        lambda module, inputs, output: shapes["stem_in"].append(tuple(inputs[0].shape[-2:]))
    )
    return shapes


@pytest.mark.parametrize("arch", ["resnet50", "resnet18"])
def test_branch_resolutions_are_the_papers(arch):
    """Low branch: the 1/4 image -> 1/32; medium: the 1/2 image -> conv3_1 at 1/16; high: 1/8.
    A low branch run on the full (or the 1/2) image would give layer4 maps of 22x30 (or 11x15)."""
    model = ICNet(3, arch=arch).eval()
    shapes = _record_shapes(model)
    with torch.no_grad():
        model(torch.randn(1, 3, 176, 240))
    assert shapes["stem_in"] == [(88, 120), (44, 60)]  # the ResNet sees the 1/2 and the 1/4 image only
    assert shapes["conv3_1"] == [(11, 15), (6, 8)]  # medium conv3_1 at 1/16; low conv3_1 at 1/32
    assert shapes["layer4"] == [(6, 8)]  # conv5_3 of the low branch at 1/32 (dilated conv4/conv5)
    assert shapes["high"] == [(22, 30)]  # three stride-2 convs on the full image: 1/8


def test_share_conv3_1_runs_the_early_layers_once():
    model = ICNet(3, arch="resnet18", share_conv3_1=True).eval()
    shapes = _record_shapes(model)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 176, 240))
    assert out.shape == (1, 3, 176, 240)
    assert shapes["stem_in"] == [(88, 120)] and shapes["conv3_1"] == [(11, 15)]
    assert shapes["layer4"] == [(6, 8)]  # the conv3_1 map shrunk by 2 -> still 1/32


def test_cascade_feature_fusion_unit_matches_fig3():
    model = ICNet(3, arch="resnet18", label_guidance=False)
    cff = model.cff_high
    assert cff.low[0].kernel_size == (3, 3) and cff.low[0].dilation == (2, 2) and cff.low[0].padding == (2, 2)
    assert cff.high[0].kernel_size == (1, 1)
    assert isinstance(cff.low[1], torch.nn.BatchNorm2d) and isinstance(cff.high[1], torch.nn.BatchNorm2d)
    cff.eval()
    low, high = torch.randn(1, 128, 5, 7), torch.randn(1, 64, 10, 14)
    fused, guidance = cff(low, high)
    up = F.interpolate(low, size=(10, 14), mode="bilinear", align_corners=False)
    assert guidance is None
    assert torch.allclose(fused, F.relu(cff.low(up) + cff.high(high)))


def test_label_guidance_sets_aux_logits_in_training_only_and_trains_every_parameter():
    torch.manual_seed(0)
    model = ICNet(3, arch="resnet18", label_guidance=True).train()
    x, y = torch.randn(2, 3, 176, 240), torch.randint(0, 3, (2, 176, 240))
    y[:, :10] = 255  # ignored rows stay ignored at every scale
    out = model(x)
    assert out.shape == (2, 3, 176, 240)
    aux16, aux8 = model.aux_logits
    assert aux16.shape == (2, 3, 11, 15) and aux8.shape == (2, 3, 22, 30)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    loss = cascade_loss(loss_fn, out, model.aux_logits, y)
    y16 = F.interpolate(y[:, None].float(), size=(11, 15), mode="nearest")[:, 0].long()
    y8 = F.interpolate(y[:, None].float(), size=(22, 30), mode="nearest")[:, 0].long()
    expected = 0.4 * loss_fn(aux16, y16) + 0.4 * loss_fn(aux8, y8) + loss_fn(out, y)
    assert torch.allclose(loss, expected)
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    model.eval()
    assert model.aux_logits is None  # no training graph kept (nor deep-copied by InferenceModel)
    with torch.no_grad():
        model(x[:1])
    assert model.aux_logits is None
    assert torch.allclose(cascade_loss(loss_fn, out, None, y), loss_fn(out, y))


def test_batchnorm_folding_keeps_the_logits():
    torch.manual_seed(0)
    model = ICNet(3, arch="resnet18").eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        eager = model(x)
    fast = InferenceModel(model)(x)
    assert torch.allclose(eager, fast, atol=1e-4)


def test_segscope_training_uses_the_cascade_label_guidance_loss(tmp_path):
    """Through DeepSegmenter.fit the guidance classifiers train (their weights move), i.e. the trainer
    optimises 0.4 L(1/16) + 0.4 L(1/8) + L(main), not the main loss alone."""
    from segscope.data import open_dataset
    from segscope.factory import create_segmenter
    from segscope.models.segmenter import training_loss
    from tests.conftest import write_folder_dataset

    data = open_dataset(write_folder_dataset(tmp_path / "d", n=2, size=64))
    seg = create_segmenter(
        "icnet_resnet18", num_classes=2, in_channels=1, epochs=1, batch_size=2, augment="none", lr=0.01
    )
    guidance = [
        m
        for n, m in seg.model.named_modules()
        if n.startswith("cff_") and isinstance(m, torch.nn.Conv2d) and m.out_channels == 2
    ]
    assert len(guidance) == 2, "one guidance classifier per CFF"
    start = [g.weight.detach().clone() for g in guidance]
    seg.fit(data, progress=False)
    assert all(not torch.equal(s, g.weight) for s, g in zip(start, guidance))
    plain = torch.nn.functional.cross_entropy
    assert training_loss(torch.nn.Linear(1, 1), plain) is plain  # models without the hook: the plain loss
