import numpy as np
import pytest
import torch
from scipy import ndimage

from segscope.metrics import (
    Evaluator,
    hausdorff95,
    hausdorff_distance,
    mean_surface_distance,
    surface_distances,
    surface_scores,
)
from tests.metrics.test_boundary import _reference_boundary_f1
from tests.metrics.test_rand import reference_adapted_rand_error

SPACING = (2.0, 1.0, 0.5)  # (z, y, x), anisotropic
# MONAI 1.5+ warns about its own internal call get_mask_edges(always_return_as_numpy=...)
MONAI_WARNING = "ignore:.*always_return_as_numpy:FutureWarning"


def _blobs(seed: int, shape=(14, 18, 22), threshold=0.5, sigma=2.0) -> np.ndarray:
    """A random 3-D mask: smoothed uniform noise, thresholded."""
    noise = np.random.default_rng(seed).random(shape)
    return ndimage.gaussian_filter(noise, sigma) > threshold


def _labels(seed: int, shape=(14, 18, 22), num_classes=3) -> np.ndarray:
    smooth = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 2)
    return np.digitize(smooth, np.quantile(smooth, np.linspace(0, 1, num_classes + 1)[1:-1]))


# -- hand-computed values ---------------------------------------------------------------------------


def test_cubes_offset_along_each_axis_by_hand():
    # A: a 3x3x3 cube; its surface is every voxel but the centre (26 voxels): the 9 of the bottom layer,
    # the ring of 8 of the middle layer, the 9 of the top layer. B: A shifted by 2 voxels along one axis,
    # so A's top layer is B's bottom layer. Along that axis the surface distances A -> B are
    # 9 x 0 (shared layer), 8 x 1 step (middle ring to B's bottom layer), 9 x 2 steps (bottom layer),
    # and B -> A the same by symmetry. One step costs the spacing of that axis (2, 1 or 0.5).
    a = np.zeros((9, 9, 9), bool)
    a[2:5, 2:5, 2:5] = True
    for axis, step in enumerate(SPACING):
        b = np.roll(a, 2, axis=axis)
        ab, ba = surface_distances(a, b, spacing=SPACING)
        expected = np.sort([0.0] * 9 + [step] * 8 + [2 * step] * 9)
        np.testing.assert_allclose(np.sort(ab), expected)
        np.testing.assert_allclose(np.sort(ba), expected)
        # the max is 2 steps; the 95th percentile of 26 sorted values sits at rank 0.95 * 25 = 23.75,
        # inside the nine largest (ranks 17..25): also 2 steps
        assert hausdorff_distance(a, b, spacing=SPACING) == pytest.approx(2 * step)
        assert hausdorff95(a, b, spacing=SPACING) == pytest.approx(2 * step)
        # ASSD: (9 * 0 + 8 * step + 9 * 2 step) / 26 = 26 step / 26 = step, in both directions
        assert mean_surface_distance(a, b, spacing=SPACING) == pytest.approx(step)
    # without spacing the distances are in voxels
    assert hausdorff_distance(a, np.roll(a, 2, axis=0)) == pytest.approx(2.0)


def test_percentile_of_each_direction_then_max_and_mean_over_the_union_by_hand():
    # A: a 1x5 line (every pixel is surface), B: its first pixel; x spacing 3, y spacing 1.
    # A -> B: 0, 3, 6, 9, 12; B -> A: 0.
    a = np.zeros((3, 7), bool)
    a[1, 1:6] = True
    b = np.zeros_like(a)
    b[1, 1] = True
    ab, ba = surface_distances(a, b, spacing=(1.0, 3.0))
    np.testing.assert_allclose(ab, [0, 3, 6, 9, 12])
    np.testing.assert_allclose(ba, [0])
    assert hausdorff_distance(a, b, spacing=(1.0, 3.0)) == 12.0
    # median of each direction (6 and 0), then the larger: 6 (MONAI); the median of the pooled six values
    # 0, 0, 3, 6, 9, 12 would be 4.5
    assert hausdorff_distance(a, b, spacing=(1.0, 3.0), percentile=50) == pytest.approx(6.0)
    # 95th percentile of A -> B: rank 0.95 * 4 = 3.8 -> 9 + 0.8 * 3 = 11.4
    assert hausdorff95(a, b, spacing=(1.0, 3.0)) == pytest.approx(11.4)
    # ASSD: the mean over all six distances, 30 / 6 = 5 (the mean of the directed means would be 3)
    assert mean_surface_distance(a, b, spacing=(1.0, 3.0)) == pytest.approx(5.0)
    # two single voxels 3 and 4 steps apart with spacing (2, 0.5): sqrt(6^2 + 2^2)
    p, q = np.zeros((5, 5), bool), np.zeros((5, 5), bool)
    p[0, 0], q[3, 4] = True, True
    assert hausdorff_distance(p, q, spacing=(2.0, 0.5)) == pytest.approx(np.sqrt(40))


