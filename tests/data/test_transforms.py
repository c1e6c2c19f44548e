import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from segscope.data.transforms import PRESETS, MaxRatioCrop, build_transforms
from segscope.errors import UserError


def _pair(h=40, w=56):
    # the image encodes each pixel's own mask value, so any misalignment between them is visible
    mask = torch.randint(0, 8, (h // 8, w // 8)).repeat_interleave(8, 0).repeat_interleave(8, 1)
    image = (mask.float() / 7).expand(3, h, w).clone()
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


@pytest.mark.parametrize("preset", ["none", "light", "em"])
def test_geometry_moves_image_and_mask_together(preset):
    torch.manual_seed(3)
    t = build_transforms(preset, crop_size=(32, 32), fill_index=255)
    for _ in range(5):
        image, mask = _pair()
        x, y = t(image, mask)
        assert x.shape[-2:] == y.shape[-2:] == (32, 32)
        inside = y != 255
        if preset == "em":  # photometric jitter and noise change values, not which label goes where
            corr = torch.corrcoef(torch.stack([x[0][inside], y[inside].float()]))[0, 1]
            unrelated = _pair()[1][:32, :32]
            corr_unrelated = torch.corrcoef(torch.stack([x[0].flatten(), unrelated.flatten().float()]))[0, 1]
            assert corr > 0.8 and abs(corr_unrelated) < 0.6
        else:  # bilinear resampling blurs block edges: nearly every pixel still matches its label
            match = (x[0][inside] - y[inside].float() / 7).abs() < 0.05
            assert match.float().mean() > 0.75
            unrelated = _pair()[1][:32, :32]  # a mask that does not belong to x agrees by chance (~1/8)
            assert ((x[0] - unrelated.float() / 7).abs() < 0.05).float().mean() < 0.4


def test_rotation_fills_mask_with_ignore_value():
    t = build_transforms("strong", fill_index=99)
    torch.manual_seed(0)
    values = set()
    for _ in range(20):
        _, y = t(*_pair())
        values |= set(torch.unique(y).tolist())
    assert 99 in values and values <= set(range(8)) | {99}


def test_deterministic_under_seed():
    t = build_transforms("strong", crop_size=(24, 24))
    image, mask = _pair()
    torch.manual_seed(7)
    a = t(image, mask)
    torch.manual_seed(7)
    b = t(image, mask)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        build_transforms("wild")
    assert set(PRESETS) == {"none", "light", "strong", "em"}


def test_scale_jitter_without_crop_keeps_the_input_size():
    t = build_transforms("light", crop_size=None, fill_index=255)
    torch.manual_seed(1)
    for _ in range(6):
        x, y = t(*_pair(40, 56))
        assert x.shape[-2:] == y.shape[-2:] == (40, 56)


def _background_dominated(h=64, w=64):
    """89 % class 0, a 20x20 class-1 square (10 %) and an 8x8 ignored corner."""
    mask = torch.zeros(h, w, dtype=torch.long)
    mask[34:54, 8:28] = 1
    mask[:8, -8:] = 255
    image = torch.arange(3 * h * w, dtype=torch.float32).reshape(3, h, w) / (3 * h * w)
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


def test_max_ratio_crop_undersamples_background_dominated_crops():
    image, mask = _background_dominated()
    crop = MaxRatioCrop((24, 24), max_ratio=0.75, tries=10, ignore_index=255)
    # by hand: the fraction p of the 41 x 41 crop positions that satisfy the bound
    ok = [crop.dominant_ratio(mask[t : t + 24, l : l + 24]) <= 0.75 for t in range(41) for l in range(41)]
    p = float(np.mean(ok))
    assert 0.1 < p < 0.5
    torch.manual_seed(0)
    ratios = [crop.dominant_ratio(crop(image, mask)[1]) for _ in range(300)]
    torch.manual_seed(0)
    plain = v2.RandomCrop((24, 24))
    plain_ratios = [crop.dominant_ratio(plain(image, mask)[1]) for _ in range(300)]
    # each crop satisfies the bound with probability 1 - (1 - p)^10; a plain crop with probability p
    success = np.mean([r <= 0.75 for r in ratios])
    assert success == pytest.approx(1 - (1 - p) ** 10, abs=0.07)
    assert np.mean([r <= 0.75 for r in plain_ratios]) == pytest.approx(p, abs=0.07)
    assert np.mean(ratios) < np.mean(plain_ratios) - 0.1


def test_max_ratio_crop_moves_image_and_mask_together():
    image, mask = _background_dominated()
    crop = MaxRatioCrop((24, 24), max_ratio=0.75)
    torch.manual_seed(5)
    top, left, ratio = crop.sample_box(mask)
    torch.manual_seed(5)
    x, y = crop(image, mask)
    assert isinstance(x, tv_tensors.Image) and isinstance(y, tv_tensors.Mask)
    assert torch.equal(y, mask[top : top + 24, left : left + 24])
    assert torch.equal(x, image[:, top : top + 24, left : left + 24])
    assert ratio == crop.dominant_ratio(y) <= 0.75


def test_max_ratio_crop_keeps_the_bound_whenever_a_try_satisfies_it():
    # left half class 0, right half class 1: a 16x16 crop is at most 75 % one class iff it overlaps
    # the other half by >= 4 columns, i.e. left in 12..20 (9 of the 33 offsets)
    mask = torch.zeros(32, 48, dtype=torch.long)
    mask[:, 24:] = 1
    crop = MaxRatioCrop(16, max_ratio=0.75, tries=40)
    torch.manual_seed(1)
    for _ in range(100):
        top, left, ratio = crop.sample_box(mask)
        assert ratio <= 0.75 and 12 <= left <= 20  # 40 tries: all fail with probability 3e-6
    # an unsatisfiable bound (one class everywhere): falls back to the least dominated try
    assert MaxRatioCrop(16, max_ratio=0.5).sample_box(torch.zeros(32, 32, dtype=torch.long))[2] == 1.0
    ignored = torch.full((32, 32), 255, dtype=torch.long)
    assert MaxRatioCrop(16).dominant_ratio(ignored) == 1.0


def test_max_ratio_crop_pads_small_images_and_plugs_into_build_transforms():
    image, mask = _background_dominated(20, 20)
    torch.manual_seed(0)
    x, y = MaxRatioCrop((24, 30), ignore_index=255)(image, mask)
    assert x.shape[-2:] == y.shape[-2:] == (24, 30)
    assert (y == 255).sum() >= 24 * 30 - 20 * 20  # the padding is ignored
    t = build_transforms("light", crop_size=(24, 24), fill_index=255, crop_max_ratio=0.75)
    assert sum(isinstance(tr, MaxRatioCrop) for tr in t.transforms) == 1
    assert not any(
        isinstance(tr, MaxRatioCrop) for tr in build_transforms("light", crop_size=(24, 24)).transforms
    )
    image, mask = _background_dominated()
    torch.manual_seed(2)
    a = t(image, mask)
    torch.manual_seed(2)
    b = t(image, mask)
    assert a[0].shape[-2:] == (24, 24) and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(UserError, match="crop_max_ratio needs a crop size"):
        build_transforms("none", crop_max_ratio=0.75)
    with pytest.raises(UserError, match=r"max_ratio must be in \(0, 1\]"):
        MaxRatioCrop(8, max_ratio=1.5)


def test_plain_tensors_are_typed_and_transformed_together():
    # v2 alone would treat the second plain tensor as data and pass it through unflipped
    t = build_transforms("light", crop_size=(32, 32), fill_index=255)
    torch.manual_seed(4)
    for _ in range(5):
        image, mask = _pair()
        x, y = t(image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor))
        assert isinstance(x, tv_tensors.Image) and isinstance(y, tv_tensors.Mask)
        inside = y != 255
        assert ((x[0][inside] - y[inside].float() / 7).abs() < 0.05).float().mean() > 0.75


def test_elastic_grid_warps_image_and_mask_with_one_field_and_fills_the_mask():
    from segscope.data.transforms import ElasticGrid

    warp = ElasticGrid(sigma=10.0, grid=3, p=1.0, fill_index=99)
    torch.manual_seed(0)
    moved, filled = 0.0, 0
    for _ in range(10):
        image, mask = _pair(64, 64)
        x, y = warp(image, mask)
        assert x.shape == image.shape and y.shape == mask.shape and y.dtype == mask.dtype
        assert set(torch.unique(y).tolist()) <= set(range(8)) | {99}
        inside = y != 99
        # bilinear image vs nearest mask differ only along block edges
        assert ((x[0][inside] - y[inside].float() / 7).abs() < 0.05).float().mean() > 0.8
        moved += (y[inside] != mask[inside]).float().mean().item() / 10
        filled += int((~inside).sum())
    assert moved > 0.05 and filled > 0  # a 10 px field really moves labels and pulls in the border
    torch.manual_seed(0)
    image, mask = _pair(64, 64)
    assert ElasticGrid(p=0.0)(image, mask)[1] is mask
