"""EncNet: the Encoding layer against a naive loop, parameter counts against a hand count, the SE-loss
targets and loss, the weighted training loss (main + aux + SE), training-only auxiliary outputs and the
logits' shape at 176x240 and at odd sizes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from segscope.errors import UserError
from segscope.factory import create_model
from segscope.inference import InferenceModel
from segscope.losses.semantic_encoding import semantic_encoding_loss, semantic_encoding_targets
from segscope.models import count_parameters
from segscope.models.layers.encoding import Encoding
from segscope.models.segmenter import training_loss
from segscope.models.semantic.encnet import ContextEncodingModule, EncNet

# torchvision ResNets without their fc classifier (ImageNet counts minus fc weights and biases).
RESNET50 = 25_557_032 - (2048 * 1000 + 1000)
RESNET101 = 44_549_160 - (2048 * 1000 + 1000)


def naive_encoding(x: torch.Tensor, codewords: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The paper's equations, one feature and one codeword at a time: ``s_k = -scale_k``."""
    b, d = x.shape[:2]
    feats = x.reshape(b, d, -1)
    k = codewords.shape[0]
    out = torch.zeros(b, k, d, dtype=torch.float64)
    for n in range(b):
        for i in range(feats.shape[2]):
            xi = feats[n, :, i].double()
            r = [xi - codewords[j].double() for j in range(k)]
            s = [-scale[j].item() for j in range(k)]  # the paper's smoothing factors
            w = [math.exp(-s[j] * float(r[j] @ r[j])) for j in range(k)]
            for j in range(k):
                out[n, j] += (w[j] / sum(w)) * r[j]
    return out


@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (1, 5, 7)])
def test_encoding_layer_matches_a_naive_loop(shape):
    torch.manual_seed(0)
    layer = Encoding(5, 3)
    x = torch.randn(*shape)
    out = layer(x)
    assert out.shape == (shape[0], 3, 5) and out.dtype == torch.float32
    ref = naive_encoding(x, layer.codewords.detach(), layer.scale.detach())
    assert torch.allclose(out.double(), ref, atol=1e-5)


def test_encoding_layer_initialisation_gradients_and_autocast():
    torch.manual_seed(0)
    layer = Encoding(512, 32)
    bound = 1 / math.sqrt(32 * 512)
    assert layer.codewords.shape == (32, 512) and layer.codewords.abs().max() <= bound
    assert layer.scale.shape == (32,) and (layer.scale <= 0).all() and (layer.scale >= -1).all()
    x = torch.rand(2, 512, 6, 5, requires_grad=True)
    layer(x).square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (x, layer.codewords, layer.scale))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = layer(x)
    assert low.dtype == torch.float32 and torch.allclose(low, layer(x).detach(), atol=1e-4)
    with pytest.raises(ValueError, match="size"):
        layer(torch.randn(1, 4, 3, 3))


def conv_bn(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + 2 * c_out  # no conv bias before BN; BN weight + bias


def encnet_head(k: int, *, se: bool = True, aux: bool = True, codewords: int = 32) -> int:
    """Everything outside the ResNet, counted from the authors' EncHead / EncModule / FCNHead."""
    conv5 = conv_bn(2048, 512, 3)
    module = conv_bn(512, 512, 1) + (codewords * 512 + codewords) + 2 * codewords + (512 * 512 + 512)
    classifier = 512 * k + k
    se_head = 512 * k + k if se else 0
    aux_head = conv_bn(1024, 256, 3) + 256 * k + k if aux else 0
    return conv5 + module + classifier + se_head + aux_head


@pytest.mark.parametrize(("arch", "backbone"), [("resnet50", RESNET50), ("resnet101", RESNET101)])
@pytest.mark.parametrize(("se_weight", "aux"), [(0.2, True), (0.0, False)])
def test_parameter_count_is_backbone_plus_hand_counted_head(arch, backbone, se_weight, aux):
    with torch.device("meta"):
        model = EncNet(59, arch=arch, se_loss_weight=se_weight, aux=aux)
    assert count_parameters(model.encoder) == backbone
    assert count_parameters(model) == backbone + encnet_head(59, se=se_weight > 0, aux=aux)
    if se_weight and aux:  # the counts the module docstring states
        assert count_parameters(model) == {"resnet50": 35_924_049, "resnet101": 54_916_177}[arch]
    assert (model.context.se is None) == (se_weight == 0) and (model.aux_head is None) == (not aux)


def test_resnet_counts_are_torchvision_without_fc():
    assert (RESNET50, RESNET101) == (23_508_032, 42_500_160)
    assert encnet_head(59) == 35_924_049 - RESNET50


def test_se_targets_ignore_the_ignore_index_and_out_of_range_values():
    mask = torch.tensor(
        [
            [[0, 0, 255], [2, 255, 255]],  # classes 0 and 2
            [[255, 255, 255], [255, 255, 255]],  # nothing labelled: no class present
            [[1, 1, 1], [1, 7, 3]],  # 1 and 3; 7 is outside [0, 4)
        ]
    )
    expected = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1]])
    assert torch.equal(semantic_encoding_targets(mask, 4), expected)
    assert torch.equal(semantic_encoding_targets(mask.to(torch.uint8), 4), expected)  # mask dtype
    assert semantic_encoding_targets(mask, 4, ignore_index=1)[2].tolist() == [0, 0, 0, 1]


