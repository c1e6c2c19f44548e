"""InstanceEvaluator against hand-computed references: SBD, |DiC|, adapted Rand error and COCO mask AP
(101-point interpolation worked out by hand, and pooling over images versus a mean of per-image APs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segscope.metrics.instance_evaluator import InstanceEvaluator
from segscope.types import Instances


def square(shape, y0, x0, size_y, size_x=None):
    m = np.zeros(shape, bool)
    m[y0 : y0 + size_y, x0 : x0 + (size_x or size_y)] = True
    return m


def four_squares(shape=(40, 40)):
    """Four disjoint 8x8 squares, ids 1..4."""
    ids = np.zeros(shape, np.int64)
    for k, (y, x) in enumerate([(2, 2), (2, 20), (20, 2), (20, 20)], start=1):
        ids[y : y + 8, x : x + 8] = k
    return ids


# -- per-image scores ------------------------------------------------------------------------------
def test_sbd_and_dic_by_hand():
    # truth: left half id 1 (8 px), right half id 2 (8 px); prediction: one object over all 16 px.
    gt = np.zeros((4, 4), np.int64)
    gt[:, :2], gt[:, 2:] = 1, 2
    pred = np.ones((4, 4), np.int64)
    ev = InstanceEvaluator()
    row = ev.add(Instances.from_label_map(pred), Instances.from_label_map(gt), name="merged")
    # BestDice(gt, pred): each half 2*8/(8+16) = 2/3; BestDice(pred, gt) = 2/3 -> SBD 2/3
    assert row["sbd"] == pytest.approx(2 / 3)
    assert row["abs_dic"] == 1 and row["num_pred"] == 1 and row["num_true"] == 2
    assert row["name"] == "merged"
    # a perfect second image: SBD 1, |DiC| 0
    ev.add(gt, gt, name="perfect")  # label maps are accepted too
    res = ev.result()
    assert res["sbd"] == pytest.approx((2 / 3 + 1) / 2)
    assert res["abs_dic"] == pytest.approx(0.5)
    assert res["num_images"] == 2
    assert [r["name"] for r in res["per_image"]] == ["merged", "perfect"]
    assert set(res) >= {"mask_ap", "mask_ap50", "mask_ap75", "sbd", "abs_dic", "rand_error", "num_images"}


def test_sbd_is_the_minimum_of_the_two_directions():
    # truth one 4x4 object (16 px); prediction: that object plus a false 2x2 object elsewhere.
    gt = np.zeros((10, 10), np.int64)
    gt[:4, :4] = 1
    pred = gt.copy()
    pred[8:, 8:] = 2
    row = InstanceEvaluator().add(pred, gt)
    # BestDice(gt, pred) = 1; BestDice(pred, gt) = (1 + 0) / 2 = 0.5
    assert row["sbd"] == pytest.approx(0.5)
    assert row["abs_dic"] == 1


def test_rand_error_by_hand_and_background_convention():
    gt = np.zeros((4, 4), np.int64)
    gt[:, :2], gt[:, 2:] = 1, 2
    pred = np.ones((4, 4), np.int64)
    # contingency: one predicted segment of 16 px over two true ones of 8: sum n_ij^2 = 128,
    # sum a_i^2 = 128, sum b_j^2 = 256, N = 16 -> 1 - 2 (128-16) / ((128-16) + (256-16)) = 1 - 224/352
    row = InstanceEvaluator().add(pred, gt)
    assert row["rand_error"] == pytest.approx(1 - 224 / 352)
    # true background is left out: a false object on the background does not change the Rand error
    gt2 = np.zeros((6, 6), np.int64)
    gt2[:4, :2], gt2[:4, 2:4] = 1, 2
    pred2 = np.zeros((6, 6), np.int64)
    pred2[:4, :4] = 1
    clean = InstanceEvaluator().add(pred2, gt2)["rand_error"]
    pred2[5, 5] = 7  # a spurious object where the truth is background
    assert InstanceEvaluator().add(pred2, gt2)["rand_error"] == pytest.approx(clean)
    assert clean == pytest.approx(1 - 224 / 352)
    # perfect -> 0; no true object -> nan, left out of the mean
    ev = InstanceEvaluator()
    assert ev.add(gt, gt)["rand_error"] == pytest.approx(0.0)
    assert math.isnan(ev.add(np.zeros((4, 4), np.int64), np.zeros((4, 4), np.int64))["rand_error"])
    assert ev.result()["rand_error"] == pytest.approx(0.0)


def test_empty_masks_are_not_counted_and_shapes_must_match():
    masks = np.stack([square((10, 10), 0, 0, 3), np.zeros((10, 10), bool)])
    pred = Instances.from_masks(masks)
    row = InstanceEvaluator().add(pred, Instances.from_masks(masks[:1]))
    assert row["num_pred"] == 1 and row["abs_dic"] == 0 and row["sbd"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        InstanceEvaluator().add(Instances.empty((5, 5)), Instances.empty((6, 6)))


# -- COCO mask AP -----------------------------------------------------------------------------------
def test_perfect_predictions_give_ap_one():
    ev = InstanceEvaluator()
    for seed in range(3):
        ids = np.roll(four_squares(), seed * 3, axis=1)
        ev.add(Instances.from_label_map(ids), Instances.from_label_map(ids))
    res = ev.result()
    assert res["mask_ap"] == pytest.approx(1.0)
    assert res["mask_ap50"] == pytest.approx(1.0)
    assert res["mask_ap75"] == pytest.approx(1.0)
    assert res["sbd"] == pytest.approx(1.0) and res["abs_dic"] == 0


def test_half_the_instances_missed():
    # 4 true objects, 2 found exactly: precision 1 up to recall 0.5, nothing beyond. COCO samples the
    # interpolated precision at the 101 recalls 0, 0.01, ..., 1: the 51 points r <= 0.5 give 1, the
    # rest 0 -> AP = 51/101 at every IoU threshold.
    gt = Instances.from_label_map(four_squares())
    ev = InstanceEvaluator()
    ev.add(gt.select(np.array([0, 2])), gt)
    res = ev.result()
    for key in ("mask_ap", "mask_ap50", "mask_ap75"):
        assert res[key] == pytest.approx(51 / 101, abs=1e-6)
    assert res["per_image"][0]["abs_dic"] == 2


def test_ap_at_one_iou_between_thresholds():
    # a prediction of 68 of a true object's 100 pixels: IoU 0.68, matched at the thresholds 0.50, 0.55,
    # 0.60, 0.65 (4 of 10) -> AP50 = 1, AP75 = 0, AP = 0.4
    gt = square((20, 20), 0, 0, 10)
    pred = np.zeros((20, 20), bool)
    pred.ravel()[np.flatnonzero(gt.ravel())[:68]] = True
    ev = InstanceEvaluator()
    ev.add(Instances.from_masks(pred[None]), Instances.from_masks(gt[None]))
    res = ev.result()
    assert res["mask_ap50"] == pytest.approx(1.0)
    assert res["mask_ap75"] == pytest.approx(0.0)
    assert res["mask_ap"] == pytest.approx(0.4)


def test_pooling_over_images_differs_from_mean_of_per_image_aps():
    # image A: one object found exactly (score 0.9). Image B: its object missed, a false detection
    # (score 0.95) elsewhere. Per image: AP(A) = 1, AP(B) = 0 -> mean 0.5. Pooled, the detections rank
    # FP (0.95) then TP (0.9) against 2 true objects: precision 0.5 at recall 0.5, so the interpolated
    # precision is 0.5 on the 51 recalls <= 0.5 and 0 beyond -> AP = 0.5 * 51/101.
    shape = (30, 30)
    gt_a = Instances.from_masks(square(shape, 2, 2, 8)[None])
    gt_b = Instances.from_masks(square(shape, 2, 2, 8)[None])
    pred_a = Instances.from_masks(square(shape, 2, 2, 8)[None], scores=[0.9])
    pred_b = Instances.from_masks(square(shape, 18, 18, 8)[None], scores=[0.95])
    per_image = []
    for pred, gt in ((pred_a, gt_a), (pred_b, gt_b)):
        single = InstanceEvaluator()
        single.add(pred, gt)
        per_image.append(single.result()["mask_ap50"])
    assert per_image == pytest.approx([1.0, 0.0])
    pooled = InstanceEvaluator()
    pooled.add(pred_a, gt_a, "a")
    pooled.add(pred_b, gt_b, "b")
    res = pooled.result()
    assert res["mask_ap50"] == pytest.approx(0.5 * 51 / 101, abs=1e-6)
    assert res["mask_ap"] == pytest.approx(0.5 * 51 / 101, abs=1e-6)
    assert abs(res["mask_ap50"] - np.mean(per_image)) > 0.2


def test_pooled_ap_matches_mask_ap_on_a_sequence():
    from segscope.metrics.instance import mask_ap

    rng = np.random.default_rng(0)
    gts, preds, scores = [], [], []
    ev = InstanceEvaluator()
    for _ in range(4):
        ids = four_squares()
        pred = np.roll(ids, int(rng.integers(-3, 4)), axis=int(rng.integers(0, 2)))
        s = rng.random(len(np.unique(pred)) - 1)
        ev.add(Instances.from_masks(Instances.from_label_map(pred).masks, scores=s), ids)
        gts.append(ids), preds.append(pred), scores.append(s)
    ref = mask_ap(gts, preds, scores)
    res = ev.result()
    assert res["mask_ap"] == pytest.approx(ref["ap"])
    assert res["mask_ap50"] == pytest.approx(ref["ap50"])
    assert res["mask_ap75"] == pytest.approx(ref["ap75"])


def test_class_aware_when_labels_differ():
    # two true objects of classes 1 and 2, predicted with exact masks but swapped classes: class-aware AP
    # is 0; with a single class everywhere the same masks score 1.
    m1, m2 = square((20, 20), 0, 0, 5), square((20, 20), 10, 10, 5)
    masks = np.stack([m1, m2])
    gt = Instances.from_masks(masks, labels=[1, 2])
    ev = InstanceEvaluator()
    ev.add(Instances.from_masks(masks, labels=[2, 1]), gt)
    assert ev.result()["mask_ap"] == pytest.approx(0.0)
    ev = InstanceEvaluator()
    ev.add(Instances.from_masks(masks, labels=[1, 2]), gt)
    assert ev.result()["mask_ap"] == pytest.approx(1.0)
    # one label value throughout (even if not 1): class-agnostic
    ev = InstanceEvaluator()
    ev.add(Instances.from_masks(masks, labels=[3, 3]), Instances.from_masks(masks, labels=[3, 3]))
    assert ev.result()["mask_ap"] == pytest.approx(1.0)


def test_degenerate_ap():
    ev = InstanceEvaluator()
    ev.add(Instances.empty((8, 8)), Instances.empty((8, 8)))
    res = ev.result()
    assert math.isnan(res["mask_ap"]) and res["sbd"] == pytest.approx(1.0)
    ev.add(Instances.empty((8, 8)), Instances.from_masks(square((8, 8), 0, 0, 3)[None]))
    res = ev.result()
    assert res["mask_ap"] == 0.0 and res["per_image"][1]["sbd"] == 0.0
    assert InstanceEvaluator().result()["num_images"] == 0
