from pathlib import Path

import numpy as np
import pytest
import torch

import segscope
from segscope.errors import UserError
from segscope.inference.tiling import overlap_tile as _overlap_tile
from segscope.models.semantic.unet import UNet


def test_fit_predict_save_load_round_trip(disc_dataset: Path, tmp_path: Path):
    ds = segscope.open_dataset(disc_dataset)
    seg = segscope.create_segmenter(
        "unet",
        num_classes=2,
        in_channels=1,
        base_channels=4,
        depth=2,
        epochs=25,
        lr=1e-2,
        batch_size=4,
        augment="none",
        schedule="constant",
        channels_last=False,
    )
    seg.fit(ds.subset(range(6)), ds.subset([6, 7]), out_dir=tmp_path / "run", progress=False)
    image, mask = ds[7]
    pred = seg.predict(image)
    assert pred.shape == mask.shape and pred.dtype == np.int64
    assert (pred == mask).mean() > 0.9  # a bright disc on a dark background is easy
    probs = seg.predict_proba(image)
    assert probs.shape == (2, 48, 48) and np.allclose(probs.sum(0), 1, atol=1e-5)
    again = segscope.load(tmp_path / "run")
    np.testing.assert_array_equal(again.predict(image), pred)
    assert again.classes == ["background", "foreground"] and len(again.history) == 25
    assert {"val_mean_iou", "train_loss"} <= set(seg.history[-1])


def test_bfloat16_inference_agrees_with_float32(disc_dataset: Path):
    ds = segscope.open_dataset(disc_dataset)
    kw = dict(num_classes=2, in_channels=1, base_channels=4, depth=2, epochs=3, augment="none")
    seg = segscope.create_segmenter("unet", **kw).fit(ds, progress=False)
    fast = segscope.create_segmenter("unet", inference_dtype="bfloat16", **kw)
    fast.model.load_state_dict(seg.model.state_dict())
    image = ds[0][0]
    logits32, logits16 = seg.logits(image), fast.logits(image)
    assert torch.allclose(logits32, logits16, atol=0.1 * float(logits32.abs().max()))
    # switching a trained segmenter's precision rebuilds its fast model: bf16 logits, then fp32 exactly again
    assert torch.equal(seg.set_inference_dtype("bfloat16").logits(image), logits16)
    assert torch.equal(seg.set_inference_dtype("float32").logits(image), logits32)
    with pytest.raises(UserError, match="float32 or bfloat16"):
        seg.set_inference_dtype("float16")


def test_overlap_tile_equals_one_pass_over_the_mirrored_image():
    torch.manual_seed(0)
    model = UNet(2, 1, base_channels=4, depth=2, padding="valid").eval()
    margin = model.output_margin  # 2 levels: (4+8+16 + 4+8) / 2 = 20
    assert margin == 20
    x = torch.randn(1, 1, 40, 56)
    with torch.no_grad():
        tiled = _overlap_tile(model, x, margin, tile=20)
        whole = model(torch.nn.functional.pad(x, (margin,) * 4, mode="reflect"))
    assert tiled.shape == (1, 2, 40, 56)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-4)


def test_bad_options_are_user_errors():
    with pytest.raises(UserError, match="bad option"):
        segscope.create_segmenter("unet", num_classes=2, base_chanels=4)
    with pytest.raises(UserError, match="optimizer must be one of"):
        segscope.create_segmenter("unet", num_classes=2, optimizer="adam")
    with pytest.raises(KeyError, match="did you mean unet"):
        segscope.create_segmenter("unte", num_classes=2)
