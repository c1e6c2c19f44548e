"""OHEM keeps exactly the intended pixels, and its loss is CE over them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segscope.losses import cross_entropy, ohem_cross_entropy, ohem_mask
from tests.losses.helpers import logits_from_probs, random_case, target_from_labels

# 6 pixels, 2 classes; true-class probabilities below; pixel 5 is ignored (and very hard)
P_TRUE = np.array([0.9, 0.5, 0.65, 0.95, 0.2, 0.01])
LABELS = np.array([0, 1, 0, 1, 1, 255])


def case() -> tuple[torch.Tensor, torch.Tensor]:
    p1 = np.where(LABELS == 1, P_TRUE, 1 - P_TRUE)  # probability of class 1 (ignored pixel: label 0)
    logits = logits_from_probs(np.stack([1 - p1, p1])).requires_grad_()
    return logits, target_from_labels(LABELS)


def kept(**kw) -> list[int]:
    logits, target = case()
    return np.flatnonzero(ohem_mask(logits, target, **kw).numpy().ravel()).tolist()


def test_threshold_keeps_pixels_below_thresh():
    assert kept(thresh=0.7, min_kept=0) == [1, 2, 4]
    assert kept(thresh=0.6, min_kept=2) == [1, 4]


def test_min_kept_tops_up_with_the_next_hardest():
    assert kept(thresh=0.7, min_kept=4) == [0, 1, 2, 4]  # 0.9 is the next hardest after 0.65
    assert kept(thresh=0.1, min_kept=2) == [1, 4]  # none below 0.1: the two hardest
    assert kept(thresh=0.7, min_kept=100) == [0, 1, 2, 3, 4]  # all valid pixels, never the ignored one
    assert kept(thresh=0.7) == [0, 1, 2, 3, 4]  # default min_kept 100 000


def test_top_k_fraction():
    assert kept(keep=0.4) == [1, 4]  # ceil(0.4 * 5) = 2 hardest
    assert kept(keep=0.01) == [4]  # at least one
    assert kept(keep=0.2, min_kept=3) == [1, 2, 4]
    assert kept(keep=1.0) == [0, 1, 2, 3, 4]


def test_loss_is_cross_entropy_over_the_kept_pixels():
    logits, target = case()
    loss = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=0)
    expected = -(math.log(0.5) + math.log(0.65) + math.log(0.2)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    loss.backward()
    grad = logits.grad.abs().sum(1).flatten().numpy()
    assert np.flatnonzero(grad).tolist() == [1, 2, 4]


def test_class_weights_by_hand():
    logits, target = case()
    w = {0: 2.0, 1: 0.5}
    # kept pixels 1 (class 1), 2 (class 0), 4 (class 1)
    expected = (0.5 * -math.log(0.5) + 2.0 * -math.log(0.65) + 0.5 * -math.log(0.2)) / (0.5 + 2.0 + 0.5)
    got = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=0, weight=torch.tensor([w[0], w[1]]))
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_keeping_everything_is_weighted_cross_entropy():
    logits, target = random_case()
    weight = torch.tensor([1.0, 2.0, 0.5])
    for kw in ({"keep": 1.0}, {"thresh": 1.0, "min_kept": 0}):
        got = ohem_cross_entropy(logits, target, weight=weight, **kw)
        assert got.item() == pytest.approx(cross_entropy(logits, target, weight=weight).item(), abs=1e-6)


def test_nothing_valid_gives_zero():
    logits, _ = case()
    loss = ohem_cross_entropy(logits, target_from_labels([255] * 6))
    loss.backward()
    assert loss.item() == 0 and torch.all(logits.grad == 0)


@pytest.mark.parametrize(
    ("kw", "match"), [({"thresh": 1.5}, "thresh"), ({"keep": 0.0}, "keep"), ({"min_kept": -1}, "min_kept")]
)
def test_rejects_bad_options(kw, match):
    logits, target = case()
    with pytest.raises(ValueError, match=match):
        ohem_cross_entropy(logits, target, **kw)