def test_empty_masks_shapes_and_arguments():
    empty, cube = np.zeros((4, 5, 6), bool), np.zeros((4, 5, 6), bool)
    cube[1:3, 1:4, 1:5] = True
    for fn in (hausdorff_distance, hausdorff95, mean_surface_distance):
        assert fn(empty, empty) == 0.0
        assert np.isnan(fn(cube, empty)) and np.isnan(fn(empty, cube))
        with pytest.raises(ValueError, match="shape"):
            fn(cube, cube[:, :, :5])
    ab, ba = surface_distances(cube, empty)
    assert ab.size == 2 * 3 * 4 and np.isinf(ab).all() and ba.size == 0
    with pytest.raises(ValueError, match="one per axis"):
        hausdorff_distance(cube, cube, spacing=(1.0, 2.0))
    with pytest.raises(ValueError, match="positive"):
        hausdorff_distance(cube, cube, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="percentile"):
        hausdorff_distance(cube, cube, percentile=101)
    with pytest.raises(ValueError, match="2-D or 3-D"):
        hausdorff_distance(np.ones(5, bool), np.ones(5, bool))
    # torch input and a scalar spacing
    assert hausdorff_distance(torch.from_numpy(cube), torch.from_numpy(np.roll(cube, 1, 0)), 2.0) == 2.0


# -- MONAI ------------------------------------------------------------------------------------------


def _monai(pred: np.ndarray, target: np.ndarray, spacing, **kw) -> dict[str, np.ndarray]:
    """MONAI's scores of one-hot ``(C, *spatial)`` masks, per channel (batch of one)."""
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p, t = torch.from_numpy(pred[None].astype(np.float32)), torch.from_numpy(target[None].astype(np.float32))
    return {
        "hd": compute_hausdorff_distance(p, t, spacing=spacing, **kw)[0].numpy(),
        "hd95": compute_hausdorff_distance(p, t, percentile=95, spacing=spacing, **kw)[0].numpy(),
        "assd": compute_average_surface_distance(p, t, symmetric=True, spacing=spacing, **kw)[0].numpy(),
    }


@pytest.mark.filterwarnings(MONAI_WARNING)
@pytest.mark.parametrize("seed", range(4))
def test_binary_masks_match_monai(seed):
    pred, target = _blobs(2 * seed), _blobs(2 * seed + 1, threshold=0.5 + 0.01 * seed)
    assert pred.any() and target.any() and (pred[0].any() or target[0].any())  # some touch the border
    spacing = (1.5 + seed, 0.7, 1.1)
    ref = _monai(pred[None], target[None], spacing, include_background=True)
    rtol = 1e-6  # MONAI returns float32
    assert hausdorff_distance(pred, target, spacing) == pytest.approx(float(ref["hd"][0]), rel=rtol)
    assert hausdorff95(pred, target, spacing) == pytest.approx(float(ref["hd95"][0]), rel=rtol)
    assert mean_surface_distance(pred, target, spacing) == pytest.approx(float(ref["assd"][0]), rel=rtol)


@pytest.mark.filterwarnings(MONAI_WARNING)
@pytest.mark.parametrize("seed", range(2))
def test_label_maps_match_monai_per_class_with_ignored_voxels(seed):
    k = 4
    target, pred = _labels(10 + seed, num_classes=k), _labels(20 + seed, num_classes=k)
    pred = np.where(np.random.default_rng(seed).random(pred.shape) < 0.7, target, pred)  # mostly right
    target[:3, :4] = 255  # ignored: background in both maps
    valid = target != 255
    one_hot = [np.stack([(m == c) & valid for c in range(k)]) for m in (pred, target)]
    ref = _monai(*one_hot, SPACING, include_background=False)  # channels are classes 1..3
    ours = surface_scores(pred, target, k, spacing=SPACING, ignore_index=255)
    np.testing.assert_allclose([ours["hd95"][c] for c in (1, 2, 3)], ref["hd95"], rtol=1e-6)
    np.testing.assert_allclose([ours["surface_distance"][c] for c in (1, 2, 3)], ref["assd"], rtol=1e-6)
    assert ours["mean_hd95"] == pytest.approx(float(ref["hd95"].mean()), rel=1e-6)
    assert ours["mean_surface_distance"] == pytest.approx(float(ref["assd"].mean()), rel=1e-6)
    assert surface_scores(pred, target, k, spacing=SPACING, classes=[2])["hd95"].keys() == {2}


