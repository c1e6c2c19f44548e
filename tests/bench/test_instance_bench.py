"""bench plans, runs and reports instance methods beside semantic ones on instance data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segscope.bench import BenchPlan, run_bench
from segscope.report import render_bench_report
from tests.architecture.test_contract import write_instance_dataset


def test_an_instance_bench_has_one_leaderboard_per_evaluator(tmp_path: Path):
    data = write_instance_dataset(tmp_path / "leaves", n=6)
    plan = BenchPlan(
        data=str(data),
        methods=["otsu", "watershed_instances"],
        cv="kfold:2",
        workers=1,
        gallery=1,
        time_budget_s=30,
        options={"watershed_instances": {"max_trials": 3}, "otsu": {"max_trials": 2}},
    )
    results = run_bench(plan, tmp_path / "b", progress=False)
    assert not results["errors"], results["errors"]
    boards = {b["task"]: b for b in results["boards"]}
    assert set(boards) == {"semantic", "instance"}
    assert [e["method"] for e in boards["semantic"]["leaderboard"]] == ["otsu"]
    instance = boards["instance"]
    assert instance["primary"] == "mask_ap" and [e["method"] for e in instance["leaderboard"]] == [
        "watershed_instances"
    ]
    entry = instance["leaderboard"][0]
    # two well separated bright discs per image: the method finds both, so AP50 is high and |DiC| small
    assert entry["mask_ap50"] > 0.9 and entry["abs_dic"] < 0.5 and np.isfinite(entry["sbd"])
    cell = results["cells"]["watershed_instances"][0]
    assert {"mask_ap", "sbd", "abs_dic", "rand_error"} <= set(cell["metrics"]) and "iou" not in cell[
        "metrics"
    ]
    html = render_bench_report(tmp_path / "b", results=results).read_text()
    assert "Leaderboard: semantic methods" in html and "Leaderboard: instance methods" in html
    assert "mask_ap" in html and "Per-class IoU" in html  # the semantic method's sections still there


def test_an_instance_method_is_skipped_on_semantic_data_with_the_reason(tmp_path: Path):
    from tests.conftest import write_folder_dataset

    data = write_folder_dataset(tmp_path / "discs", n=4)
    plan = BenchPlan(data=str(data), methods=["otsu", "watershed_instances"], cv="kfold:2", workers=1)
    results = run_bench(plan, tmp_path / "b", progress=False)
    assert "no instance masks" in results["plan"]["skipped"]["watershed_instances"]
    assert [b["task"] for b in results["boards"]] == ["semantic"]
