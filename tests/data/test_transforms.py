import pytest
import torch
from torchvision import tv_tensors

from segscope.data.transforms import PRESETS, build_transforms


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
