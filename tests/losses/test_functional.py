"""Pixel-wise and overlap losses against hand-computed values and gradients.

The shared example (tests/losses/helpers.py): 3 pixels, probabilities p(class 0) = .8, .4, .3 and
labels 0, 1, 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from segscope.losses import functional as LF
from tests.losses.helpers import PROBS, logits_from_probs, random_case, target_from_labels, tiny

# per class: TP, |P| (sum of probabilities), |T| (target pixels) of the shared example
TP = np.array([0.8 + 0.3, 0.6])
P_SUM = np.array([1.5, 1.5])
T_SUM = np.array([2.0, 1.0])


# --- cross-entropy -------------------------------------------------------------------------------


def test_cross_entropy_hand_value():
    logits, target = tiny()
    expected = -(math.log(0.8) + math.log(0.6) + math.log(0.3)) / 3
    assert LF.cross_entropy(logits, target).item() == pytest.approx(expected, abs=1e-12)


def test_cross_entropy_class_weights_normalise_by_weight_sum():
    logits, target = tiny()
    expected = (1 * -math.log(0.8) + 3 * -math.log(0.6) + 1 * -math.log(0.3)) / (1 + 3 + 1)
    got = LF.cross_entropy(logits, target, weight=torch.tensor([1.0, 3.0]))
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    logits, target = tiny()
    LF.cross_entropy(logits, target).backward()
    onehot = np.array([[1, 0, 1], [0, 1, 0]])
    np.testing.assert_allclose(logits.grad.numpy().reshape(2, 3), (PROBS - onehot) / 3, atol=1e-12)


def test_cross_entropy_weighted_gradient_by_hand():
    logits, target = tiny()
    w = np.array([1.0, 3.0])
    LF.cross_entropy(logits, target, weight=torch.tensor(w)).backward()
    onehot = np.array([[1, 0, 1], [0, 1, 0]])
    wy = w[[0, 1, 0]]
    np.testing.assert_allclose(
        logits.grad.numpy().reshape(2, 3), wy * (PROBS - onehot) / wy.sum(), atol=1e-12
    )


def test_cross_entropy_ignores_ignore_index_and_gives_it_no_gradient():
    logits, _ = tiny()
    target = target_from_labels([0, 255, 0])
    loss = LF.cross_entropy(logits, target)
    assert loss.item() == pytest.approx(-(math.log(0.8) + math.log(0.3)) / 2, abs=1e-12)
    loss.backward()
    assert torch.all(logits.grad[..., 1] == 0)


def test_cross_entropy_computes_half_precision_in_float32_and_keeps_float64():
    logits, target = random_case(ignore=False)
    assert LF.cross_entropy(logits.half(), target).dtype == torch.float32
    assert LF.cross_entropy(logits, target).dtype == torch.float64


def test_target_is_centre_cropped_to_smaller_logits():
    logits, target = random_case(h=3, w=4, ignore=False)
    big = torch.full((2, 7, 6), 255)
    big[:, 2:5, 1:5] = target
    assert LF.cross_entropy(logits, big).item() == pytest.approx(LF.cross_entropy(logits, target).item())
    with pytest.raises(ValueError, match="larger than the target"):
        LF.cross_entropy(logits, target[:, :2])


# --- Dice, generalised Dice, Tversky -------------------------------------------------------------


def test_soft_dice_hand_value():
    logits, target = tiny()
    dice = 2 * TP / (P_SUM + T_SUM)  # 2.2 / 3.5 and 1.2 / 2.5
    assert LF.soft_dice_loss(logits, target, smooth=0).item() == pytest.approx(1 - dice.mean(), abs=1e-12)
    smoothed = (2 * TP + 1) / (P_SUM + T_SUM + 1)
    assert LF.soft_dice_loss(logits, target).item() == pytest.approx(1 - smoothed.mean(), abs=1e-12)


def test_soft_dice_ignores_pixels():
    logits, _ = tiny()
    target = target_from_labels([0, 1, 255])
    tp, p, t = np.array([0.8, 0.6]), np.array([1.2, 0.8]), np.array([1.0, 1.0])
    got = LF.soft_dice_loss(logits, target, smooth=0).item()
    assert got == pytest.approx(1 - (2 * tp / (p + t)).mean(), abs=1e-12)


def test_soft_dice_all_ignored_is_finite():
    logits, _ = tiny()
    assert torch.isfinite(LF.soft_dice_loss(logits, target_from_labels([255] * 3), smooth=0))


def test_generalized_dice_hand_value_with_inverse_square_weights():
    logits, target = tiny()
    w = 1 / T_SUM**2  # 1/4 and 1
    expected = 1 - 2 * (w * TP).sum() / (w * (P_SUM + T_SUM)).sum()  # = 1 - 1.75 / 3.375
    assert expected == pytest.approx(1 - 1.75 / 3.375)
    got = LF.generalized_dice_loss(logits, target, smooth=0).item()
    assert got == pytest.approx(expected, abs=1e-12)


def test_generalized_dice_absent_class_takes_the_largest_present_weight():
    probs = np.array([[0.8, 0.4, 0.3], [0.1, 0.5, 0.5], [0.1, 0.1, 0.2]])  # class 2 absent from the target
    logits, target = logits_from_probs(probs), target_from_labels([0, 1, 0])
    tp = np.array([1.1, 0.5, 0.0])
    denom = probs.sum(1) + np.array([2.0, 1.0, 0.0])
    w = np.array([1 / 4, 1.0, 1.0])
    expected = 1 - 2 * (w * tp).sum() / (w * denom).sum()
    assert LF.generalized_dice_loss(logits, target, smooth=0).item() == pytest.approx(expected, abs=1e-12)


def test_generalized_dice_differs_from_dice_when_classes_are_unbalanced():
    logits, target = tiny()
    assert LF.generalized_dice_loss(logits, target).item() != pytest.approx(
        LF.soft_dice_loss(logits, target, smooth=0).item(), abs=1e-3
    )


def test_tversky_hand_value():
    logits, target = tiny()
    fp, fn = P_SUM - TP, T_SUM - TP  # (0.4, 0.9) and (0.9, 0.4)
    ti = TP / (TP + 0.3 * fp + 0.7 * fn)  # 1.1 / 1.85 and 0.6 / 1.15
    assert ti == pytest.approx([1.1 / 1.85, 0.6 / 1.15])
    got = LF.tversky_loss(logits, target, alpha=0.3, beta=0.7, smooth=0).item()
    assert got == pytest.approx(1 - ti.mean(), abs=1e-12)


@pytest.mark.parametrize("smooth", [0.0, 0.5])
def test_tversky_with_equal_half_weights_is_soft_dice(smooth):
    logits, target = random_case()
    tversky = LF.tversky_loss(logits, target, alpha=0.5, beta=0.5, smooth=smooth)
    dice = LF.soft_dice_loss(logits, target, smooth=2 * smooth)
    assert tversky.item() == pytest.approx(dice.item(), abs=1e-12)


def test_tversky_beta_penalises_false_negatives():
    logits, target = tiny()  # class 0 has more FN (0.9) than FP (0.4)
    recall_heavy = LF.tversky_loss(logits, target, alpha=0.1, beta=0.9, smooth=0)
    precision_heavy = LF.tversky_loss(logits, target, alpha=0.9, beta=0.1, smooth=0)
    fp, fn = P_SUM - TP, T_SUM - TP
    expected = 1 - (TP / (TP + 0.1 * fp + 0.9 * fn)).mean()
    assert recall_heavy.item() == pytest.approx(expected, abs=1e-12)
    assert recall_heavy.item() != pytest.approx(precision_heavy.item())


def test_tversky_rejects_negative_weights():
    logits, target = tiny()
    with pytest.raises(ValueError, match="alpha"):
        LF.tversky_loss(logits, target, alpha=-0.1)


# --- focal ---------------------------------------------------------------------------------------


def test_focal_hand_value():
    logits, target = tiny()
    pt = np.array([0.8, 0.6, 0.3])
    expected = (-((1 - pt) ** 2) * np.log(pt)).mean()
    assert LF.focal_loss(logits, target, gamma=2).item() == pytest.approx(expected, abs=1e-12)


def test_focal_class_weights_multiply_pixels_and_mean_over_valid():
    logits, _ = tiny()
    target = target_from_labels([0, 1, 255])
    pt, w = np.array([0.8, 0.6]), np.array([2.0, 5.0])
    expected = (w * -((1 - pt) ** 2) * np.log(pt)).sum() / 2
    got = LF.focal_loss(logits, target, weight=torch.tensor([2.0, 5.0])).item()
    assert got == pytest.approx(expected, abs=1e-6)


def test_focal_gamma_zero_is_cross_entropy():
    logits, target = random_case()
    assert LF.focal_loss(logits, target, gamma=0).item() == pytest.approx(
        LF.cross_entropy(logits, target).item(), abs=1e-12
    )


def test_focal_rejects_negative_gamma():
    logits, target = tiny()
    with pytest.raises(ValueError, match="gamma"):
        LF.focal_loss(logits, target, gamma=-1)


# --- cost-sensitive ------------------------------------------------------------------------------

COST = np.array([[0.0, 1.0], [4.0, 0.0]])  # missing class 1 (true 1, predicted 0) costs 4


def test_cost_sensitive_hand_value():
    logits, target = tiny()
    # pixel 0: p1 * C[0,1] = 0.2; pixel 1: p0 * C[1,0] = 0.4 * 4; pixel 2: 0.7 * 1
    expected = (0.2 + 1.6 + 0.7) / 3
    got = LF.cost_sensitive_loss(logits, target, torch.tensor(COST)).item()
    assert got == pytest.approx(expected, abs=1e-12)


def test_cost_sensitive_hand_derived_gradient():
    # d/dz_k sum_j p_j C[y, j] = p_k (C[y, k] - E), E = the pixel's expected cost
    logits, target = tiny()
    LF.cost_sensitive_loss(logits, target, torch.tensor(COST)).backward()
    rows = COST[[0, 1, 0]].T  # (C, W): C[y, k]
    expected_cost = (PROBS * rows).sum(0)
    np.testing.assert_allclose(
        logits.grad.numpy().reshape(2, 3), PROBS * (rows - expected_cost) / 3, atol=1e-12
    )


def test_cost_sensitive_with_zero_one_costs_is_expected_error():
    logits, target = random_case()
    valid = target != 255
    p_true = logits.softmax(1).gather(1, target.clamp(0, 2).unsqueeze(1)).squeeze(1)
    got = LF.cost_sensitive_loss(logits, target, 1 - torch.eye(3)).item()
    assert got == pytest.approx((1 - p_true[valid]).mean().item(), abs=1e-6)


def test_cost_sensitive_checks_the_matrix_shape():
    logits, target = tiny()
    with pytest.raises(ValueError, match=r"must be \(2, 2\)"):
        LF.cost_sensitive_loss(logits, target, torch.ones(3, 3))


# --- gradients (float64 gradcheck) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        LF.cross_entropy,
        LF.soft_dice_loss,
        LF.generalized_dice_loss,
        LF.tversky_loss,
        LF.focal_loss,
        lambda lo, t: LF.focal_loss(lo, t, weight=torch.tensor([1.0, 2.0, 0.5])),
        lambda lo, t: LF.cost_sensitive_loss(lo, t, torch.tensor([[0.0, 1, 2], [1, 0, 3], [5, 1, 0]])),
    ],
    ids=["ce", "dice", "gdice", "tversky", "focal", "focal_weighted", "cost"],
)
def test_gradcheck(fn):
    logits, target = random_case(n=1, h=2, w=3)
    assert gradcheck(lambda x: fn(x, target), (logits.requires_grad_(),))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_gradient_is_finite_on_confident_pixels(gamma):
    logits = torch.tensor([40.0, 0.0]).reshape(1, 2, 1, 1).requires_grad_()
    LF.focal_loss(logits, torch.zeros(1, 1, 1, dtype=torch.int64), gamma=gamma).backward()
    assert torch.isfinite(logits.grad).all()
