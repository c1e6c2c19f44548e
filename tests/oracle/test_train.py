"""The oracle network, its run directory, the degraded-mask pool and a tiny training run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from segscope.data import open_dataset
from segscope.errors import UserError
from segscope.oracle import (
    QualityOracle,
    build_samples,
    evaluate_oracle,
    load_oracle,
    save_oracle,
    train_oracle,
)
from segscope.oracle.degrade import soft_dice
from segscope.oracle.evaluate import agreement
from segscope.oracle.network import resize_to
from tests.conftest import shared_dataset, write_folder_dataset
from tests.oracle.helpers import write_three_class_dataset


def test_oracle_outputs_qualities_with_gradients_to_the_mask():
    torch.manual_seed(0)
    oracle = QualityOracle(3, num_targets=2, base_channels=4, depth=2, size=16, classes=[0, 2], num_classes=3)
    x = torch.rand(2, oracle.input_channels, 16, 16, requires_grad=True)
    q = oracle(x)
    assert q.shape == (2,)
    (grad,) = torch.autograd.grad(q.sum(), x)
    assert grad[:, 3].abs().sum() > 0  # the mask channel gets a gradient
    with pytest.raises(ValueError, match="expects"):
        oracle(torch.rand(1, 4, 16, 16))
    with pytest.raises(UserError, match="channel"):
        oracle.prepare_image(np.zeros((8, 8, 1), np.uint8))
    assert oracle.prepare_image(np.zeros((40, 30, 3), np.uint8)).shape == (3, 16, 16)
    with pytest.raises(UserError, match="class 1"):
        oracle.target_index(1)


def test_save_and_load_round_trip(tmp_path: Path):
    torch.manual_seed(0)
    oracle = QualityOracle(1, base_channels=4, depth=2, size=16).eval()
    save_oracle(oracle, tmp_path / "o", {"note": "x"})
    again = load_oracle(tmp_path / "o")
    image, mask = np.random.default_rng(0).integers(0, 255, (20, 24, 1), dtype=np.uint8), np.ones((20, 24))
    assert again.score(image, mask) == pytest.approx(oracle.score(image, mask), abs=1e-6)
    with pytest.raises(UserError, match="not an oracle run"):
        load_oracle(tmp_path)


def test_agreement_by_hand():
    got = agreement(np.array([0.1, 0.2, 0.4]), np.array([0.2, 0.4, 0.8]))
    assert got["pearson"] == pytest.approx(1.0) and got["spearman"] == pytest.approx(1.0)
    assert got["mae"] == pytest.approx((0.1 + 0.2 + 0.4) / 3)
    rng = np.random.default_rng(0)
    p, t = rng.random(20), rng.random(20)
    assert agreement(p, t)["spearman"] == pytest.approx(stats.spearmanr(p, t)[0])


def test_sample_pool_is_seeded_and_labelled_with_qualities_in_range(tmp_path: Path):
    ds = open_dataset(write_folder_dataset(tmp_path / "d", n=3, size=40))
    pool = build_samples(ds, classes=[1], size=16, samples_per_image=10, seed=3, progress=False)
    again = build_samples(ds, classes=[1], size=16, samples_per_image=10, seed=3, progress=False)
    assert len(pool) == 30
    assert torch.equal(pool.quality, again.quality) and torch.equal(pool.masks, again.masks)
    assert pool.quality.std() > 0.1
    # each label is the quality of the mask it is stored with: the Dice of the stored (16 x 16) mask with
    # the truth resized alike tracks it closely (the label is measured at full resolution)
    redone = []
    for i in range(len(pool)):
        truth = torch.from_numpy((ds.load_mask(int(pool.image_index[i])) == 1).astype(np.float32))
        small = resize_to(truth[None, None], 16)[0, 0].numpy()
        redone.append(soft_dice(pool.masks[i].numpy() / 255.0, small))
    assert np.corrcoef(redone, pool.quality.numpy())[0, 1] > 0.95
    assert np.abs(np.array(redone) - pool.quality.numpy()).mean() < 0.1
    x, q = pool[0]
    assert x.shape == (2, 16, 16) and float(q) == float(pool.quality[0])
    with pytest.raises(UserError, match="classes"):
        build_samples(ds, classes=[2], size=16, progress=False)


def test_train_oracle_writes_a_run_and_learns_something(tmp_path: Path):
    ds = open_dataset(write_folder_dataset(tmp_path / "d", n=6, size=40))
    run = train_oracle(
        ds.subset([0, 1, 2, 3]),
        val=ds.subset([4, 5]),
        out_dir=tmp_path / "oracle",
        size=16,
        samples_per_image=24,
        epochs=4,
        base_channels=4,
        depth=2,
        progress=False,
    )
    for name in ("oracle.safetensors", "oracle.json", "best.safetensors", "log.csv"):
        assert (run.run_dir / name).is_file(), name
    assert set(run.val_metrics) >= {"pearson", "spearman", "mae", "rmse"}
    assert run.val_metrics["pearson"] > 0.3  # better than chance after a few epochs
    again = load_oracle(run.run_dir)
    result = evaluate_oracle(again, ds.subset([4, 5]), samples_per_image=8)
    assert result["n"] == 16
    # recomputed by hand: the same fresh degradations (seed 1, no augmentation), one forward pass
    fresh = build_samples(
        ds.subset([4, 5]), classes=[1], size=16, samples_per_image=8, seed=1, augment=False, progress=False
    )
    with torch.no_grad():
        predicted = again.eval()(torch.stack([fresh[i][0] for i in range(len(fresh))])).numpy()
    true = fresh.quality.numpy()
    assert result["mae"] == pytest.approx(np.abs(predicted - true).mean(), abs=1e-5)
    assert result["pearson"] == pytest.approx(np.corrcoef(predicted, true)[0, 1], abs=1e-5)
    assert again.classes == [1] and again.quality == "dice"


@pytest.mark.slow
def test_isbi_oracle_ranks_held_out_masks(tmp_path: Path):
    ds = open_dataset(shared_dataset("isbi2012"))
    run = train_oracle(
        ds.subset(range(8)),
        val=ds.subset([28, 29]),
        out_dir=tmp_path / "o",
        classes=[0],
        samples_per_image=24,
        epochs=3,
        progress=False,
    )
    assert run.val_metrics["spearman"] > 0.5


def test_multiclass_oracle_is_one_vs_rest_and_refines_every_class(tmp_path: Path):

    from segscope.oracle import refine_classes, refine_proba

    root = write_three_class_dataset(tmp_path / "three", 3)
    ds = open_dataset(root)
    assert ds.num_classes == 3
    run = train_oracle(
        ds,
        out_dir=tmp_path / "o",
        size=16,
        samples_per_image=12,
        epochs=1,
        base_channels=4,
        depth=2,
        progress=False,
    )
    oracle = run.oracle
    assert oracle.classes == [0, 1, 2] and oracle.input_channels == 1 + 1 + 3
    image, labels = ds[0]
    proba = np.eye(3, dtype=np.float32)[labels].transpose(2, 0, 1)
    out = refine_proba(oracle, image, proba, iterations=3)
    assert out.shape == (3, 32, 32)
    # each class is refined on its own (one-vs-rest) and the map renormalised
    _, details = refine_classes(oracle, image, proba, iterations=3)
    assert sorted(details) == [0, 1, 2]
    raw = np.stack([details[c].mask for c in range(3)])
    np.testing.assert_allclose(out, raw / raw.sum(0, keepdims=True), atol=1e-6)
    assert all(np.abs(raw[c] - proba[c]).max() > 0.01 for c in range(3))  # every class did move
    # 3 steps of at most 0.1 cannot lift a 0 above a 1: the argmax is still the labels
    np.testing.assert_array_equal(out.argmax(0), labels)


def test_hard_negative_round_adds_ascent_masks_and_trains_again(tmp_path: Path):
    ds = open_dataset(write_folder_dataset(tmp_path / "d", n=3, size=32))
    common = {
        "size": 16,
        "samples_per_image": 8,
        "epochs": 1,
        "base_channels": 4,
        "depth": 2,
        "progress": False,
    }
    run = train_oracle(
        ds, out_dir=tmp_path / "o", hard_negative_rounds=1, hard_negatives_per_image=4, **common
    )
    assert [row.get("round", 0) for row in run.history] == [0, 1]
    meta = json.loads((run.run_dir / "oracle.json").read_text())
    assert meta["samples"] == 3 * 8 + 3 * 4 and meta["hard_negative_rounds"] == 1