def test_classes_missing_from_one_or_both_maps_are_skipped_in_the_means():
    target = np.zeros((6, 8, 8), int)
    target[1:4, 1:4, 1:4] = 1
    target[1:4, 5:8, 5:8] = 2
    pred = np.where(target == 2, 0, target)  # class 2 missed; class 3 absent from both
    scores = surface_scores(pred, target, 4)
    assert scores["hd95"][1] == 0.0 and np.isnan(scores["hd95"][2]) and np.isnan(scores["hd95"][3])
    assert scores["mean_hd95"] == 0.0 and scores["mean_surface_distance"] == 0.0
    assert np.isnan(surface_scores(np.zeros_like(target), np.zeros_like(target), 4)["mean_hd95"])


# -- SimpleITK --------------------------------------------------------------------------------------


def _sitk_hausdorff(a: np.ndarray, b: np.ndarray, spacing) -> float:
    import SimpleITK as sitk

    images = []
    for m in (a, b):
        image = sitk.GetImageFromArray(m.astype(np.uint8))  # numpy (z, y, x) -> ITK (x, y, z)
        image.SetSpacing(tuple(float(s) for s in reversed(spacing)))
        images.append(image)
    f = sitk.HausdorffDistanceImageFilter()
    f.Execute(*images)
    return f.GetHausdorffDistance()


def _sitk_contour(mask: np.ndarray) -> np.ndarray:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    return sitk.GetArrayFromImage(sitk.BinaryContour(image, fullyConnected=False)).astype(bool)


@pytest.mark.parametrize("seed", range(3))
def test_hausdorff_matches_simpleitk_on_simpleitk_contours(seed):
    # SimpleITK's HausdorffDistanceImageFilter takes the max over *every* foreground voxel of one image
    # of its distance to the other image's foreground, not over surfaces (see the cavity test below).
    # Given the two contour images (SimpleITK's own BinaryContour, face-connected), it computes the
    # surface Hausdorff distance, which must equal ours on the masks. The blobs keep off the image
    # border, where ITK draws no contour and MONAI and segscope do.
    pred, target = (np.pad(_blobs(seed + s, (12, 16, 20)), 1) for s in (0, 10))
    spacing = (2.5, 0.8, 1.3)
    pred_contour, target_contour = _sitk_contour(pred), _sitk_contour(target)
    ab, ba = surface_distances(pred, target, spacing)
    assert ab.size == pred_contour.sum() and ba.size == target_contour.sum()  # the same surfaces
    ref = _sitk_hausdorff(pred_contour, target_contour, spacing)
    assert hausdorff_distance(pred, target, spacing) == pytest.approx(ref, rel=1e-6)
    assert ref > 0


def test_simpleitk_on_whole_masks_differs_for_a_cavity_by_hand():
    # B: a solid 7x7x7 cube; A: B with its centre voxel removed. spacing (z, y, x) = (2, 1, 0.5).
    # Whole masks (SimpleITK): A lies inside B (0) and B's only voxel outside A, the hole, is one x step
    # from A: 0.5. Surfaces: B's surface is its outer layer, A's adds the hole's 6 face neighbours; the
    # farthest from B's outer layer are the two z neighbours (3, 4, 4) and (5, 4, 4), 3 x steps from the
    # outer layer (x = 1 or 7): 1.5 (the y neighbours: 3 x steps too; the x neighbours: 2 x steps).
    b = np.zeros((9, 9, 9), bool)
    b[1:8, 1:8, 1:8] = True
    a = b.copy()
    a[4, 4, 4] = False
    assert _sitk_hausdorff(a, b, SPACING) == pytest.approx(0.5)
    assert hausdorff_distance(a, b, SPACING) == pytest.approx(1.5)


# -- the Evaluator ----------------------------------------------------------------------------------