def test_se_loss_is_the_mean_binary_cross_entropy_of_the_presence_vector():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0], [-3.0, 1.5, 0.25, -0.5]])
    mask = torch.tensor([[[0, 2], [255, 2]], [[3, 3], [255, 255]]])
    y = [[1, 0, 1, 0], [0, 0, 0, 1]]
    terms = []
    for n in range(2):
        for c in range(4):
            p = 1 / (1 + math.exp(-logits[n, c].item()))
            terms.append(-(y[n][c] * math.log(p) + (1 - y[n][c]) * math.log(1 - p)))
    loss = semantic_encoding_loss(logits, mask, 4)
    assert loss.shape == () and math.isclose(loss.item(), sum(terms) / len(terms), rel_tol=1e-6)
    with pytest.raises(ValueError, match="size"):
        semantic_encoding_loss(logits[:, :3], mask, 4)


@pytest.fixture(scope="module")
def trained_forward():
    torch.manual_seed(0)
    model = EncNet(3, se_loss_weight=0.3, aux_weight=0.25).train()
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    y[0, :, :40] = 255  # ignored pixels: no class from them
    y[0, :, 40:] = 1  # image 0 holds class 1 only
    out = model(x)
    return model, x, y, out


def test_training_loss_is_main_plus_weighted_aux_plus_weighted_se(trained_forward):
    model, x, y, out = trained_forward
    (aux,), se = model.aux_logits, model.se_logits
    assert out.shape == aux.shape == (2, 3, 64, 64) and se.shape == (2, 3)
    ce = torch.nn.CrossEntropyLoss(ignore_index=255)
    presence = torch.tensor([[0.0, 1, 0], [1, 1, 1]])
    bce = F.binary_cross_entropy(torch.sigmoid(se), presence)
    expected = ce(out, y) + 0.25 * ce(aux, y) + 0.3 * bce
    loss = training_loss(model, ce)(out, y)  # the hook DeepSegmenter's trainer uses
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(model.training_loss(ce, out, y), expected, atol=1e-6)
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []  # SE and aux heads train


def test_aux_and_se_outputs_exist_in_training_only(trained_forward):
    model, x, y, out = trained_forward
    model.eval()
    assert model.aux_logits is None and model.se_logits is None  # no training graph kept
    with torch.no_grad():
        logits = model(x[:1])
    assert logits.shape == (1, 3, 64, 64) and model.aux_logits is None and model.se_logits is None
    ce = torch.nn.CrossEntropyLoss(ignore_index=255)
    assert torch.allclose(model.training_loss(ce, logits, y[:1]), ce(logits, y[:1]))  # main term only
    fast = InferenceModel(model)(x[:1])  # BN folding keeps the logits (and deep-copies cleanly)
    assert torch.allclose(fast, logits, atol=1e-4)
    model.train()


def test_attention_is_residual_by_default_and_the_papers_product_on_request():
    torch.manual_seed(0)
    x = torch.rand(2, 8, 5, 6)
    for residual in (True, False):
        module = ContextEncodingModule(8, 4, residual=residual).eval()
        with torch.no_grad():
            y, e = module(x)
            gamma = torch.sigmoid(module.fc(e))[:, :, None, None]
        assert e.shape == (2, 8)
        assert torch.allclose(y, F.relu(x + x * gamma) if residual else x * gamma)


@pytest.mark.parametrize("size", [(176, 240), (69, 67)])
def test_logits_at_the_input_size(size):
    torch.manual_seed(0)
    model = create_model("encnet_resnet50", num_classes=4, in_channels=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 4, *size) and torch.isfinite(out).all()
    assert model.aux_logits is None and model.se_logits is None


def test_registered_builders_and_options():
    with torch.device("meta"):
        r101 = create_model("encnet_resnet101", num_classes=5, in_channels=1, codewords=16, aux=False)
        plain = create_model("encnet_resnet50", num_classes=5, se_loss_weight=0, residual_attention=False)
    assert r101.encoder.arch == "resnet101" and r101.encoder.conv1.in_channels == 1
    assert r101.context.encoding.codewords.shape == (16, 512) and r101.aux_weights == ()
    assert plain.context.se is None and plain.se_loss_weight == 0 and plain.aux_weights == (0.2,)
    assert not plain.context.residual and plain.encoder.strides[-1] == 8
    with pytest.raises(UserError, match="encnet_resnet50"):
        create_model("encnet_resnet50", num_classes=5, se_loss_weight=-1)
