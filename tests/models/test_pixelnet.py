"""PixelNet: parameter counts against a hand count, hypercolumn interpolation against hand-computed
bilinear values, sparse sampling in training (count, mask, zero fill, gradient scale), dense eval logits
equal to the per-pixel MLP, and fit / save / load at a CPU width (the registry sweep skips the full one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import segscope
from segscope.data import open_dataset
from segscope.factory import create_segmenter
from segscope.models import count_parameters
from segscope.models.semantic.pixelnet import PixelNet, sample_features, sampled_target
from tests.conftest import write_folder_dataset

VGG16_CONVS = 14_714_688
SMALL = {"width": 0.125, "mlp_channels": (32, 32)}  # VGG16 / 8 (fc6/fc7 512), a 32-wide MLP


def head_parameters(k: int, mlp: tuple[int, ...]) -> int:
    """fc6 (7x7 on pool5's 512) + fc7 (1x1) + the MLP on the hypercolumn of conv1_2 .. conv5_3 and fc7."""
    fc6 = 512 * 7 * 7 * 4096 + 4096
    fc7 = 4096 * 4096 + 4096
    widths = [64 + 128 + 256 + 512 + 512 + 4096, *mlp, k]
    return fc6 + fc7 + sum(a * b + b for a, b in zip(widths, widths[1:]))


@pytest.mark.parametrize(
    ("mlp", "expected"), [((4096, 4096), 173_938_517), ((1024, 1024), 141_034_325), ((), None)]
)
def test_parameter_count_is_vgg16_plus_hand_counted_head(mlp, expected):
    with torch.device("meta"):
        model = PixelNet(21, mlp_channels=mlp)
    assert count_parameters(model.encoder) == VGG16_CONVS
    assert count_parameters(model) == VGG16_CONVS + head_parameters(21, mlp)
    if expected is not None:  # the counts the module docstring states
        assert count_parameters(model) == expected
    assert sum(model.tap_channels) == 5568


def test_hypercolumn_interpolation_equals_hand_computed_bilinear_values():
    # A 2x2 map of stride 2 over a 4x4 image: pixel x reads the map at (x + 0.5) / 2 - 0.5.
    f = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    ys, xs = torch.tensor([[[1, 0, 3, 2]]]), torch.tensor([[[2, 0, 3, 1]]])
    got = sample_features(f, ys, xs, stride=2)[0, 0, 0]
    # (y=1, x=2): map (0.25, 0.75) -> 0.75 * (0.25 * 0 + 0.75 * 1) + 0.25 * (0.25 * 2 + 0.75 * 3) = 1.25
    # (0, 0) and (3, 3): map (-0.25, -0.25) and (1.25, 1.25), clamped to the corners -> 0 and 3
    # (y=2, x=1): map (0.75, 0.25) -> 0.25 * (0.75 * 0 + 0.25 * 1) + 0.75 * (0.75 * 2 + 0.25 * 3) = 1.75
    assert torch.allclose(got, torch.tensor([1.25, 0.0, 3.0, 1.75]))
    # on exact multiples it is F.interpolate's bilinear up-sampling (align_corners=False)
    g = torch.randn(2, 3, 5, 6)
    yy, xx = torch.meshgrid(torch.arange(40), torch.arange(48), indexing="ij")
    dense = sample_features(g, yy.expand(2, -1, -1), xx.expand(2, -1, -1), stride=8)
    assert torch.allclose(
        dense, F.interpolate(g, size=(40, 48), mode="bilinear", align_corners=False), atol=1e-6
    )


def test_training_forward_samples_pixels_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = PixelNet(3, **SMALL).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 3, 64, 64)
    mask = model.last_sample_mask
    assert mask.shape == (2, 64, 64) and mask.sum((1, 2)).tolist() == [2000, 2000]  # the paper's 2,000
    assert (out.permute(1, 0, 2, 3)[:, ~mask] == 0).all()  # non-sampled pixels: zero logits
    assert (out.permute(1, 0, 2, 3)[:, mask] != 0).any(dim=0).all()
    out.logsumexp(1).mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    model.sample_pixels = 10_000  # more than the image has: every pixel once
    model(torch.randn(1, 3, 64, 64))
    assert model.last_sample_mask.all()


def test_only_sampled_pixels_reach_the_parameters_with_segscope_dense_ce():
    """Dense CE on the zero-filled logits gives the sampled pixels' CE gradient times sampled / pixels."""
    torch.manual_seed(0)
    model = PixelNet(3, **SMALL, dropout=0.0, sample_pixels=500).train()
    out = model(torch.randn(1, 3, 48, 64))
    y = torch.randint(0, 3, (1, 48, 64))
    dense = F.cross_entropy(out, y, ignore_index=255)
    masked = F.cross_entropy(out, sampled_target(y, model.last_sample_mask), ignore_index=255)
    weight = model.mlp[0].weight
    (g_dense,) = torch.autograd.grad(dense, weight, retain_graph=True)
    (g_masked,) = torch.autograd.grad(masked, weight)
    assert torch.allclose(g_dense, g_masked * 500 / (48 * 64), atol=1e-7, rtol=1e-4)


@pytest.mark.parametrize("size", [(176, 240), (69, 67)])
def test_eval_is_dense_and_equals_the_mlp_on_each_pixels_hypercolumn(size):
    torch.manual_seed(0)
    model = PixelNet(4, **SMALL).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 4, *size) and model.last_sample_mask is None
        maps = model.layer_maps(x)
        ys = torch.randint(0, size[0], (2, 1, 64))
        xs = torch.randint(0, size[1], (2, 1, 64))
        points = model.mlp(model.hypercolumns(maps, ys, xs))[:, :, 0]  # the training path's MLP
        picked = torch.stack([out[i][:, ys[i, 0], xs[i, 0]] for i in range(2)])
        assert torch.allclose(points, picked, atol=1e-5)
        model.chunk_pixels = 500  # row bands change nothing
        assert torch.allclose(model(x), out, atol=1e-6)


def test_dense_training_and_too_small_inputs():
    model = PixelNet(2, **SMALL, sample_pixels=0).train()
    out = model(torch.randn(2, 3, 40, 36))
    assert out.shape == (2, 2, 40, 36) and model.last_sample_mask is None
    with pytest.raises(ValueError, match="size"):
        model(torch.randn(1, 3, 31, 64))


def test_fits_predicts_and_round_trips_at_a_cpu_width(tmp_path):
    data = write_folder_dataset(tmp_path / "discs", n=4, size=64)
    train = open_dataset(data)
    seg = create_segmenter(
        "pixelnet_vgg16", num_classes=2, in_channels=1, **SMALL, sample_pixels=500,
        epochs=1, batch_size=2, samples_per_epoch=2, augment="none", device="cpu",
    )  # fmt: skip
    seg.fit(train.subset([0, 1]), train.subset([2]), out_dir=tmp_path / "run", progress=False)
    image = train.load_image(3)
    labels = seg.predict(image)
    assert labels.shape == image.shape[:2] and labels.dtype == np.int64
    again = segscope.load(tmp_path / "run")
    assert np.array_equal(again.predict(image), labels)
