"""Boundary loss (Kervadec) and U-Net boundary weights against hand-computed distance maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from segscope.losses import (
    boundary_loss,
    boundary_weight_map,
    boundary_weighted_cross_entropy,
    cross_entropy,
    signed_distance_maps,
)
from tests.losses.helpers import logits_from_probs, random_case, target_from_labels

LABELS = [0, 0, 1, 1, 1, 0]
# class 1 occupies pixels 2-4: outside = distance to it, inside = -(distance to another class - 1)
PHI_1 = [2, 1, 0, -1, 0, 1]
PHI_0 = [-1, 0, 1, 2, 1, 0]


def test_signed_distance_maps_by_hand():
    phi = signed_distance_maps(target_from_labels(LABELS), 2)
    assert phi.shape == (1, 2, 1, 6)
    np.testing.assert_array_equal(phi[0, 0, 0].numpy(), PHI_0)
    np.testing.assert_array_equal(phi[0, 1, 0].numpy(), PHI_1)


def test_signed_distance_maps_in_2d_use_euclidean_distance():
    target = torch.zeros(1, 3, 3, dtype=torch.int64)
    target[0, 0, 0] = 1
    phi = signed_distance_maps(target, 2)[0, 1].numpy()
    r2, r5, r8 = math.sqrt(2), math.sqrt(5), math.sqrt(8)
    np.testing.assert_allclose(phi, [[0, 1, 2], [1, r2, r5], [2, r5, r8]])


def test_ignored_pixels_form_no_boundary_and_absent_or_whole_classes_are_zero():
    phi = signed_distance_maps(target_from_labels([0, 0, 1, 1, 1, 255]), 3)[0, :, 0].numpy()
    np.testing.assert_array_equal(phi[1], [2, 1, 0, -1, -2, 0])  # pixel 4's nearest other class is pixel 1
    np.testing.assert_array_equal(phi[2], 0)  # class 2 absent
    whole = signed_distance_maps(target_from_labels([1, 1, 255]), 2)
    assert torch.all(whole == 0)


def test_boundary_loss_hand_value():
    probs = np.array([[0.9, 0.6, 0.3, 0.2, 0.4, 0.7], [0.1, 0.4, 0.7, 0.8, 0.6, 0.3]])
    logits, target = logits_from_probs(probs), target_from_labels(LABELS)
    expected = (probs[0] @ np.array(PHI_0) + probs[1] @ np.array(PHI_1)) / (6 * 2)
    assert boundary_loss(logits, target).item() == pytest.approx(expected, abs=1e-12)
    assert boundary_loss(logits, target, classes=[1]).item() == pytest.approx(
        probs[1] @ np.array(PHI_1) / 6, abs=1e-12
    )


def test_boundary_loss_is_lowest_for_the_true_mask():
    target = target_from_labels(LABELS)
    onehot = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).double()
    perfect = boundary_loss(onehot * 20, target)
    shifted = boundary_loss(onehot.roll(1, -1) * 20, target)
    assert perfect.item() < shifted.item()
    assert perfect.item() == pytest.approx((-1 + -1) / 12, abs=1e-6)  # only the interior pixels count


def test_boundary_loss_ignores_pixels_and_checks_classes():
    probs = np.full((2, 6), 0.5)
    logits = logits_from_probs(probs)
    target = target_from_labels([0, 0, 1, 1, 1, 255])
    phi = np.array([[-1, 0, 1, 2, 3, 0], [2, 1, 0, -1, -2, 0]])
    assert boundary_loss(logits, target).item() == pytest.approx(0.5 * phi.sum() / (5 * 2), abs=1e-12)
    with pytest.raises(ValueError, match="subset"):
        boundary_loss(logits, target, classes=[2])


def test_boundary_loss_gradcheck():
    logits, target = random_case(n=1, h=3, w=4)
    assert gradcheck(lambda x: boundary_loss(x, target), (logits.requires_grad_(),))


def test_boundary_weight_map_by_hand():
    d = np.array([2, 1, 1, 2, 1, 1])  # distance to the nearest pixel of another class
    w = boundary_weight_map(target_from_labels(LABELS), w0=10, sigma=1)[0, 0].numpy()
    np.testing.assert_allclose(w, 1 + 10 * np.exp(-(d**2) / 2), rtol=1e-6)
    wc = boundary_weight_map(target_from_labels(LABELS), w0=10, sigma=1, weight=torch.tensor([1.0, 3.0]))
    expected = np.array([1, 1, 3, 3, 3, 1]) + 10 * np.exp(-(d**2) / 2)
    np.testing.assert_allclose(wc[0, 0].numpy(), expected, rtol=1e-6)


def test_boundary_weight_map_one_class_and_ignored():
    w = boundary_weight_map(target_from_labels([1, 1, 255]), weight=torch.tensor([1.0, 2.0]))
    np.testing.assert_array_equal(w[0, 0].numpy(), [2, 2, 0])


def test_boundary_weighted_ce_hand_value_and_w0_zero_is_ce():
    probs = np.array([[0.9, 0.6, 0.3, 0.2, 0.4, 0.7], [0.1, 0.4, 0.7, 0.8, 0.6, 0.3]])
    logits, target = logits_from_probs(probs), target_from_labels(LABELS)
    d = np.array([2, 1, 1, 2, 1, 1])
    w = 1 + 10 * np.exp(-(d**2) / 2)
    nll = -np.log(probs[LABELS, np.arange(6)])
    got = boundary_weighted_cross_entropy(logits, target, w0=10, sigma=1).item()
    assert got == pytest.approx((w * nll).mean(), rel=1e-6)
    plain = boundary_weighted_cross_entropy(logits, target, w0=0).item()
    assert plain == pytest.approx(cross_entropy(logits, target).item(), abs=1e-12)


def test_boundary_weighted_ce_rejects_bad_sigma():
    with pytest.raises(ValueError, match="sigma"):
        boundary_weight_map(target_from_labels(LABELS), sigma=0)
