"""The local (full-resolution) quality oracle: its quality map, estimated scores, refinement and tuning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from segscope.data import open_dataset
from segscope.errors import UserError
from segscope.oracle.local import (
    LocalQualityOracle,
    dice_from_quality_map,
    estimated_quality,
    one_hot,
)
from segscope.oracle.local_refine import refine_local, tune_refinement
from segscope.oracle.local_train import degraded_map, train_local_oracle
from segscope.oracle.quality import (
    choose_per_image,
    flag_images,
    load_any_oracle,
    predicted_quality,
    true_quality,
)
from tests.conftest import write_folder_dataset
from tests.oracle.helpers import disc, grey_image, write_three_class_dataset


class FixedOracle(LocalQualityOracle):
    """p(true class) is a fixed map whatever the mask: a toy whose estimates are known exactly."""

    def __init__(self, p_foreground: np.ndarray) -> None:
        super().__init__(1, num_classes=2, base_channels=2, depth=1)
        p = torch.from_numpy(np.clip(p_foreground, 1e-6, 1 - 1e-6).astype(np.float32))
        self.register_buffer("logits", torch.log(torch.stack([1 - p, p])))
        self.scale = torch.nn.Parameter(torch.ones(()))  # a parameter, so .parameters() has a device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.logits * self.scale)[None].expand(x.shape[0], -1, -1, -1)


class MaskFollowingOracle(FixedOracle):
    """p(true = fg) = a blend of the input mask and a fixed target: depends on the mask, differentiably."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x[:, 2:3]  # (N, 1, H, W): the foreground channel of the map
        p = (0.1 * m + 0.9 * torch.softmax(self.logits, 0)[1:2][None]).clamp(1e-6, 1 - 1e-6)
        return torch.log(torch.cat([1 - p, p], 1))


def test_estimated_quality_with_the_truth_is_the_exact_dice_by_hand():
    truth = np.zeros((4, 4), np.int64)
    truth[:2, :2] = 1  # 4 foreground pixels
    labels = np.zeros((4, 4), np.int64)
    labels[:2, :3] = 1  # 6 predicted, 4 of them right: Dice = 2*4 / (6 + 4) = 0.8
    est = estimated_quality(one_hot(labels, 2), one_hot(truth, 2), [1], "dice")
    assert est == pytest.approx(0.8)
    assert estimated_quality(one_hot(labels, 2), one_hot(truth, 2), [1], "iou") == pytest.approx(4 / 6)
    # multi-class: mean of per-class Dice, computed by hand
    t3 = np.array([[0, 0, 1, 2]])
    l3 = np.array([[0, 1, 1, 2]])  # class 0: 2*1/(1+2); class 1: 2*1/(2+1); class 2: 1
    est3 = estimated_quality(one_hot(l3, 3), one_hot(t3, 3), [0, 1, 2], "dice")
    assert est3 == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert est3 == pytest.approx(true_quality(l3, t3, [0, 1, 2], "dice"))


def test_the_local_quality_map_integrates_to_the_global_score():
    rng = np.random.default_rng(0)
    p = rng.random((24, 24))
    oracle = FixedOracle(p)
    image = grey_image(disc(24, 7))
    labels = disc(24, 6, (10, 12)).astype(np.int64)
    qmap = oracle.quality_map(image, one_hot(labels, 2))
    # per pixel: the probability the label is right, p on the mask and 1 - p off it
    assert np.allclose(qmap, np.where(labels == 1, p, 1 - p), atol=1e-5)
    assert dice_from_quality_map(qmap, labels == 1) == pytest.approx(
        oracle.score_labels(image, labels), abs=1e-5
    )
    assert predicted_quality(oracle, image, labels) == pytest.approx(oracle.score_labels(image, labels))
    # the mean of the map is the estimated pixel accuracy
    assert qmap.mean() == pytest.approx(np.where(labels == 1, p, 1 - p).mean(), abs=1e-6)


def test_fixed_point_moves_to_the_oracle_and_ascent_improves_the_true_dice():
    truth = disc(32, 9)
    image = grey_image(truth)
    oracle = FixedOracle(np.where(truth, 0.95, 0.05))
    start = one_hot(disc(32, 9, (12, 13)).astype(np.int64), 2)  # shifted
    one = refine_local(oracle, image, start, iterations=1, step=1.0)
    assert np.allclose(one.proba[1], np.where(truth, 0.95, 0.05), atol=1e-5)
    before = true_quality(start.argmax(0), truth.astype(np.int64), [1], "dice")
    follower = MaskFollowingOracle(np.where(truth, 0.95, 0.05))
    ascent = refine_local(follower, image, start, iterations=15, step=2.0, update="ascent")
    after = true_quality(ascent.labels, truth.astype(np.int64), [1], "dice")
    assert before < 0.85 and after > before + 0.1
    assert ascent.estimates[-1] > ascent.estimates[0]
    # the trust region keeps the map nearer the start
    near = refine_local(follower, image, start, iterations=15, step=2.0, update="ascent", prior_weight=1e4)
    assert np.abs(near.proba - start).mean() < np.abs(ascent.proba - start).mean()


