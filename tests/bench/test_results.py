"""Aggregation: the paired Wilcoxon tests equal scipy's on the same pairs; mean ± sd over folds."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wilcoxon

from segscope.bench import BenchPlan, collect_results, paired_tests, run_bench
from tests.bench.fake_methods import DARKER, MEAN
from tests.conftest import write_folder_dataset


def test_paired_test_equals_scipy_on_the_same_pairs():
    rng = np.random.default_rng(0)
    keys = [f"fold{i % 3}/img{i}" for i in range(12)]
    best = dict(zip(keys, rng.uniform(0.05, 0.15, 12)))
    worse = {k: best[k] + rng.uniform(-0.02, 0.08) for k in reversed(keys)}  # other order: paired by key
    worse["fold9/only_here"] = 0.5  # not scored by the best method: not a pair
    other = dict(worse)
    other[keys[0]] = float("nan")  # a NaN score drops that pair
    (test,) = paired_tests({"a": best, "b": other}, "pixel_error")
    a = np.array([best[k] for k in keys[1:]])
    b = np.array([worse[k] for k in keys[1:]])
    expected = wilcoxon(a, b)
    assert test["n"] == 11
    assert test["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert test["statistic"] == pytest.approx(expected.statistic)
    assert test["best_wins"] == int(np.sum(a < b)) and test["other_wins"] == int(np.sum(a > b))
    assert test["median_difference"] == pytest.approx(np.median(a - b))


def test_higher_is_better_metrics_count_wins_the_other_way():
    best = {"f/x": 0.9, "f/y": 0.8, "f/z": 0.7}
    other = {"f/x": 0.5, "f/y": 0.85, "f/z": 0.7}
    (test,) = paired_tests({"a": best, "b": other}, "mean_iou")
    assert (test["best_wins"], test["other_wins"], test["ties"]) == (1, 1, 1)
    assert test["p_value"] == pytest.approx(wilcoxon([0.9, 0.8, 0.7], [0.5, 0.85, 0.7]).pvalue)


def test_identical_methods_have_no_p_value():
    same = {"f/x": 0.1, "f/y": 0.2}
    (test,) = paired_tests({"a": same, "b": dict(same)}, "pixel_error")
    assert test["p_value"] is None and test["ties"] == 2
    assert paired_tests({"a": same}, "pixel_error") == []


def test_leaderboard_is_mean_and_sample_sd_over_folds(tmp_path: Path):
    data = write_folder_dataset(tmp_path / "discs", n=6)
    plan = BenchPlan(data=str(data), methods=[DARKER, MEAN], cv="kfold:3", workers=1, gallery=0)
    results = run_bench(plan, tmp_path / "b", progress=False)
    assert [e["method"] for e in results["leaderboard"]] == [MEAN, DARKER]  # ranked by pixel error
    for entry in results["leaderboard"]:
        folds = [
            json.loads((tmp_path / "b" / "cells" / entry["method"] / f"fold{i}" / "result.json").read_text())
            for i in range(3)
        ]
        values = [f["metrics"]["mean_iou"] for f in folds]
        assert entry["mean_iou"] == pytest.approx(np.mean(values))
        assert entry["mean_iou_sd"] == pytest.approx(np.std(values, ddof=1))
        assert entry["fit_seconds"] == pytest.approx(np.mean([f["fit_seconds"] for f in folds]))
    # the paired test of the bench is scipy's on the per-image pixel errors, paired by fold and image
    (test,) = results["paired_tests"]
    pairs = {
        m: {f"{c['fold']}/{r['name']}": r["pixel_error"] for c in results["cells"][m] for r in c["per_image"]}
        for m in (MEAN, DARKER)
    }
    keys = sorted(pairs[MEAN])
    expected = wilcoxon([pairs[MEAN][k] for k in keys], [pairs[DARKER][k] for k in keys])
    assert test["n"] == 6 and test["p_value"] == pytest.approx(expected.pvalue)
    again = collect_results(tmp_path / "b")  # re-reading the cells gives the same aggregate
    assert again["leaderboard"] == results["leaderboard"]
