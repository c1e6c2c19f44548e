"""ONNX export: ONNX Runtime logits equal PyTorch's (fixed and dynamic sizes), `segscope export` and
`segscope predict --backend onnxruntime` give the same label maps as the PyTorch backend, and bad uses get
one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime")

from segscope.cli.main import main  # noqa: E402
from segscope.errors import UserError  # noqa: E402
from segscope.factory import create_model, create_segmenter  # noqa: E402
from segscope.inference.onnx_export import OnnxRuntimeModel, export_onnx  # noqa: E402

# float32 ONNX Runtime vs PyTorch eager, per unit of the largest logit (at least 1): rounding only. Random
# initial weights give large intermediate activations (measured: 1.1e-4 for the Lite0 DeepLab v3+).
TOLERANCE = 5e-4


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("unet", {"base_channels": 4, "depth": 2}),
        ("segnet_basic", {}),  # max-unpooling with the pooling switches
        ("enet", {}),
        ("deeplabv3plus_efficientnet_lite0", {}),  # dilated depthwise convs, separable ASPP, image pooling
        ("pspnet_resnet50", {"aux": False}),  # adaptive pooling bins
    ],
)
def test_onnx_runtime_matches_pytorch(name, options, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, in_channels=3, **options).eval()
    dynamic = name != "pspnet_resnet50"  # its pooling bins are traced for one size
    size = (72, 88)  # PSPNet: a 9x11 stride-8 map, which neither the 2, 3 nor 6 bins divide
    report = export_onnx(model, tmp_path / "m.onnx", in_channels=3, size=size, dynamic=dynamic, name=name)
    scale = max(report.max_abs_logit, 1.0)
    assert report.max_abs_diff < TOLERANCE * scale, f"{name}: {report.max_abs_diff:.2e} of {scale:.1f}"
    assert len(report.checked_shapes) == (2 if dynamic else 1)
    ort_model = OnnxRuntimeModel(tmp_path / "m.onnx")
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(ort_model(x), model(x), atol=TOLERANCE * scale, rtol=0)


def test_pspnet_dynamic_export_is_refused_with_one_line(tmp_path):
    model = create_model("pspnet_resnet50", num_classes=2, in_channels=3, aux=False).eval()
    with pytest.raises(UserError, match="export without --dynamic") as info:
        export_onnx(model, tmp_path / "p.onnx", in_channels=3, size=(48, 48), dynamic=True, name="pspnet")
    assert "\n" not in str(info.value) and not (tmp_path / "p.onnx").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:FutureWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the bin edges are traced as constants
def test_traced_adaptive_pooling_equals_torch():
    """The pooling-matrix form used under tracing gives torch's bins, also where they overlap (9 -> 6)."""
    from segscope.models.layers.pooling import adaptive_avg_pool2d

    x = torch.randn(2, 3, 9, 11)
    for bins in (1, 2, 3, 6):
        traced = torch.jit.trace(lambda t, b=bins: adaptive_avg_pool2d(t, b), (x,), check_trace=False)
        assert "matmul" in str(traced.graph)  # the ONNX-friendly form was traced
        torch.testing.assert_close(traced(x), torch.nn.functional.adaptive_avg_pool2d(x, bins))


def _train_tiny_run(disc_dataset: Path, run: Path) -> None:
    code = main(
        ["train", "--data", str(disc_dataset), "--model", "unet", "--out", str(run), "--epochs", "2",
         "--batch-size", "4", "--augment", "none", "-o", "base_channels=4", "-o", "depth=2", "--quiet"]
    )  # fmt: skip
    assert code == 0


def test_cli_export_then_predict_with_onnxruntime(disc_dataset: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    _train_tiny_run(disc_dataset, run)
    assert main(["export", "--run", str(run), "--format", "onnx", "--dynamic"]) == 0
    printed = capsys.readouterr().out
    assert "max abs diff" in printed and (run / "model.onnx").is_file()
    diff = float(printed.split("max abs diff ")[1].split()[0])
    assert diff < TOLERANCE
    images = sorted((disc_dataset / "images").iterdir())[:3]
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        args = ["predict", "--run", str(run), *map(str, images), "--out", str(out), "--quiet"]
        assert main([*args, "--backend", backend]) == 0
    for image in images:
        a = np.asarray(Image.open(tmp_path / "torch" / f"{image.stem}.png"))
        b = np.asarray(Image.open(tmp_path / "onnxruntime" / f"{image.stem}.png"))
        assert (a == b).mean() > 0.999  # argmax ties may flip on rounding, nothing else


def test_fixed_size_export_refuses_another_size(tmp_path):
    model = create_model("unet", num_classes=2, in_channels=1, base_channels=4, depth=2).eval()
    export_onnx(model, tmp_path / "fixed.onnx", in_channels=1, size=(32, 32))
    with pytest.raises(Exception, match="exported for input size"):
        OnnxRuntimeModel(tmp_path / "fixed.onnx")(torch.randn(1, 1, 48, 48))


def test_bad_uses_give_one_line_and_exit_code_2(disc_dataset: Path, tmp_path: Path, capsys):
    classical = create_segmenter("otsu", num_classes=2)
    classical.save(tmp_path / "otsu")
    assert main(["export", "--run", str(tmp_path / "otsu")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a deep model" in err and "\n" not in err
    run = tmp_path / "run"
    _train_tiny_run(disc_dataset, run)
    image = sorted((disc_dataset / "images").iterdir())[0]
    args = ["predict", "--run", str(run), str(image), "--out", str(tmp_path / "o")]
    assert main([*args, "--backend", "onnxruntime"]) == 2
    err = capsys.readouterr().err.strip()
    assert "segscope export" in err and "\n" not in err
