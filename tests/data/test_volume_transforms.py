import numpy as np
import pytest
from scipy import ndimage

from segscope.data.volume_transforms import VolumeAugment, displacement_field, random_intensity
from segscope.errors import UserError


def labelled_volume(shape=(3, 4, 5)):
    """Every voxel its own label; the image's channels carry the same label (float) and its double."""
    mask = np.arange(np.prod(shape), dtype=np.int64).reshape(shape)
    image = np.stack([mask, 2 * mask], axis=-1).astype(np.float32)
    return image, mask


def hand_flips(mask):
    """All 8 axis flips written with index arithmetic (no np.flip)."""
    d, h, w = np.indices(mask.shape)
    D, H, W = mask.shape
    out = []
    for fd in (0, 1):
        for fh in (0, 1):
            for fw in (0, 1):
                out.append(mask[D - 1 - d if fd else d, H - 1 - h if fh else h, W - 1 - w if fw else w])
    return out


def hand_rotations(mask):
    """The 4 rotations in the (H, W) plane of a volume with H == W, by index arithmetic."""
    d, i, j = np.indices(mask.shape)
    n = mask.shape[1] - 1
    return [mask[d, i, j], mask[d, j, n - i], mask[d, n - i, n - j], mask[d, n - j, i]]


def test_flips_are_exact_permutations_and_all_eight_occur():
    image, mask = labelled_volume()
    candidates = hand_flips(mask)
    seen = set()
    aug = VolumeAugment("flip", seed=0)
    for _ in range(60):
        im, m = aug(image, mask)
        k = [i for i, c in enumerate(candidates) if np.array_equal(m, c)]
        assert len(k) == 1
        seen.add(k[0])
        np.testing.assert_array_equal(im[..., 0], m)  # image and mask moved together
        np.testing.assert_array_equal(im[..., 1], 2 * m)
    assert seen == set(range(8))


def test_rot90_is_an_exact_rotation_in_the_hw_plane():
    image, mask = labelled_volume((2, 4, 4))
    candidates = hand_rotations(mask)
    seen = set()
    aug = VolumeAugment("rot90", seed=1)
    for _ in range(40):
        im, m = aug(image, mask)
        k = [i for i, c in enumerate(candidates) if np.array_equal(m, c)]
        assert len(k) == 1
        seen.add(k[0])
        np.testing.assert_array_equal(im[..., 0], m)
    assert seen == {0, 1, 2, 3}


def test_rot90_keeps_the_shape_of_non_square_or_anisotropic_planes():
    for spacing, shape in [((1, 1, 1), (2, 3, 5)), ((1, 1, 2), (2, 4, 4))]:
        image, mask = labelled_volume(shape)
        candidates = hand_rotations(mask)[::2] if shape[1] == shape[2] else None
        aug = VolumeAugment("rot90", spacing=spacing, seed=2)
        for _ in range(20):
            _, m = aug(image, mask)
            assert m.shape == shape
            if candidates is not None:  # only 0° / 180° when the in-plane spacings differ
                assert any(np.array_equal(m, c) for c in candidates)


def test_elastic_keeps_mask_values_and_moves_voxels():
    rng = np.random.default_rng(0)
    mask = np.zeros((12, 16, 16), dtype=np.int64)
    mask[3:9, 4:12, 4:12] = 3
    mask[5:7, 6:10, 6:10] = 7
    image = (rng.random((*mask.shape, 1)) * 255).astype(np.uint8)
    aug = VolumeAugment(
        "elastic", spacing=(2, 1, 1), seed=0, elastic_magnitude=3, grid_spacing=8, elastic_p=1
    )
    moved = 0
    for _ in range(5):
        im, m = aug(image, mask)
        assert set(np.unique(m)) <= {0, 3, 7} and m.dtype == np.int64 and m.shape == mask.shape
        assert im.dtype == np.uint8 and im.shape == image.shape
        moved += int((m != mask).sum())
    assert moved > 0


def test_elastic_with_zero_magnitude_is_the_identity():
    rng = np.random.default_rng(1)
    mask = rng.integers(0, 4, (6, 7, 8)).astype(np.int64)
    for image in [
        rng.integers(0, 256, (6, 7, 8, 2)).astype(np.uint8),
        rng.random((6, 7, 8, 1)).astype(np.float32),
    ]:
        aug = VolumeAugment("elastic", seed=0, elastic_magnitude=0.0, elastic_p=1)
        im, m = aug(image, mask)
        np.testing.assert_array_equal(m, mask)
        np.testing.assert_array_equal(im, image)


def test_displacements_are_physical_units():
    # One control cell (grid spacing > extent): voxel (0, 0, 0) sits on a control point and takes its
    # vector exactly; with the same draw, a D spacing of 4 gives a quarter of the voxel displacement.
    iso = displacement_field((5, 5, 5), np.random.default_rng(3), magnitude=2, grid_spacing=100, smooth=0)
    aniso = displacement_field(
        (5, 5, 5), np.random.default_rng(3), magnitude=2, grid_spacing=100, smooth=0, spacing=(4, 1, 1)
    )
    expected = np.random.default_rng(3).standard_normal((3, 2, 2, 2))[:, 0, 0, 0] * 2
    np.testing.assert_allclose(iso[:, 0, 0, 0], expected)
    np.testing.assert_allclose(aniso[:, 0, 0, 0], expected / [4, 1, 1])


def test_displacement_is_a_cubic_bspline_of_the_control_grid():
    # the separable interpolation equals scipy's 3-D map_coordinates(order=3) of the control vectors
    field = displacement_field((9, 7, 6), np.random.default_rng(4), magnitude=1, grid_spacing=3, smooth=0)
    control = np.random.default_rng(4).standard_normal((3, 4, 3, 3))
    coords = np.indices((9, 7, 6)) / 3.0
    for c in range(3):
        ref = ndimage.map_coordinates(control[c], coords, order=3, mode="nearest")
        np.testing.assert_allclose(field[c], ref, atol=1e-10)


def test_intensity_touches_the_image_only():
    rng = np.random.default_rng(5)
    image = rng.integers(20, 230, (4, 5, 6, 2)).astype(np.uint8)
    mask = rng.integers(0, 3, (4, 5, 6)).astype(np.int64)
    im, m = VolumeAugment("intensity", seed=0)(image, mask)
    np.testing.assert_array_equal(m, mask)
    assert im.dtype == np.uint8 and not np.array_equal(im, image)
    f = random_intensity(image.astype(np.float32) / 255, np.random.default_rng(0))
    assert f.dtype == np.float32 and f.shape == image.shape


def test_spec_parsing():
    image, mask = labelled_volume()
    im, m = VolumeAugment("none")(image, mask)
    assert im is image and m is mask
    assert VolumeAugment("flip, rot90,elastic,intensity").tokens == ("flip", "rot90", "elastic", "intensity")
    with pytest.raises(UserError, match="unknown volume augmentation flop"):
        VolumeAugment("flip,flop")
    with pytest.raises(UserError, match="needs image"):
        VolumeAugment("flip")(mask, mask)
