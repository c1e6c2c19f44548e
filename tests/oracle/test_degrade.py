"""Synthetic degradations: their true quality against hand-computed / analytic references."""

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from segscope.oracle.degrade import (
    DEGRADATIONS,
    degrade_mask,
    dilate,
    erode,
    flip_labels,
    mask_quality,
    shift,
    soft_dice,
    soft_iou,
    soften,
)


def disc(size: int, radius: float, centre: tuple[float, float] | None = None) -> np.ndarray:
    cy, cx = centre or ((size - 1) / 2, (size - 1) / 2)
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def test_soft_dice_and_iou_by_hand():
    pred, truth = np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])
    assert soft_dice(pred, truth) == pytest.approx(0.5)  # 2*1 / (2 + 2)
    assert soft_iou(pred, truth) == pytest.approx(1 / 3)  # 1 / 3
    soft = np.array([0.5, 0.5])
    assert soft_dice(soft, np.array([1, 0])) == pytest.approx(0.5)  # 2*0.5 / (1 + 1)
    assert soft_iou(soft, np.array([1, 0])) == pytest.approx(1 / 3)  # 0.5 / (1 + 1 - 0.5)
    assert soft_dice(np.zeros(3), np.zeros(3)) == 1.0
    valid = np.array([True, True, False, True])
    assert soft_dice(pred, truth, valid) == pytest.approx(2 / 3)  # pixel 2 (a miss) left out
    with pytest.raises(ValueError, match="quality metric"):
        mask_quality(pred, truth, "f1")


@pytest.mark.parametrize(("radius", "r"), [(20, 3), (20, 6), (14, 4)])
def test_erosion_and_dilation_dice_of_a_disc_match_the_analytic_value(radius, r):
    truth = disc(80, radius)
    eroded, dilated = erode(truth, r), dilate(truth, r)
    # a disc eroded / dilated by a disc of radius r is the disc of radius R -/+ r
    expect_erode = 2 * (radius - r) ** 2 / (radius**2 + (radius - r) ** 2)
    expect_dilate = 2 * radius**2 / (radius**2 + (radius + r) ** 2)
    assert mask_quality(eroded, truth) == pytest.approx(expect_erode, abs=0.03)
    assert mask_quality(dilated, truth) == pytest.approx(expect_dilate, abs=0.03)
    assert mask_quality(eroded, truth, "iou") == pytest.approx((radius - r) ** 2 / radius**2, abs=0.03)


def test_shift_of_a_square_overlaps_by_the_hand_computed_fraction():
    truth = np.zeros((40, 40), bool)
    truth[10:30, 10:30] = True  # side 20
    moved = shift(truth, 0, 5)
    assert moved.sum() == truth.sum()
    assert mask_quality(moved, truth) == pytest.approx(15 / 20)  # overlap 20*15 of 400 + 400


def test_degrade_mask_reports_the_true_quality_of_what_it_returns():
    truth = disc(64, 18)
    for seed in range(12):
        d = degrade_mask(truth, rng=seed, soft=False)
        hard = d.mask > 0.5
        inter, total = (hard & truth).sum(), hard.sum() + truth.sum()
        assert d.dice == pytest.approx(2 * inter / total if total else 1.0)
        assert d.iou == pytest.approx(d.dice / (2 - d.dice))  # hard masks: J = D / (2 - D)
        assert d.mask.dtype == np.float32 and set(np.unique(d.mask)) <= {0.0, 1.0}


def test_degradations_span_the_quality_range_and_are_seeded():
    truth = disc(64, 16)
    results = [degrade_mask(truth, rng=seed, scale=0.5) for seed in range(80)]
    dice = np.array([d.dice for d in results])
    assert dice.min() < 0.2 and dice.max() > 0.95
    assert len(np.unique(np.minimum((dice * 5).astype(int), 4))) >= 4  # at least 4 of 5 quintiles
    assert any(((d.mask > 0) & (d.mask < 1)).any() for d in results)  # some are soft probability maps
    again = degrade_mask(truth, rng=7, scale=0.5)
    assert np.array_equal(again.mask, results[7].mask) and again.ops == results[7].ops


@pytest.mark.parametrize("op", DEGRADATIONS)
def test_every_operation_changes_the_mask_and_reports_its_true_dice(op):
    truth = disc(64, 16)
    results = [degrade_mask(truth, rng=s, ops=[op], soft=False) for s in range(4)]
    for d in results:  # Dice of a hard mask is the F1 score of its pixels (scikit-learn's, independent)
        assert d.dice == pytest.approx(f1_score(truth.ravel(), d.mask.ravel() > 0.5, zero_division=1.0))
    assert min(d.dice for d in results) < 1.0  # every operation does change the mask


def test_soften_by_hand():
    truth = disc(40, 10)
    # no blur: 0.5 +- 0.6 * 0.5 on / off the disc, and the soft Dice 2 * 0.8 A / (0.8 A + 0.2 (N - A) + A)
    soft = soften(truth, sigma=0.0, confidence=0.6)
    np.testing.assert_allclose(soft, np.where(truth, 0.8, 0.2), atol=1e-6)
    a, n = truth.sum(), truth.size
    assert soft_dice(soft, truth) == pytest.approx(2 * 0.8 * a / (0.8 * a + 0.2 * (n - a) + a), rel=1e-5)
    # a blur of 2 px leaves the disc's centre and the far corner at those values and the rim near 0.5
    blurred = soften(truth, sigma=2.0, confidence=0.6)
    assert blurred[20, 20] == pytest.approx(0.8, abs=1e-3) and blurred[0, 0] == pytest.approx(0.2, abs=1e-6)
    assert abs(blurred[20, 30] - 0.5) < 0.1  # 0.5 px outside the circle (centre 19.5, 19.5)
    with pytest.raises(ValueError, match="confidence"):
        soften(truth, confidence=1.5)


def test_flip_labels_changes_only_real_classes_to_other_classes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (30, 30))
    labels[:5] = 255  # ignore index
    out = flip_labels(labels, 3, count=6, radius=6, rng=rng)
    changed = out != labels
    assert changed.any()
    assert not changed[:5].any()
    assert set(np.unique(out[5:])) <= {0, 1, 2}


def test_bad_inputs_raise_specific_errors():
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade_mask(disc(20, 5), ops=["melt"])
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        degrade_mask(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="scale"):
        degrade_mask(disc(20, 5), scale=0)
    assert math.isclose(degrade_mask(disc(20, 5), ops=[], soft=False).dice, 1.0)