def test_evaluator_on_volumes_reports_surface_scores_equal_to_direct_calls():
    k = 3
    ev = Evaluator(k, ignore_index=255, spacing=SPACING)
    expected = []
    for seed in range(2):
        target, pred = _labels(30 + seed, num_classes=k), _labels(40 + seed, num_classes=k)
        pred = np.where(np.random.default_rng(seed).random(pred.shape) < 0.8, target, pred)
        target[-2:] = 255
        row = ev.add(pred, target)
        valid = target != 255
        hd = [hausdorff95((pred == c) & valid, (target == c) & valid, SPACING) for c in (1, 2)]
        msd = [mean_surface_distance((pred == c) & valid, (target == c) & valid, SPACING) for c in (1, 2)]
        assert row["hd95"] == pytest.approx(np.mean(hd)) and row["surface_distance"] == pytest.approx(
            np.mean(msd)
        )
        expected.append((row["hd95"], row["surface_distance"]))
    ev.add(np.zeros((4, 5, 6), int), np.zeros((4, 5, 6), int))  # no foreground: nan, skipped
    assert np.isnan(ev.per_image[-1]["hd95"])
    r = ev.result()
    assert r["hd95"] == pytest.approx(np.mean([e[0] for e in expected]))
    assert r["surface_distance"] == pytest.approx(np.mean([e[1] for e in expected]))
    assert r["num_images"] == 3
    assert "hd95" not in Evaluator(k, ignore_index=255, surface=False).add(pred, target)


def test_evaluator_on_a_binary_volume_confusion_boundary_pixel_and_rand_error():
    # two cells on slice 0, joined through a bridge on slice 1: one 3-D segment, three slice segments
    target = np.zeros((3, 8, 8), int)
    target[0, 1:3, 1:7] = 1
    target[0, 5:7, 1:7] = 1
    target[1, 1:7, 6] = 1
    pred = target.copy()
    pred[1, 3:5, 6] = 0  # the bridge cut: two 3-D segments
    pred[2, 1:3, 1:3] = 1  # and a false positive
    ev = Evaluator(2, foreground=1)
    row = ev.add(pred, target)
    assert row["pixel_error"] == pytest.approx(np.mean(pred != target))
    assert row["pixel_accuracy"] == pytest.approx(np.mean(pred == target))
    inter = [np.sum((pred == c) & (target == c)) for c in (0, 1)]
    union = [np.sum((pred == c) | (target == c)) for c in (0, 1)]
    assert row["mean_iou"] == pytest.approx(np.mean(np.divide(inter, union)))
    assert row["boundary_f1"] == pytest.approx(_reference_boundary_f1(pred, target, 2))
    # the Rand error uses 3-D face-connected components (scipy's default 3-D structure), not slices
    true3d, pred3d = ndimage.label(target)[0], ndimage.label(pred)[0]
    assert true3d.max() == 1 and pred3d.max() == 3
    assert row["rand_error"] == pytest.approx(reference_adapted_rand_error(true3d, pred3d)[0])
    slices = np.stack([ndimage.label(s)[0] + 10 * i for i, s in enumerate(target)]) * (target > 0)
    assert row["rand_error"] != pytest.approx(reference_adapted_rand_error(slices, pred3d)[0])
    assert row["rand_error"] > 0 and row["hd95"] > 0  # volumes get surface scores by default


def test_two_d_evaluations_keep_their_keys_unless_asked():
    target = np.zeros((12, 12), int)
    target[3:9, 3:9] = 1
    pred = np.roll(target, 1, axis=1)
    binary = {"pixel_error", "rand_error", "foreground_dice", "foreground_iou"}
    old_row = {"name", "pixel_accuracy", "mean_iou", "boundary_f1"} | binary
    old_result = {"pixel_accuracy", "mean_class_accuracy", "mean_iou", "fw_iou", "iou", "dice"}
    old_result |= {"confusion_matrix", "boundary_f1", "num_images", "per_image"} | binary
    ev = Evaluator(2, foreground=1, spacing=(0.5, 0.5))
    assert set(ev.add(pred, target)) == old_row
    assert set(ev.result()) == old_result
    assert set(Evaluator(2).result()) == old_result - binary
    on = Evaluator(2, foreground=1, spacing=(0.5, 2.0), surface=True)
    row = on.add(pred, target)
    assert set(row) == old_row | {"hd95", "surface_distance"}
    assert row["hd95"] == pytest.approx(hausdorff95(pred == 1, target == 1, (0.5, 2.0))) and row["hd95"] > 0
    assert set(on.result()) == old_result | {"hd95", "surface_distance"}
