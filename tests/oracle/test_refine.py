"""Gradient ascent on the oracle: it climbs q, takes the paper's normalised step and stops when q stops
improving."""

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
    # the mask returned is the best one seen: scored afresh, it has the highest q of the history
    assert oracle.score(grey_image(truth), r.mask) == pytest.approx(max(r.quality), abs=1e-5)
    assert soft_dice(r.mask, truth) > soft_dice(start, truth) + 0.1


class LinearOracle(QualityOracle):
    """q(m) = 0.5 + mean(w * m) at the oracle size: dq/dm = w / S^2, known in closed form."""

    def __init__(self, weights: np.ndarray) -> None:
        super().__init__(1, base_channels=2, depth=1, size=weights.shape[0], classes=[1], num_classes=2)
        self.register_buffer("w", torch.from_numpy(weights.astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 + (x[:, self.in_channels] * self.w).mean((1, 2))


def test_one_step_is_the_papers_normalised_step_by_hand():
    # image at the oracle size, so no resize: one step is m + alpha * g / max|g|, then the projection
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (8, 8))
    start = rng.uniform(0, 1, (8, 8)).astype(np.float32)
    start[0, :4] = [0.0, 1.0, 0.97, 0.02]  # pixels the step pushes past the bounds get clipped
    image = grey_image(start > 0.5)
    oracle = LinearOracle(w)
    r = refine_mask(oracle, image, start, iterations=1, patience=1, parametrization="clip")
    expected = np.clip(start + 0.1 * w / np.abs(w).max(), 0, 1)
    np.testing.assert_allclose(r.mask, expected, atol=1e-6)
    assert r.quality[0] == pytest.approx(0.5 + (w * start).mean(), abs=1e-6)
    assert r.quality[1] == pytest.approx(0.5 + (w * expected).mean(), abs=1e-6)
    # logits: z = logit(m) moves by alpha * g_z / max|g_z| with g_z = w * m (1 - m) / S^2
    m = np.clip(start, 1e-4, 1 - 1e-4).astype(np.float64)
    gz = w * m * (1 - m)
    z = np.log(m / (1 - m)) + 0.5 * gz / np.abs(gz).max()
    r = refine_mask(oracle, image, start, iterations=1, patience=1, parametrization="logit")
    np.testing.assert_allclose(r.mask, 1 / (1 + np.exp(-z)), atol=1e-5)
    # a start outside [0, 1] is projected first (iterations=0 returns it)
    wild = np.full((8, 8), 4.0)
    wild[:, :4] = -3.0
    np.testing.assert_array_equal(refine_mask(oracle, image, wild, iterations=0).mask, np.clip(wild, 0, 1))


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


def test_refine_proba_refines_the_oracles_class_and_complements_the_other():
    truth = disc(48, 12)
    image = grey_image(truth)
    proba = np.roll(np.stack([1 - truth, truth]).astype(np.float32), 6, axis=2)
    out = refine_proba(DiceOracle(truth), image, proba, iterations=5)
    assert out.shape == proba.shape
    # the one-class oracle's class is refined exactly as refine_mask alone does it; the other is 1 - p
    alone = refine_mask(DiceOracle(truth), image, proba[1], iterations=5).mask
    np.testing.assert_allclose(out[1], alone, atol=1e-6)
    np.testing.assert_allclose(out[0], 1 - alone, atol=1e-6)
    assert soft_dice(out[1], truth) > soft_dice(proba[1], truth)
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
