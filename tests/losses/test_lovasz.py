"""Lovász-softmax against the set-function definition, by hand, and its known properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from segscope.losses import lovasz_softmax_loss
from segscope.losses.lovasz import lovasz_grad
from tests.losses.helpers import PROBS, logits_from_probs, random_case, target_from_labels, tiny


def lovasz_by_definition(probs: np.ndarray, labels: np.ndarray, classes: str = "present") -> float:
    """Independent reference: Lovász extension of ``Δ_J(M) = |M| / |F ∪ M|`` from its definition.

    ``probs`` ``(C, P)``, ``labels`` ``(P,)``; sorts the errors and sums ``m_(i) (Δ(S_i) - Δ(S_i-1))``.
    """
    losses = []
    for c in range(probs.shape[0]):
        fg = set(np.flatnonzero(labels == c).tolist())
        if classes == "present" and not fg:
            continue
        errors = np.abs((labels == c).astype(float) - probs[c])
        order = sorted(range(len(errors)), key=lambda i: -errors[i])

        def delta(s: set[int], fg: set[int] = fg) -> float:
            return len(s) / len(fg | s) if fg | s else 0.0

        total, prev = 0.0, 0.0
        for i in range(len(order)):
            cur = delta(set(order[: i + 1]))
            total += errors[order[i]] * (cur - prev)
            prev = cur
        losses.append(total)
    return float(np.mean(losses))


def test_hand_computed_value():
    # class 0: errors (.2, .4, .7), F = {0, 2}: .7 * 1/2 + .4 * (2/3 - 1/2) + .2 * (1 - 2/3) = 29/60
    # class 1: errors (.2, .4, .7), F = {1}:    .7 * 1/2 + .4 * (1 - 1/2)   + .2 * 0         = 33/60
    logits, target = tiny()
    assert lovasz_softmax_loss(logits, target).item() == pytest.approx(31 / 60, abs=1e-12)
    assert lovasz_by_definition(PROBS, np.array([0, 1, 0])) == pytest.approx(31 / 60)


def test_lovasz_grad_by_hand():
    # F = {pixels 0, 2} sorted as (fg, bg, fg): Δ = 1/2, 2/3, 3/3 -> increments 1/2, 1/6, 1/3
    grad = lovasz_grad(torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64))
    np.testing.assert_allclose(grad.numpy(), [0.5, 1 / 6, 1 / 3])
    assert grad.sum().item() == pytest.approx(1.0)  # Δ_J(all pixels) = 1


@pytest.mark.parametrize("seed", range(3))
def test_matches_the_set_function_definition_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(3), size=7).T  # (3, 7)
    labels = rng.integers(0, 3, 7)
    labels[0] = 0
    logits, target = logits_from_probs(probs), target_from_labels(labels)
    for classes in ("present", "all"):
        expected = lovasz_by_definition(probs, labels, classes)
        got = lovasz_softmax_loss(logits, target, classes=classes).item()
        assert got == pytest.approx(expected, abs=1e-12)


def test_binary_perfect_prediction_is_near_zero():
    target = torch.tensor([[[0, 1, 1], [0, 0, 1]]])
    logits = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float() * 20
    assert lovasz_softmax_loss(logits, target).item() < 1e-6


@pytest.mark.parametrize("seed", range(4))
def test_equals_one_minus_iou_on_hard_predictions(seed):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    pred = torch.randint(0, 3, (2, 4, 5), generator=g)
    logits = torch.nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).double() * 40
    ious = [
        ((pred == c) & (target == c)).sum().item() / ((pred == c) | (target == c)).sum().item()
        for c in range(3)
        if (target == c).any()
    ]
    assert lovasz_softmax_loss(logits, target).item() == pytest.approx(1 - np.mean(ious), abs=1e-9)


def test_binary_hard_prediction_is_one_minus_jaccard():
    target = target_from_labels([1, 1, 0, 0])
    pred = np.array([1, 0, 1, 0])  # fg IoU = 1/3, bg IoU = 1/3
    logits = torch.tensor(np.stack([pred == 0, pred == 1]) * 40.0).reshape(1, 2, 1, 4)
    assert lovasz_softmax_loss(logits, target).item() == pytest.approx(1 - 1 / 3, abs=1e-9)


def test_ignored_pixels_are_dropped():
    logits, target = random_case(n=1, ignore=True)
    valid = target != 255
    probs = logits.softmax(1)[0].reshape(3, -1)[:, valid.flatten()].numpy()
    expected = lovasz_by_definition(probs, target[valid].numpy())
    assert lovasz_softmax_loss(logits, target).item() == pytest.approx(expected, abs=1e-12)


def test_per_image_averages_images_and_skips_empty_ones():
    logits, target = random_case(n=3)
    target[2] = 255
    per = [lovasz_softmax_loss(logits[i : i + 1], target[i : i + 1]).item() for i in range(2)]
    got = lovasz_softmax_loss(logits, target, per_image=True).item()
    assert got == pytest.approx(np.mean(per), abs=1e-12)
    assert got != pytest.approx(lovasz_softmax_loss(logits, target).item(), abs=1e-6)


def test_all_ignored_is_zero_with_a_gradient():
    logits, _ = tiny()
    loss = lovasz_softmax_loss(logits, target_from_labels([255, 255, 255]))
    loss.backward()
    assert loss.item() == 0 and torch.all(logits.grad == 0)


def test_rejects_unknown_classes_mode():
    logits, target = tiny()
    with pytest.raises(ValueError, match="present"):
        lovasz_softmax_loss(logits, target, classes="some")  # type: ignore[arg-type]


@pytest.mark.parametrize("per_image", [False, True])
def test_gradcheck(per_image):
    logits, target = random_case(n=2, h=2, w=3)
    fn = lambda x: lovasz_softmax_loss(x, target, per_image=per_image)  # noqa: E731
    assert gradcheck(fn, (logits.requires_grad_(),))


def test_matches_the_definition_over_all_pixel_orders_of_a_tiny_case():
    # every labelling of 3 pixels with 2 classes, fixed probabilities
    logits = logits_from_probs(PROBS)
    for labels in itertools.product([0, 1], repeat=3):
        expected = lovasz_by_definition(PROBS, np.array(labels))
        got = lovasz_softmax_loss(logits, target_from_labels(list(labels))).item()
        assert got == pytest.approx(expected, abs=1e-12)
