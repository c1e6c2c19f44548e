"""The bench with a per-fold quality oracle: label-free quality per image, oracle-select, flags, leak guards.

Every check reads the files the bench wrote (splits.json, oracles/<fold>/oracle.json, the cells'
result.json) and recomputes the summary by hand, rather than asking the code that wrote them.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import rankdata

from segscope.bench import BenchPlan, run_bench
from segscope.bench.cell import GALLERY, read_labels
from segscope.bench.oracle import OracleLeakError, check_fold_oracle
from segscope.cli import bench as bench_cli
from segscope.data import open_dataset
from segscope.data.splits import load_splits
from segscope.errors import UserError
from segscope.oracle.quality import fit_oracle, load_any_oracle, predicted_quality
from segscope.report import render_bench_report
from tests.bench.fake_methods import DARKER, LEVELS, MEAN, fits
from tests.conftest import write_folder_dataset

SMALL = {"samples_per_image": 4, "base_channels": 4, "depth": 2, "size": 32}  # a seconds-long oracle
METHODS = [MEAN, DARKER, LEVELS]
FOLD_ORACLE_HINT = "use --oracle for a per-fold oracle or an oracle trained on other data"


def _leak(oracle_dir: Path, fold: str) -> str:
    return (
        f"UserError: refine_oracle={oracle_dir} was trained on 4 test images of fold {fold}: "
        + FOLD_ORACLE_HINT
    )


def _plan(data: Path, **kw) -> BenchPlan:
    kw = {"cv": "kfold:2", "workers": 1, "gallery": 2, "time_budget_s": 10.0, **kw}
    return BenchPlan(data=str(data), **kw)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """8 disc images, kfold:2, three methods (one refined with its fold's oracle), a global oracle per fold;
    classical cells in two worker processes, which load the oracle themselves."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("oracle_bench")
    data = write_folder_dataset(root / "discs", n=8)
    plan = _plan(
        data,
        methods=METHODS,
        workers=2,
        oracle="global",
        oracle_budget_s=0.5,
        oracle_options=SMALL,
        options={MEAN: {"refine_oracle": "fold", "refine_iterations": 2}},
    )
    out = root / "bench"
    results = run_bench(plan, out, progress=False)
    return data, out, plan, results


def _cells(out: Path) -> dict[str, dict[str, dict]]:
    """method -> fold -> result.json, read from disk."""
    return {
        m: {
            p.parent.name: json.loads(p.read_text())
            for p in sorted((out / "cells" / m).glob("*/result.json"))
        }
        for m in METHODS
    }


def _fold_stems(data: Path, out: Path) -> dict[str, tuple[list[str], list[str]]]:
    stems = sorted(p.stem for p in (data / "images").iterdir())
    saved = load_splits(out / "splits.json")
    return {s.name: ([stems[i] for i in s.train], [stems[i] for i in s.test]) for s in saved.splits}


def test_every_test_image_gets_a_quality_from_an_oracle_that_never_saw_it(bench):
    data, out, _, results = bench
    assert not results["errors"]
    cells = _cells(out)
    folds = _fold_stems(data, out)
    recorded = json.loads((out / "bench.json").read_text())["oracles"]
    assert sorted(recorded) == sorted(folds) == ["fold0", "fold1"]
    for fold, (train, test) in folds.items():
        meta = json.loads((out / "oracles" / fold / "oracle.json").read_text())
        seen = meta["train_images"] + meta["val_images"]
        assert seen and not set(seen) & set(test) and set(seen) <= set(train)
        assert recorded[fold]["train_images"] == len(seen) == 4
        assert Path(recorded[fold]["dir"]) == out / "oracles" / fold
        oracle = load_any_oracle(out / "oracles" / fold)
        ds = open_dataset(str(data), None)
        for m in METHODS:
            rows = cells[m][fold]["per_image"]
            assert [r["name"] for r in rows] == test
            assert all(0.0 <= r["predicted_quality"] <= 1.0 for r in rows)
            # the stored value is the fold oracle's score of the label map the method predicted
            for stem in (p.stem for p in (out / "cells" / m / fold / GALLERY).glob("*.png")):
                labels = read_labels(out / "cells" / m / fold / GALLERY / f"{stem}.png")
                image = ds.load_image(ds.stems.index(stem))
                row = next(r for r in rows if r["name"] == stem)
                assert row["predicted_quality"] == pytest.approx(
                    predicted_quality(oracle, image, labels), abs=1e-5
                )


def test_refine_oracle_fold_refines_with_the_cells_own_fold_oracle(bench):
    _, out, _, _ = bench
    for fold in ("fold0", "fold1"):
        saved = (out / "cells" / MEAN / fold / "segmenter.json").read_text()
        assert str(out / "oracles" / fold) in saved
        other = "fold1" if fold == "fold0" else "fold0"
        assert str(out / "oracles" / other) not in saved


def test_oracle_select_takes_each_images_best_predicted_method(bench):
    _, out, _, results = bench
    cells = _cells(out)
    oracle = results["oracle"]
    order = [e["method"] for e in results["leaderboard"]]  # ties go to the better-ranked method
    assert sorted(order) == sorted(METHODS) and oracle["metric"] == "foreground_dice"
    rows = {m: {f"{f}/{r['name']}": r for f, c in cells[m].items() for r in c["per_image"]} for m in order}
    expected, best_q = {}, {}
    for key in rows[order[0]]:
        qualities = [rows[m][key]["predicted_quality"] for m in order]
        expected[key] = order[int(np.argmax(qualities))]
        best_q[key] = max(qualities)
    assert oracle["choices"] == expected
    assert oracle["choice_counts"] == {m: list(expected.values()).count(m) for m in order}
    # the row: per fold the mean of the chosen methods' per-image values, then the mean over folds
    for key in ("pixel_error", "foreground_dice"):
        per_fold = [
            np.nanmean([rows[m][k][key] for k, m in expected.items() if k.startswith(f"{fold}/")])
            for fold in ("fold0", "fold1")
        ]
        assert oracle["select"][key] == pytest.approx(np.mean(per_fold))
        assert oracle["select"][f"{key}_sd"] == pytest.approx(np.std(per_fold, ddof=1))
    dice = {m: np.mean([rows[m][k]["foreground_dice"] for k in expected]) for m in order}
    chosen = np.mean([rows[m][k]["foreground_dice"] for k, m in expected.items()])
    best = max(dice, key=dice.get)
    assert oracle["gain"]["best_single"] == best and oracle["gain"]["n"] == 8
    assert oracle["gain"]["value"] == pytest.approx(chosen - dice[best])
    # flags: every image, lowest best predicted quality first
    flags = [(f"{f['fold']}/{f['image']}", f["best_quality"], f["method"]) for f in oracle["flags"]]
    assert [k for k, _, _ in flags] == sorted(best_q, key=lambda k: (best_q[k], k))
    assert all(q == pytest.approx(best_q[k]) and m == expected[k] for k, q, m in flags)
    csv = (out / "leaderboard.csv").read_text().splitlines()
    assert csv[-1].startswith("oracle-select,2,0,")


def test_correlations_match_a_hand_computation(bench):
    _, out, _, results = bench
    cells = _cells(out)
    for m in METHODS:
        pairs = [
            (r["predicted_quality"], r["foreground_dice"]) for c in cells[m].values() for r in c["per_image"]
        ]
        x, y = np.array(pairs).T
        stats = results["oracle"]["correlation"][m]
        assert stats["n"] == 8
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            assert stats["pearson"] is None
            continue
        assert stats["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1])
        assert stats["spearman"] == pytest.approx(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def test_the_report_has_the_oracle_section(bench):
    _, out, _, results = bench
    html = render_bench_report(out, results=results).read_text()
    assert "<h2>Label-free quality (oracle)</h2>" in html and "Look here first" in html
    oracle_table = re.search(r"<table id='oracle'>(.*?)</table>", html, re.S).group(1)
    assert oracle_table.count("<tr>") == 1 + len(METHODS) + 1  # header, methods, oracle-select
    flags = re.search(r"<table id='flags'>(.*?)</table>", html, re.S).group(1)
    first = results["oracle"]["flags"][0]
    assert flags.count("<tr>") == 1 + 8 and f"<td class='text'>{first['image']}</td>" in flags
    board = re.search(r"<table class='sortable' id='leaderboard'>(.*?)</table>", html, re.S).group(1)
    assert "<td class='text'>oracle-select</td>" in board
    assert "predicted quality against true foreground_dice" in html


def test_a_resume_reuses_the_oracles_and_a_changed_oracle_setting_is_refused(bench):
    _, out, plan, _ = bench
    stamp = (out / "oracles" / "fold0" / "oracle.json").stat().st_mtime_ns
    run_bench(plan, out, progress=False)
    assert (out / "oracles" / "fold0" / "oracle.json").stat().st_mtime_ns == stamp
    assert fits(out / "cells" / DARKER / "fold0") == 1
    for change in ({"oracle": None}, {"oracle_budget_s": 5.0}):
        with pytest.raises(UserError, match="this bench was run with oracle"):
            run_bench(BenchPlan(**{**plan.__dict__, **change}), out, progress=False)


def test_refine_oracle_trained_on_test_images_fails_its_cells(bench, tmp_path):
    data, out, _, _ = bench
    everything = tmp_path / "oracle_all"
    fit_oracle(open_dataset(str(data), None), everything, kind="global", time_budget_s=0.3, **SMALL)
    train, test = _fold_stems(data, out)["fold0"]
    with pytest.raises(
        OracleLeakError, match="trained on 4 test image"
    ):  # the bench's own by-construction check
        check_fold_oracle(everything, "fold0", train, test)
    fold0 = out / "oracles" / "fold0"  # trained on fold0's training part = fold1's test part (kfold:2)
    options = {
        MEAN: {"refine_oracle": str(everything)},
        DARKER: {"refine_oracle": "fold"},
        LEVELS: {"refine_oracle": str(fold0), "refine_iterations": 1},
    }
    results = run_bench(_plan(data, methods=METHODS, options=options), tmp_path / "b", progress=False)
    messages = {m: [(e["fold"], e["message"]) for e in rows] for m, rows in results["errors"].items()}
    assert messages[MEAN] == [(f, _leak(everything, f)) for f in ("fold0", "fold1")]
    assert [m for _, m in messages[DARKER]] == [
        "UserError: refine_oracle=fold refines with the bench's per-fold oracle: add --oracle"
    ] * 2
    # an oracle that saw none of a fold's test images is fine there
    assert messages[LEVELS] == [("fold1", _leak(fold0, "fold1"))]
    assert [c["fold"] for c in results["cells"][LEVELS]] == ["fold0"]
    assert "oracle" not in results


def test_cli_oracle_flags_reach_the_plan_and_the_recorded_command(bench):
    _, out, plan, _ = bench
    parser = argparse.ArgumentParser(prog="segscope")
    bench_cli.add_parser(parser.add_subparsers())
    command = bench_cli.command_line(plan, str(out))
    assert "--oracle global --oracle-budget 0.5s" in command
    args = parser.parse_args(shlex.split(command)[1:])
    assert (args.oracle, args.oracle_budget) == ("global", 0.5)
    assert bench_cli.parse_options(args.oracle_option) == SMALL
    args = parser.parse_args(
        ["bench", "--data", "d", "--out", "o", "--oracle", "local", "--oracle-budget", "2m"]
    )
    assert (args.oracle, args.oracle_budget, args.oracle_option) == ("local", 120.0, [])
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--data", "d", "--out", "o", "--oracle", "best"])
