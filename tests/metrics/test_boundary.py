import numpy as np
import pytest
import torch
from scipy import ndimage

from segscope.metrics import boundary_f1, class_boundaries


def _square(shift: int = 0) -> np.ndarray:
    a = np.zeros((40, 40), int)
    a[10:30, 10 + shift : 30 + shift] = 1
    return a


def test_identical_maps_score_one():
    a = _square()
    assert boundary_f1(a, a) == 1.0
    assert boundary_f1(torch.from_numpy(a), torch.from_numpy(a), num_classes=2) == 1.0


def test_square_shifted_by_three_pixels_by_hand():
    # class 1: the 76 contour pixels of the 20x20 square; after a 3-px shift, 19 of each horizontal edge
    # (17 overlapping + 2 within 2 px of the corner) and 4 of the trailing vertical edge (the ends within
    # 2 px of the horizontal edges) match: 42/76 both ways.
    # class 0: the 80 background pixels 4-adjacent to the square match in the same way: 42/80.
    f = boundary_f1(_square(3), _square(), tolerance=2)
    assert f == pytest.approx((42 / 76 + 42 / 80) / 2)
    assert boundary_f1(_square(3), _square(), tolerance=3) == 1.0  # every edge is now 3 px away at most
    assert boundary_f1(_square(3), _square(), tolerance=0) == pytest.approx((34 / 76 + 34 / 80) / 2)


def test_class_boundaries_are_inner_contours_with_4_neighbours():
    a = _square()
    edge = class_boundaries(a)
    inner = (a == 1) & ~ndimage.binary_erosion(a == 1, border_value=1)
    outer = (a == 0) & ~ndimage.binary_erosion(a == 0, border_value=1)
    np.testing.assert_array_equal(edge, inner | outer)
    assert (edge & (a == 1)).sum() == 76 and (edge & (a == 0)).sum() == 80


def _reference_boundary_f1(pred, target, tolerance, ignore_index=None):
    """Per class: erosion contours and exact Euclidean distance transforms (scipy)."""
    valid = np.ones(target.shape, bool) if ignore_index is None else target != ignore_index
    four = ndimage.generate_binary_structure(pred.ndim, 1)
    scores = []
    for c in np.union1d(np.unique(pred[valid]), np.unique(target[valid])):
        contours = []
        for labels in (pred, target):
            region = (labels == c) & valid
            contours.append(region & ~ndimage.binary_erosion(region, four, border_value=1))
        pb, tb = contours
        if not pb.any() or not tb.any():
            in_both = (pred[valid] == c).any() and (target[valid] == c).any()
            scores.append(float(not pb.any() and not tb.any() and in_both))
            continue
        precision = (ndimage.distance_transform_edt(~tb)[pb] <= tolerance).mean()
        recall = (ndimage.distance_transform_edt(~pb)[tb] <= tolerance).mean()
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(scores))


@pytest.mark.parametrize(("seed", "tolerance"), [(0, 2), (1, 1.5), (2, 3), (3, 0)])
def test_equals_an_exact_distance_transform_reference_on_random_blobs(seed, tolerance):
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random((3, 60, 70)), 4)
    target = np.digitize(smooth[0], np.quantile(smooth[0], [0.3, 0.6, 0.8]))
    pred = np.digitize(smooth[1] * 0.3 + smooth[0], np.quantile(smooth[0], [0.3, 0.6, 0.8]))
    target[rng.random(target.shape) < 0.02] = 255
    ours = boundary_f1(pred, target, tolerance=tolerance, num_classes=4, ignore_index=255)
    ref = _reference_boundary_f1(pred, target, tolerance, ignore_index=255)
    assert ours == pytest.approx(ref, abs=1e-12)
    assert 0 < ours < 1


def test_volumes_use_n_dimensional_contours():
    rng = np.random.default_rng(5)
    target = (ndimage.gaussian_filter(rng.random((12, 20, 20)), 2) > 0.5).astype(int)
    pred = np.roll(target, 1, axis=0)
    assert boundary_f1(target, target) == 1.0
    assert boundary_f1(pred, target, tolerance=1.5) == pytest.approx(
        _reference_boundary_f1(pred, target, 1.5)
    )


def test_missing_and_uniform_classes():
    target = _square()
    # class 1 not predicted at all: both classes lose their contour in the prediction
    assert boundary_f1(np.zeros_like(target), target) == 0.0
    # a uniform map against itself has no contour but is right; against another uniform class, wrong
    assert boundary_f1(np.ones((5, 5), int), np.ones((5, 5), int)) == 1.0
    assert boundary_f1(np.ones((5, 5), int), np.zeros((5, 5), int)) == 0.0


def test_ignored_pixels_are_removed_from_both_maps():
    target = _square()
    pred = target.copy()
    pred[:, :5] = 1  # a wrong stripe, but inside the ignored region
    ignored = target.copy()
    ignored[:, :5] = 255
    assert boundary_f1(pred, ignored, ignore_index=255) == 1.0
    assert np.isnan(boundary_f1(pred, np.full_like(target, 255), ignore_index=255))


def test_bad_input():
    with pytest.raises(ValueError, match="differs from target shape"):
        boundary_f1(np.zeros((3, 3), int), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="outside"):
        boundary_f1(np.full((3, 3), 2), np.zeros((3, 3), int), num_classes=2)
    with pytest.raises(ValueError, match="tolerance"):
        boundary_f1(np.zeros((3, 3), int), np.zeros((3, 3), int), tolerance=-1)
