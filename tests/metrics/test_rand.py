import numpy as np
import pytest
import torch
from scipy import ndimage

from segscope.metrics import adapted_rand_error, foreground_rand_error, pixel_error


def reference_adapted_rand_error(true, test, ignore_labels=(0,)):
    """Written out from the definition (Arganda-Carreras et al. 2015), independent of scikit-image:
    over the pixels whose true label is not ignored, the contingency table n_ij of (true, test) label
    pairs; pair counts are sums of squares minus the pixel count; precision divides the table's pair
    count by the truth's, recall by the test's; the error is 1 - their harmonic mean."""
    true, test = np.asarray(true).ravel(), np.asarray(test).ravel()
    keep = ~np.isin(true, ignore_labels)
    true, test = true[keep], test[keep]
    n = len(true)
    _, joint = np.unique(np.stack([true, test]), axis=1, return_counts=True)
    pairs_table = (joint.astype(float) ** 2).sum() - n
    pairs_true = (np.unique(true, return_counts=True)[1].astype(float) ** 2).sum() - n
    pairs_test = (np.unique(test, return_counts=True)[1].astype(float) ** 2).sum() - n
    precision, recall = pairs_table / pairs_true, pairs_table / pairs_test
    return 1 - 2 * precision * recall / (precision + recall), precision, recall


def test_adapted_rand_error_by_hand():
    # true segments {1, 1} and {2, 2}; the test merges them into one segment
    true = np.array([[1, 1, 2, 2]])
    test = np.array([[5, 5, 5, 5]])
    # pair counts (sum of squares minus n): table 4 + 4 - 4 = 4, true 4 + 4 - 4 = 4, test 16 - 4 = 12
    error, precision, recall = adapted_rand_error(true, test)
    assert precision == pytest.approx(4 / 4)
    assert recall == pytest.approx(4 / 12)
    assert error == pytest.approx(1 - 2 * 4 / (4 + 12))
    # label 0 of the truth is ignored by default: these pixels change nothing
    padded_true = np.array([[0, 1, 1, 2, 2, 0]])
    padded_test = np.array([[5, 5, 5, 5, 5, 7]])
    assert adapted_rand_error(padded_true, padded_test) == pytest.approx((error, precision, recall))


@pytest.mark.parametrize(("seed", "ignore_labels"), [(0, (0,)), (1, (0,)), (2, ()), (3, (0, 3)), (4, (0,))])
def test_adapted_rand_error_equals_a_reference_written_from_the_definition(seed, ignore_labels):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 6, (64, 64))
    test = np.where(rng.random((64, 64)) < 0.7, true, rng.integers(0, 9, (64, 64)))
    if seed == 4:  # connected-component label maps, as the ISBI evaluation uses
        true = ndimage.label(rng.random((64, 64)) < 0.6)[0]  # 4-connected components
        test = ndimage.label(rng.random((64, 64)) < 0.6)[0]
    ours = adapted_rand_error(true, test, ignore_labels=ignore_labels)
    ref = reference_adapted_rand_error(true, test, ignore_labels=ignore_labels)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_adapted_rand_error_takes_negative_labels_and_tensors():
    rng = np.random.default_rng(5)
    true = rng.integers(0, 5, (20, 20))
    test = rng.integers(0, 5, (20, 20))
    ref = reference_adapted_rand_error(true, test)
    # shifting the test labels and renaming the true ones (0 stays "ignored") changes nothing
    np.testing.assert_allclose(
        adapted_rand_error(np.where(true == 0, -3, true - 10), test - 7, ignore_labels=(-3,)), ref, rtol=1e-12
    )
    np.testing.assert_allclose(adapted_rand_error(torch.from_numpy(true), torch.from_numpy(test)), ref)


def test_adapted_rand_error_degenerate_and_bad_input():
    # every true pixel ignored, or no pixel pair sharing a label: undefined, without a warning
    assert np.isnan(adapted_rand_error(np.zeros((3, 3), int), np.ones((3, 3), int))[0])
    assert np.isnan(adapted_rand_error(np.arange(9).reshape(3, 3) + 1, np.arange(9).reshape(3, 3))[0])
    with pytest.raises(ValueError, match="differ in shape"):
        adapted_rand_error(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="integer label map"):
        adapted_rand_error(np.zeros((2, 2)), np.zeros((2, 2), int))


def test_pixel_error_by_hand():
    target = np.array([[0, 1, 1], [1, 1, 255]])
    pred = np.array([[0, 0, 1], [1, 1, 0]])
    assert pixel_error(pred, target) == pytest.approx(2 / 6)
    assert pixel_error(pred, target, ignore_index=255) == pytest.approx(1 / 5)
    assert pixel_error(torch.from_numpy(pred), torch.from_numpy(target), 255) == pytest.approx(1 / 5)
    assert np.isnan(pixel_error(pred, np.full_like(target, 255), ignore_index=255))


def _two_cells() -> np.ndarray:
    target = np.ones((20, 20), int)
    target[:, 10] = 0  # a membrane column splits a 200-pixel cell (columns 0-9) from a 180-pixel one
    return target


def test_foreground_rand_error_of_perfect_merged_and_split_maps():
    target = _two_cells()
    assert foreground_rand_error(target, target) == 0
    # the membrane is missed: both cells lie in one 400-pixel predicted segment
    merged = np.ones_like(target)
    table = 200**2 + 180**2 - 380
    expected = 1 - 2 * table / ((200**2 + 180**2 - 380) + (380**2 - 380))
    assert foreground_rand_error(merged, target) == pytest.approx(expected)
    # a false membrane across row 10 splits cell A (200 px) into 100 + 90 pixels plus 10 on the line, and
    # cell B (180 px) into 90 + 81 plus 9; the line pixels form one test segment (label 0) of 19
    split = target.copy()
    split[10] = 0
    table_pairs = (100**2 + 90**2 + 10**2) + (90**2 + 81**2 + 9**2) - 380
    true_pairs = 200**2 + 180**2 - 380
    test_pairs = 100**2 + 90**2 + 90**2 + 81**2 + 19**2 - 380
    expected = 1 - 2 * table_pairs / (true_pairs + test_pairs)
    assert foreground_rand_error(split, target) == pytest.approx(expected)


def test_foreground_rand_error_uses_4_connectivity_and_ignore_index():
    # two true cells touching only diagonally are two segments; a prediction equal to the truth is perfect
    target = np.zeros((4, 4), int)
    target[:2, :2] = 1
    target[2:, 2:] = 1
    assert foreground_rand_error(target, target) == 0
    merged = target.copy()
    merged[1, 2] = 1  # joins the two squares 4-connectedly
    assert foreground_rand_error(merged, target) > 0
    # ignored truth pixels drop out: marking the second cell ignored leaves a perfect single cell
    ignored = target.copy()
    ignored[2:, 2:] = 9
    assert foreground_rand_error(merged, ignored, ignore_index=9) == 0
