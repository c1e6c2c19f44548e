import numpy as np
import pytest
import torch

from segscope.data.volume_patches import VolumePatchDataset
from segscope.data.volume_transforms import VolumeAugment
from segscope.errors import DataError


def tiny_foreground_volume(seed: int = 0):
    """A 40^3 volume whose foreground (label 1) is one 4^3 cube: 64 of 64,000 voxels (0.1 %)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (40, 40, 40, 1)).astype(np.uint8)
    mask = np.zeros((40, 40, 40), dtype=np.int64)
    mask[20:24, 20:24, 20:24] = 1
    return image, mask


def test_foreground_oversampling_reaches_the_fraction():
    image, mask = tiny_foreground_volume()
    n = 300
    ds = VolumePatchDataset([image], [mask], (8, 8, 8), samples_per_epoch=n, foreground_fraction=0.33)
    hits = [bool((ds[i][1] == 1).any()) for i in range(n)]
    forced = [ds.is_foreground_index(i) for i in range(n)]
    assert sum(forced) == 99  # floor(300 * 0.33): the fraction is exact
    assert all(h for h, f in zip(hits, forced) if f)  # every forced patch contains foreground
    assert np.mean(hits) >= 0.33
    # uniform sampling: a patch meets the cube with probability (11 / 33)**3 ~ 3.7 %
    uniform = VolumePatchDataset([image], [mask], (8, 8, 8), samples_per_epoch=n, foreground_fraction=0.0)
    assert np.mean([bool((uniform[i][1] == 1).any()) for i in range(n)]) < 0.12


def test_foreground_class_is_drawn_uniformly_not_by_size():
    image, mask = tiny_foreground_volume()
    mask[:, :10, :10] = 2  # a large class beside the tiny one
    ds = VolumePatchDataset([image], [mask], (6, 6, 6), samples_per_epoch=200, foreground_fraction=1.0)
    tiny = np.mean([bool((ds[i][1] == 1).any()) for i in range(200)])
    assert 0.3 < tiny < 0.7  # class 1 is half of the draws though 1/64 of the foreground voxels


def test_patches_are_deterministic_per_seed_index_and_epoch():
    image, mask = tiny_foreground_volume()
    aug = VolumeAugment("flip,rot90,elastic,intensity", elastic_p=1, grid_spacing=8)
    a = VolumePatchDataset([image], [mask], (8, 8, 8), samples_per_epoch=6, augment=aug, seed=3)
    b = VolumePatchDataset([image], [mask], (8, 8, 8), samples_per_epoch=6, augment=aug, seed=3)
    for i in (0, 4, 5, 4):
        torch.testing.assert_close(a[i], b[i], rtol=0, atol=0)
    assert not torch.equal(a[1][0], a[2][0])
    c = VolumePatchDataset([image], [mask], (8, 8, 8), samples_per_epoch=6, augment=aug, seed=4)
    assert not torch.equal(a[1][0], c[1][0])
    first = a[1][0]
    a.set_epoch(1)
    assert not torch.equal(first, a[1][0])


def test_normalisation_and_dtypes_by_hand():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (4, 5, 6, 2)).astype(np.uint8)
    mask = rng.integers(0, 3, (4, 5, 6)).astype(np.int64)
    ds = VolumePatchDataset([image], [mask], (4, 5, 6), mean=(0.5, 0.25), std=(0.2, 0.1))
    x, y = ds[0]  # the patch is the whole volume
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape == (2, 4, 5, 6) and y.shape == (4, 5, 6)
    expected = (image[..., 1].astype(np.float64) / 255 - 0.25) / 0.1
    np.testing.assert_allclose(x[1].numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y.numpy(), mask)
    y[:] = 9  # the returned mask is a copy, not a view of the stored one
    assert (ds[0][1].numpy() == mask).all()


def test_small_volume_is_padded_with_the_fill_index():
    image = np.full((3, 5, 6, 1), 255, dtype=np.uint8)
    mask = np.ones((3, 5, 6), dtype=np.int64)
    ds = VolumePatchDataset([image], [mask], (4, 8, 8), fill_index=255, mean=(0.0,), std=(1.0,))
    x, y = ds[0]
    assert y.shape == (4, 8, 8)
    assert int((y == 255).sum()) == 4 * 8 * 8 - 3 * 5 * 6 and int((y == 1).sum()) == 3 * 5 * 6
    torch.testing.assert_close(x[0][y == 1], torch.ones(90))  # image 255 -> 1.0
    torch.testing.assert_close(x[0][y == 255], torch.zeros(4 * 8 * 8 - 90))  # padding 0


def test_augmented_masks_only_hold_input_values():
    image, mask = tiny_foreground_volume()
    mask[:5] = 4
    aug = VolumeAugment("flip,rot90,elastic", elastic_p=1, grid_spacing=8, elastic_magnitude=4)
    ds = VolumePatchDataset([image], [mask], (8, 8, 8), samples_per_epoch=20, augment=aug)
    for i in range(20):
        assert set(torch.unique(ds[i][1]).tolist()) <= {0, 1, 4}


def test_bad_input_is_a_data_error():
    image, mask = tiny_foreground_volume()
    with pytest.raises(DataError, match="volume 0: mask"):
        VolumePatchDataset([image], [mask[:-1]], (8, 8, 8))
    with pytest.raises(DataError, match="uint8"):
        VolumePatchDataset([image.astype(np.float32)], [mask], (8, 8, 8))
    with pytest.raises(DataError, match="as many masks"):
        VolumePatchDataset([image], [], (8, 8, 8))
    with pytest.raises(DataError, match="patch_size"):
        VolumePatchDataset([image], [mask], (8, 8))
