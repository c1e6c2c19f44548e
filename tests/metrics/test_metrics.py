import numpy as np
import pytest
import torch
from skimage.metrics import adapted_rand_error as skimage_are
from sklearn.metrics import confusion_matrix, f1_score, jaccard_score

from segscope.metrics import ConfusionMatrix, Evaluator, adapted_rand_error, boundary_f1, pixel_error


def test_hand_computed_3x3():
    target = np.array([0, 0, 1, 1, 2, 2, 2, 255])
    pred = np.array([0, 1, 1, 1, 2, 0, 2, 1])
    cm = ConfusionMatrix(3, ignore_index=255).update(pred, target)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    # IoU: c0 1/(2+2-1)=1/3, c1 2/(3+2-2)=2/3, c2 2/(2+3-2)=2/3
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 2 / 3])
    assert cm.pixel_accuracy() == pytest.approx(5 / 7)
    assert cm.mean_class_accuracy() == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)
    assert cm.frequency_weighted_iou() == pytest.approx(2 / 7 * 1 / 3 + 2 / 7 * 2 / 3 + 3 / 7 * 2 / 3)
    np.testing.assert_allclose(cm.dice(), [2 / 4, 4 / 5, 4 / 5])


def test_absent_class_is_nan_and_left_out_of_the_mean():
    cm = ConfusionMatrix(3).update(np.array([0, 1]), np.array([0, 1]))
    assert np.isnan(cm.iou()[2]) and cm.mean_iou() == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_sklearn_on_random_input_with_ignore(seed):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 5, 4000)
    target[rng.random(4000) < 0.1] = 255
    pred = rng.integers(0, 5, 4000)
    cm = ConfusionMatrix(5, ignore_index=255).update(pred.reshape(40, 100), target.reshape(40, 100))
    keep = target != 255
    np.testing.assert_array_equal(cm.matrix, confusion_matrix(target[keep], pred[keep], labels=range(5)))
    np.testing.assert_allclose(
        cm.iou(), jaccard_score(target[keep], pred[keep], average=None, labels=range(5))
    )
    np.testing.assert_allclose(cm.dice(), f1_score(target[keep], pred[keep], average=None, labels=range(5)))


def test_merge_torch_and_numpy_agree():
    rng = np.random.default_rng(2)
    t, p = rng.integers(0, 4, (2, 30, 30)), rng.integers(0, 4, (2, 30, 30))
    whole = ConfusionMatrix(4).update(p, t)
    halves = ConfusionMatrix(4).update(p[0], t[0]) + ConfusionMatrix(4).update(
        torch.from_numpy(p[1]), torch.from_numpy(t[1])
    )
    np.testing.assert_array_equal(whole.matrix, halves.matrix)
    with pytest.raises(ValueError, match="predicted class outside"):
        ConfusionMatrix(2).update(np.array([3]), np.array([0]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adapted_rand_error_equals_scikit_image(seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 6, (64, 64))
    test = np.where(rng.random((64, 64)) < 0.7, true, rng.integers(0, 9, (64, 64)))
    ours = adapted_rand_error(true, test)
    ref = skimage_are(true, test)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_pixel_error_and_rand_error_of_perfect_and_merged_segmentations():
    target = np.ones((20, 20), int)
    target[:, 10] = 0  # a membrane splits two cells
    assert pixel_error(target, target) == 0
    merged = np.ones_like(target)  # the membrane is missed: the two cells merge
    assert pixel_error(merged, target) == pytest.approx(20 / 400)
    ev = Evaluator(2, class_names=["membrane", "cell"], foreground=1)
    assert ev.add(target, target)["rand_error"] == 0
    r = ev.add(merged, target)
    # truth: cells of 200 (columns 0-9) and 180 pixels (11-19); test: one 380-pixel segment
    sum_p = 200**2 + 180**2 - 380
    expected = 1 - 2 * sum_p / (sum_p + (380**2 - 380))
    assert r["rand_error"] == pytest.approx(expected)
    assert ev.result()["rand_error"] == pytest.approx(expected / 2)


def test_boundary_f1_identical_and_shifted_square():
    a = np.zeros((40, 40), int)
    a[10:30, 10:30] = 1
    assert boundary_f1(a, a, num_classes=2) == 1.0
    shifted = np.roll(a, 3, axis=1)
    # a 3-pixel shift: the vertical edges (and the ends of horizontal ones) fall outside a 2-px tolerance
    f = boundary_f1(shifted, a, tolerance=2, num_classes=2)
    assert 0.3 < f < 0.8
    assert boundary_f1(shifted, a, tolerance=3, num_classes=2) == 1.0


def test_evaluator_summary_keys():
    ev = Evaluator(3, ignore_index=255, class_names=["a", "b", "c"])
    ev.add(np.array([[0, 1], [2, 2]]), np.array([[0, 1], [2, 255]]), name="x")
    r = ev.result()
    assert r["mean_iou"] == 1.0 and r["iou"] == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert r["per_image"][0]["name"] == "x" and "rand_error" not in r