def test_tuning_leaves_maps_alone_when_the_oracle_misleads_and_refines_when_it_helps():
    truth = disc(32, 9)
    image = grey_image(truth)
    start = one_hot(disc(32, 9, (12, 13)).astype(np.int64), 2)
    cases = [(image, start, truth.astype(np.int64))]
    good, rows = tune_refinement(FixedOracle(np.where(truth, 0.9, 0.1)), cases)
    assert good["iterations"] > 0 and rows[0]["iterations"] == 0
    liar = FixedOracle(np.where(truth, 0.1, 0.9))  # believes the complement
    bad, _ = tune_refinement(liar, cases)
    assert bad == {"iterations": 0}
    with pytest.raises(UserError):
        tune_refinement(liar, [])


def test_degraded_maps_are_valid_and_cover_a_range_of_qualities():
    truth = disc(48, 14).astype(np.int64)
    rng = np.random.default_rng(0)
    q = [
        true_quality((degraded_map(truth, 2, rng) >= 128).astype(np.int64), truth, [1], "dice")
        for _ in range(40)
    ]
    assert min(q) < 0.5 and max(q) > 0.9
    labels3 = np.zeros((40, 40), np.int64)
    labels3[:, 20:] = 1
    labels3[10:20, 5:15] = 2
    maps = [degraded_map(labels3, 3, np.random.default_rng(s)) for s in range(20)]
    assert all(m.dtype == np.uint8 and m.max() < 3 for m in maps)
    assert any((m != labels3).any() for m in maps)


def test_train_local_oracle_round_trip_and_it_learns(tmp_path: Path):
    torch.manual_seed(0)
    ds = open_dataset(write_folder_dataset(tmp_path / "d", n=8, size=32))
    run = train_local_oracle(
        ds.subset(range(6)),
        val=ds.subset([6, 7]),
        out_dir=tmp_path / "o",
        samples_per_image=16,
        crop=32,
        epochs=10,
        time_budget_s=None,
        base_channels=4,
        depth=2,
        self_rounds=1,
        lr=1e-2,
    )
    # held-out estimated vs true Dice: an untrained oracle gives |r| near 0; trained, 0.81 on this seed
    assert run.val_metrics["n"] == 8 and run.val_metrics["pearson"] > 0.6
    again = load_any_oracle(tmp_path / "o")
    assert isinstance(again, LocalQualityOracle)
    image, labels = ds.load_image(6), ds.load_mask(6)
    assert again.score_labels(image, labels) == pytest.approx(
        run.oracle.score_labels(image, labels), abs=1e-6
    )
    import json

    meta = json.loads((tmp_path / "o" / "oracle.json").read_text())
    assert meta["oracle_kind"] == "local" and set(meta["train_images"]).isdisjoint(ds.subset([6, 7]).stems)
    assert meta["self_rounds"] == 1 and {r["round"] for r in meta["history"]} == {0, 1}


def test_per_image_choice_and_flags():
    assert choose_per_image({"otsu": 0.4, "unet": 0.8, "slic": 0.8}) == "unet"
    assert flag_images({"a": 0.9, "b": 0.2, "c": 0.5}, 2) == [("b", 0.2), ("c", 0.5)]
    with pytest.raises(UserError):
        choose_per_image({})


def test_multiclass_local_oracle_judges_all_classes_in_one_pass(tmp_path: Path):

    root = write_three_class_dataset(tmp_path / "three", 4)
    ds = open_dataset(root)
    torch.manual_seed(0)
    run = train_local_oracle(
        ds.subset([0, 1, 2]),
        val=ds.subset([3]),
        out_dir=tmp_path / "o",
        samples_per_image=16,
        crop=32,
        epochs=30,
        time_budget_s=None,
        base_channels=4,
        depth=2,
        lr=1e-2,
    )
    oracle = run.oracle
    assert oracle.classes == [0, 1, 2]
    losses = [row["val_loss"] for row in run.history]
    assert losses[-1] < 0.5 * losses[0]  # it learns the three classes' truth (0.83 -> 0.11 on this seed)
    image, truth = ds.load_image(3), ds.load_mask(3)
    start = truth.copy()
    start[start == 2] = 0  # class 2 missing
    r = refine_local(oracle, image, one_hot(start, 3), iterations=2, step=1.0)
    assert r.proba.shape == (3, 32, 32) and np.allclose(r.proba.sum(0), 1, atol=1e-5)
    # the score is the mean over the three classes of the counts of one (K, H, W) prediction
    p = oracle.truth_proba(image, one_hot(start, 3))
    assert oracle.score_labels(image, start) == pytest.approx(
        estimated_quality(one_hot(start, 3), p, [0, 1, 2]), abs=1e-6
    )
