"""Gradient ascent on the oracle: it climbs q, stays in [0, 1] and stops when q stops improving."""

import numpy as np
import pytest
import torch

from segscope.errors import UserError
from segscope.oracle import RefinedSegmenter, refine_mask, refine_proba, segment_from_scratch, soft_dice
from segscope.oracle.network import QualityOracle
from segscope.oracle.refine import initial_mask
from segscope.segmenter import Segmenter
from tests.oracle.helpers import ConstantOracle, DiceOracle, disc, grey_image


def test_one_gradient_step_increases_q_on_a_toy_oracle():
    truth = disc(64, 18)
    oracle = DiceOracle(truth)
    start = disc(64, 10).astype(np.float32)  # eroded: too small
    r = refine_mask(oracle, grey_image(truth), start, iterations=1, patience=1)
    assert r.quality[1] > r.quality[0]
    assert r.final_quality == pytest.approx(oracle.score(grey_image(truth), r.mask), abs=1e-5)


@pytest.mark.parametrize("parametrization", ["clip", "logit"])
def test_ascent_improves_the_true_dice_of_a_degraded_mask(parametrization):
    truth = disc(64, 18)
    oracle = DiceOracle(truth)
    start = disc(64, 18, centre=(24, 40)).astype(np.float32)  # shifted
    r = refine_mask(oracle, grey_image(truth), start, iterations=60, parametrization=parametrization)
    assert r.final_quality > r.initial_quality + 0.1
    assert r.final_quality == max(r.quality)  # the best mask seen is returned
    assert soft_dice(r.mask, truth) > soft_dice(start, truth) + 0.1


@pytest.mark.parametrize("parametrization", ["clip", "logit"])
def test_refinement_never_leaves_the_unit_interval(parametrization):
    torch.manual_seed(0)
    oracle = QualityOracle(1, base_channels=4, depth=2, size=16).eval()  # random weights
    image = grey_image(disc(40, 10))
    for start in (
        np.full((40, 40), -3.0),
        np.full((40, 40), 4.0),
        np.random.default_rng(0).normal(0.5, 2, (40, 40)),
    ):
        r = refine_mask(
            oracle, image, start, iterations=15, step=5.0, patience=15, parametrization=parametrization
        )
        assert r.mask.dtype == np.float32 and r.mask.shape == (40, 40)
        assert r.mask.min() >= 0.0 and r.mask.max() <= 1.0


def test_stops_on_zero_gradient_and_returns_the_start():
    start = disc(32, 8).astype(np.float32)
    r = refine_mask(ConstantOracle(), grey_image(start > 0), start, iterations=20)
    assert r.stop_reason == "zero gradient" and r.best_iteration == 0
    assert np.array_equal(r.mask, start)


def test_early_stopping_when_q_stops_improving():
    truth = disc(48, 12)
    r = refine_mask(
        DiceOracle(truth, size=16), grey_image(truth), truth.astype(np.float32), iterations=200, patience=3
    )
    assert len(r.quality) < 200 and r.stop_reason.startswith("no improvement")


def test_from_scratch_finds_the_toy_oracles_object():
    truth = disc(64, 16)
    r = segment_from_scratch(DiceOracle(truth), grey_image(truth), init="half", iterations=80)
    assert soft_dice(r.mask > 0.5, truth) > 0.8
    assert initial_mask((3, 4), "empty").sum() == 0 and initial_mask((2, 2), 0.25).mean() == 0.25
    with pytest.raises(UserError, match="init"):
        initial_mask((2, 2), "full")


def test_refine_proba_is_a_distribution_and_binary_classes_are_complementary():
    truth = disc(48, 12)
    proba = np.stack([1 - truth, truth]).astype(np.float32)
    out = refine_proba(DiceOracle(truth), grey_image(truth), np.roll(proba, 6, axis=2), iterations=5)
    assert out.shape == proba.shape
    np.testing.assert_allclose(out.sum(0), 1, atol=1e-5)
    np.testing.assert_allclose(out[0], 1 - out[1], atol=1e-5)
    with pytest.raises(UserError, match="classes"):
        refine_proba(DiceOracle(truth), grey_image(truth), np.zeros((3, 48, 48), np.float32))


class ShiftedDisc(Segmenter):
    name = "shifted"

    def fit(self, train, val=None, *, time_budget_s=None, out_dir=None, progress=True):
        return self

    def predict(self, image):
        return disc(image.shape[0], 12, centre=(20, 28)).astype(np.int64)


def test_refined_segmenter_is_a_segmenter_that_improves_its_base():
    truth = disc(48, 12)
    image = grey_image(truth)
    seg = RefinedSegmenter(ShiftedDisc(2), DiceOracle(truth), iterations=40)
    assert seg.name == "shifted+oracle" and seg.fit(None) is seg
    labels = seg.predict(image)
    assert labels.shape == truth.shape and labels.dtype == np.int64
    assert soft_dice(labels == 1, truth) > soft_dice(ShiftedDisc(2).predict(image) == 1, truth)
    with pytest.raises(UserError, match="classes"):
        RefinedSegmenter(ShiftedDisc(3), DiceOracle(truth))


def test_bad_arguments_are_user_errors():
    truth = disc(16, 4)
    with pytest.raises(UserError, match="parametrization"):
        refine_mask(DiceOracle(truth, 16), grey_image(truth), truth, parametrization="tanh")
    with pytest.raises(UserError, match="shape"):
        refine_mask(DiceOracle(truth, 16), grey_image(truth), np.zeros((8, 8)))
