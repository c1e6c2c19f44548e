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


def _brute_force_two_nearest(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: a full-image distance transform per component, sorted per pixel."""
    from scipy.ndimage import distance_transform_edt, label

    components, count = label(cells, structure=np.ones((3, 3), dtype=bool))
    stack = np.stack([distance_transform_edt(components != k) for k in range(1, count + 1)])
    stack = np.sort(np.concatenate([stack, np.full((2, *cells.shape), np.inf)]), axis=0)
    return stack[0], stack[1]


def test_unet_cell_weight_map_by_hand():
    """Two cells (columns 0-9 and 14-19) separated by a 4-pixel membrane: at column 11 the nearest cell
    is 2 px away and the second 3 px, so w = 1 + 10 exp(-(2 + 3)^2 / (2 * 5^2)) (U-Net eq. 2)."""
    labels = np.zeros((6, 20), dtype=np.int64)
    labels[:, :10] = 1
    labels[:, 14:] = 1
    w = boundary_weight_map(torch.from_numpy(labels)[None], w0=10, sigma=5, cells=1)[0].numpy()
    assert w[3, 11] == pytest.approx(1 + 10 * np.exp(-25 / 50), rel=1e-6)
    assert w[3, 12] == pytest.approx(1 + 10 * np.exp(-25 / 50), rel=1e-6)  # 3 + 2, symmetric
    assert w[3, 9] == pytest.approx(1 + 10 * np.exp(-((0 + 5) ** 2) / 50), rel=1e-6)  # inside a cell: d1 = 0
    one = labels.copy()
    one[:, 14:] = 0  # a single cell: no separation term anywhere
    assert np.allclose(boundary_weight_map(torch.from_numpy(one)[None], cells=1)[0].numpy(), 1.0)


def test_two_nearest_cell_distances_match_a_brute_force_reference():
    from segscope.losses.boundary import two_nearest_cell_distances

    rng = np.random.default_rng(0)
    cells = rng.random((64, 80)) > 0.55  # many small touching and separate components
    d1, d2 = two_nearest_cell_distances(cells)  # no reach limit: exact everywhere
    r1, r2 = _brute_force_two_nearest(cells)
    assert np.array_equal(d1, r1) and np.array_equal(d2, r2)
    reach = 12.0  # limited reach: exact wherever d1 + d2 <= reach
    l1, l2 = two_nearest_cell_distances(cells, reach)
    near = r1 + r2 <= reach
    assert near.any() and np.array_equal((l1 + l2)[near], (r1 + r2)[near])
    assert np.all(l1 + l2 >= r1 + r2)


def test_boundary_ce_spec_takes_cells():
    from segscope.losses import build_loss

    loss = build_loss("boundary_ce:cells=1,sigma=5")
    labels = torch.zeros(1, 6, 20, dtype=torch.long)
    labels[:, :, :10] = 1
    labels[:, :, 14:] = 1
    logits = torch.zeros(1, 2, 6, 20)
    expected = boundary_weight_map(labels, cells=1).mean() * np.log(2)
    assert loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-5)
