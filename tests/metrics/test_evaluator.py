import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from segscope.metrics import ConfusionMatrix, Evaluator, boundary_f1
from tests.conftest import shared_dataset
from tests.metrics.test_rand import reference_adapted_rand_error


def _two_cells() -> np.ndarray:
    target = np.ones((20, 20), int)
    target[:, 10] = 0  # membrane between a 200-pixel and a 180-pixel cell
    return target


def test_binary_evaluation_per_image_and_averaged():
    target = _two_cells()
    merged = np.ones_like(target)  # misses the membrane
    ev = Evaluator(2, class_names=["membrane", "cell"], foreground=1)
    perfect = ev.add(target, target, name="perfect")
    assert perfect == {
        "name": "perfect",
        "pixel_accuracy": 1.0,
        "mean_iou": 1.0,
        "boundary_f1": 1.0,
        "pixel_error": 0.0,
        "rand_error": 0.0,
        "foreground_dice": 1.0,
        "foreground_iou": 1.0,
    }
    row = ev.add(torch.from_numpy(merged), torch.from_numpy(target))
    table = 200**2 + 180**2 - 380
    rand = 1 - 2 * table / (table + (380**2 - 380))
    assert row["name"] == "1"
    assert row["rand_error"] == pytest.approx(rand)
    assert row["pixel_error"] == pytest.approx(20 / 400)
    assert row["mean_iou"] == pytest.approx((0 + 380 / 400) / 2)
    r = ev.result()
    assert r["rand_error"] == pytest.approx(rand / 2)
    assert r["pixel_error"] == pytest.approx(20 / 800)
    # the foreground (cell) class: 380 true pixels each, 20 membrane pixels called cell in the second
    assert row["foreground_iou"] == pytest.approx(380 / 400)
    assert row["foreground_dice"] == pytest.approx(2 * 380 / (400 + 380))
    assert r["foreground_iou"] == pytest.approx(760 / 780)
    assert r["foreground_dice"] == pytest.approx(2 * 760 / (780 + 760))
    assert r["boundary_f1"] == pytest.approx((1 + row["boundary_f1"]) / 2)
    # dataset-wide confusion scores pool the pixels of both images
    assert r["confusion_matrix"] == [[20, 20], [0, 760]]
    assert r["mean_iou"] == pytest.approx((20 / 40 + 760 / 780) / 2)
    assert r["iou"] == pytest.approx({"membrane": 20 / 40, "cell": 760 / 780})
    assert r["num_images"] == 2 and [p["name"] for p in r["per_image"]] == ["perfect", "1"]


def test_semantic_evaluation_has_no_binary_scores_and_honours_ignore():
    target = np.array([[0, 1], [2, 255]])
    ev = Evaluator(3, ignore_index=255, class_names=["a", "b", "c"])
    row = ev.add(np.array([[0, 1], [2, 0]]), target, name="x")
    assert "rand_error" not in row and "pixel_error" not in row
    r = ev.result()
    assert r["mean_iou"] == 1.0 and r["iou"] == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert {
        "pixel_accuracy",
        "mean_class_accuracy",
        "mean_iou",
        "fw_iou",
        "iou",
        "dice",
        "boundary_f1",
    } <= set(r)
    assert "rand_error" not in r and r["per_image"][0]["name"] == "x"


def test_result_equals_its_parts_on_random_maps():
    rng = np.random.default_rng(0)
    ev = Evaluator(4, ignore_index=9)
    whole = ConfusionMatrix(4, ignore_index=9)
    bf = []
    for _ in range(3):
        target = ndimage.zoom(rng.integers(0, 4, (6, 6)), 5, order=0)
        target[rng.random(target.shape) < 0.05] = 9
        pred = np.roll(np.where(target == 9, 0, target), 1, axis=1)
        ev.add(pred, target)
        whole.update(pred, target)
        bf.append(boundary_f1(pred, target, num_classes=4, ignore_index=9))
    r = ev.result()
    np.testing.assert_array_equal(r["confusion_matrix"], whole.matrix)
    assert r["mean_iou"] == pytest.approx(whole.mean_iou())
    assert r["fw_iou"] == pytest.approx(whole.frequency_weighted_iou())
    assert r["boundary_f1"] == pytest.approx(np.mean(bf))


def test_bad_configuration_and_input():
    with pytest.raises(ValueError, match="1 class names for 2 classes"):
        Evaluator(2, class_names=["a"])
    with pytest.raises(ValueError, match="foreground=2"):
        Evaluator(2, foreground=2)
    with pytest.raises(ValueError, match="differs from target shape"):
        Evaluator(2).add(np.zeros((2, 2), int), np.zeros((2, 3), int))


def test_isbi_slice_rand_error_matches_a_reference_from_the_definition():
    root = shared_dataset("isbi2012")
    mask = np.array(Image.open(root / "masks" / "00.png"))
    target = (mask > 127).astype(np.int64)  # 1 = cell interior, 0 = membrane
    pred = ndimage.binary_erosion(target, iterations=2).astype(np.int64)  # thicker membranes
    pred[200:210, :] = 1  # and a band that merges the cells it crosses
    ev = Evaluator(2, class_names=["membrane", "cell"], foreground=1)
    assert ev.add(target, target)["rand_error"] == 0
    row = ev.add(pred, target)
    # 4-connected cells by scipy (not the scikit-image labelling the metric uses), membrane ignored
    ref = reference_adapted_rand_error(ndimage.label(target)[0], ndimage.label(pred)[0])[0]
    assert row["rand_error"] == pytest.approx(ref) and row["rand_error"] > 0
    assert row["pixel_error"] == pytest.approx(np.mean(pred != target))
