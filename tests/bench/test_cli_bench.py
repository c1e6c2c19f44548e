"""``segscope bench`` via its own parser: runs, prints the leaderboard, refuses bad options in one line."""

import argparse
import shlex
from pathlib import Path

import pytest

from segscope.cli import bench as bench_cli
from segscope.errors import UserError
from tests.bench.fake_methods import BROKEN, DARKER, MEAN
from tests.conftest import write_folder_dataset


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="segscope")
    bench_cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


def test_bench_command_runs_and_prints_the_leaderboard(tmp_path: Path, capsys):
    data = write_folder_dataset(tmp_path / "discs", n=6)
    out = tmp_path / "bench"
    argv = ["--data", str(data), "--methods", f"{MEAN},{DARKER},{BROKEN}", "--cv", "kfold:2"]
    argv += ["--time-budget-per-method", "1m", "-o", f"{MEAN}.offset=2", "--workers", "1"]
    args = _args(*argv, "--gallery", "1", "--out", str(out), "--quiet")
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].split()[:2] == ["method", "pixel_error"]
    assert [line.split()[0] for line in lines[1:3]] == [MEAN, DARKER]
    assert f"{BROKEN}: failed on 2 fold(s): RuntimeError: this method always fails" in printed
    assert f"report: {out / 'report.html'}" in printed
    plan = (out / "bench.json").read_text()
    assert '"time_budget_s": 60.0' in plan and '"offset": 2' in plan
    # the recorded command reruns the same bench: parsing it gives the same plan, and resumes
    import json

    command = json.loads(plan)["command"]
    again = _args(*shlex.split(command)[2:], "--quiet")
    assert (again.methods, again.cv, again.option, again.out) == (
        f"{MEAN},{DARKER},{BROKEN}",
        "kfold:2",
        [f"{MEAN}.offset=2"],
        str(out),
    )
    assert again.func(again) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cv", "kfold:9"], "need 2 <= K <= 6"),
        (["-o", "nodot=1"], "is not of the form METHOD.KEY=VALUE"),
        (["-o", "unet.depth=2"], "--option for unet, which is not among --methods"),
        (["--holdout", "1.5"], "--holdout must be in"),
        (["--primary", "dice"], "--primary dice: choose one of"),
        (["--split", "train"], "expected TRAIN/TEST"),
    ],
)
def test_bad_options_raise_one_line_user_errors(tmp_path: Path, argv, message):
    data = write_folder_dataset(tmp_path / "discs", n=6)
    args = _args("--data", str(data), "--methods", MEAN, *argv, "--out", str(tmp_path / "b"), "--quiet")
    with pytest.raises(UserError, match=message) as err:
        args.func(args)
    assert "\n" not in str(err.value)


def test_unknown_method_names_the_close_match(tmp_path: Path):
    data = write_folder_dataset(tmp_path / "discs", n=4)
    args = _args("--data", str(data), "--methods", "otsuu", "--out", str(tmp_path / "b"))
    with pytest.raises(UserError, match="did you mean otsu"):
        args.func(args)
