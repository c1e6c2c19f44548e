import numpy as np
import pytest
import torch
from PIL import Image

from segscope.metrics import abs_diff_in_count, best_dice, instance_masks, mask_ap, symmetric_best_dice
from tests.conftest import shared_dataset

# COCO AP: 101-point interpolated precision, averaged over IoU thresholds 0.50:0.05:0.95


def _two_squares() -> np.ndarray:
    gt = np.zeros((20, 20), int)
    gt[0:10, 0:10] = 1
    gt[10:20, 10:20] = 2
    return gt


def test_mask_ap_of_perfect_predictions_is_one():
    gt = _two_squares()
    assert mask_ap(gt, gt, [0.9, 0.8]) == {"ap": 1.0, "ap50": 1.0, "ap75": 1.0}
    # several images, label maps and mask stacks mixed, no scores given
    stack = instance_masks(gt)
    assert mask_ap([gt, gt], [stack, torch.from_numpy(gt)]) == {"ap": 1.0, "ap50": 1.0, "ap75": 1.0}


def test_mask_ap_with_a_false_positive_by_hand():
    gt = _two_squares()
    pred = np.zeros_like(gt)
    pred[0:10, 0:10] = 1  # exact match of instance 1
    pred[12:18, 0:6] = 2  # overlaps nothing
    # ranked TP (0.9) then FP (0.8): recall 1/2 at precision 1 -> recall points 0.00..0.50 (51 of 101)
    # have interpolated precision 1, the rest 0, at every IoU threshold
    assert mask_ap(gt, pred, [0.9, 0.8]) == pytest.approx(
        {"ap": 51 / 101, "ap50": 51 / 101, "ap75": 51 / 101}
    )
    # ranked FP first: precision at recall 1/2 is 1/2
    assert mask_ap(gt, pred, [0.8, 0.9])["ap"] == pytest.approx(0.5 * 51 / 101)


def test_mask_ap_of_a_loose_mask_by_hand():
    gt = np.zeros((20, 20), int)
    gt[0:10, 0:10] = 1
    pred = np.zeros_like(gt)
    pred[1:9, 1:9] = 1  # IoU 64/100: a match at thresholds 0.50, 0.55, 0.60 only
    assert mask_ap([gt], [pred], [[0.5]]) == pytest.approx({"ap": 3 / 10, "ap50": 1.0, "ap75": 0.0})


def test_mask_ap_overlapping_predicted_masks_and_empty_cases():
    gt = _two_squares()
    stack = instance_masks(gt)
    duplicate = np.concatenate([stack, stack[:1]])  # a second, lower-scored copy of instance 1: an FP
    assert mask_ap(gt, duplicate, [0.9, 0.8, 0.7])["ap"] == pytest.approx(1.0)
    assert mask_ap(gt, duplicate, [0.9, 0.7, 0.8])["ap"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert mask_ap(gt, np.zeros_like(gt), []) == {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
    assert all(np.isnan(v) for v in mask_ap(np.zeros_like(gt), gt, [1, 1]).values())


def test_mask_ap_bad_input():
    gt = _two_squares()
    with pytest.raises(ValueError, match="2 predicted instances but 1 scores"):
        mask_ap(gt, gt, [0.9])
    with pytest.raises(ValueError, match="1 ground-truth images but 2 predicted"):
        mask_ap([gt], [gt, gt])
    with pytest.raises(ValueError, match="ground truth is"):
        mask_ap(gt, gt[:10], [1, 1])


def test_instance_masks_from_label_map():
    gt = _two_squares()
    gt[gt == 2] = 7
    masks = instance_masks(gt)
    assert masks.shape == (2, 20, 20) and masks.dtype == bool
    np.testing.assert_array_equal(masks[1], gt == 7)
    with pytest.raises(ValueError, match="integers"):
        instance_masks(gt.astype(float))


def test_symmetric_best_dice_by_hand():
    gt = _two_squares()
    pred = np.zeros_like(gt)
    pred[0:10, 0:10] = 5  # exact
    # BestDice(gt, pred) = (1 + 0) / 2; BestDice(pred, gt) = 1; SBD = min
    assert best_dice(gt, pred) == pytest.approx(0.5)
    assert best_dice(pred, gt) == pytest.approx(1.0)
    assert symmetric_best_dice(gt, pred) == pytest.approx(0.5)
    # partial overlap: a 10x5 half of square 1 -> Dice 2*50/(100+50) = 2/3 with instance 1
    half = np.zeros_like(gt)
    half[0:10, 0:5] = 1
    half[10:20, 10:20] = 2
    assert symmetric_best_dice(gt, half) == pytest.approx((2 / 3 + 1) / 2)
    assert symmetric_best_dice(gt, gt) == 1.0
    assert symmetric_best_dice(gt, np.zeros_like(gt)) == 0.0
    assert symmetric_best_dice(np.zeros_like(gt), np.zeros_like(gt)) == 1.0


def test_abs_diff_in_count():
    gt = _two_squares()
    pred = np.zeros_like(gt)
    pred[0:5, 0:5], pred[5:10, 5:10], pred[12:14, 0:3] = 3, 4, 9
    assert abs_diff_in_count(gt, pred) == 1
    assert abs_diff_in_count(gt, np.zeros_like(gt)) == 2
    assert abs_diff_in_count(torch.from_numpy(gt), torch.from_numpy(gt)) == 0


def test_cvppp_plant_scores_itself_perfectly():
    root = shared_dataset("cvppp_a1")
    path = sorted((root / "instances").glob("*.png"))[0]
    gt = np.array(Image.open(path)).astype(np.int64)
    assert gt.ndim == 2 and gt.max() > 1
    assert symmetric_best_dice(gt, gt) == 1.0
    assert abs_diff_in_count(gt, gt) == 0
    n = len(np.unique(gt)) - 1
    assert mask_ap(gt, gt, np.linspace(1, 0.5, n)) == {"ap": 1.0, "ap50": 1.0, "ap75": 1.0}
