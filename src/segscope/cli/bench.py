"""``segscope bench``: run many methods under one protocol and write the comparison report."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import textwrap
from pathlib import Path
from typing import Any

from segscope.cli.common import (
    add_volume_arguments,
    parse_duration,
    parse_options,
    parse_value,
    volume_options,
)
from segscope.errors import UserError

EXAMPLES = """examples:
  segscope bench --data isbi2012/ --methods otsu,watershed,unet --cv kfold:5 --out bench_isbi
  segscope bench --data camvid/ --split train/val --time-budget-per-method 20m \\
      -o unet.base_channels=16 --out bench_camvid
  segscope bench --data cells/ --methods all-classical --cv loo --out bench_cells
  segscope bench --data cells/ --methods otsu,slic --oracle local --oracle-budget 2m --out bench_q

Run the same command again to resume: finished cells are kept, failed ones retried."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Create the ``bench`` sub-command."""
    from segscope.data import FORMATS

    p = sub.add_parser(
        "bench",
        help="compare many methods on one dataset under one protocol",
        description=textwrap.fill(
            "Fit every method on the same training folds, score it on the same test images with the same "
            "metrics, and write BENCH_DIR/report.html (leaderboard, paired tests, per-class IoU, confusion "
            "matrices, learning curves, gallery) plus results.json and leaderboard.csv. Resumable: "
            "finished cells (method x fold) are not run again.",
            width=88,
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder")
    p.add_argument("--format", default="auto", choices=FORMATS, help="dataset layout (default: detect)")
    add_volume_arguments(p)
    p.add_argument(
        "--methods",
        default="default",
        help="comma-separated method names (see `segscope models`), or default, all-semantic, "
        "all-instance, all-classical (default: a few classical methods and a U-Net)",
    )
    scheme = p.add_mutually_exclusive_group()
    scheme.add_argument(
        "--cv",
        default=None,
        metavar="SPEC",
        help="kfold:K, group-kfold:K, loo, lpo:P or holdout:F over the dataset (default kfold:5)",
    )
    scheme.add_argument(
        "--split",
        metavar="TRAIN/TEST",
        help="fit on one of the dataset's own splits and test on another, e.g. train/val",
    )
    p.add_argument(
        "--time-budget-per-method",
        type=parse_duration,
        default=600.0,
        metavar="DURATION",
        help="fit budget per method and fold, e.g. 90s, 10m, 1h (default 10m)",
    )
    p.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="METHOD.KEY=VALUE",
        help="an option for one method, e.g. unet.base_channels=16 (repeatable)",
    )
    p.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        metavar="F",
        help="fraction of each training part given to fit() as validation set (seeded, the same for "
        "every method; default 0: none)",
    )
    p.add_argument(
        "--workers", type=int, default=0, help="processes for classical cells (default: one per core)"
    )
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads for deep cells (default: one per core)"
    )
    p.add_argument("--gallery", type=int, default=4, help="test images shown for every method (default 4)")
    p.add_argument(
        "--primary",
        default=None,
        metavar="METRIC",
        help="metric that ranks methods and is tested (default: pixel_error if binary, else mean_iou)",
    )
    p.add_argument(
        "--oracle",
        choices=("local", "global"),
        default=None,
        help="train a quality oracle of this kind per fold, on its training part only, and report each "
        "method's label-free predicted quality per test image, a per-image method choice (oracle-select) "
        "and the images to look at first; -o METHOD.refine_oracle=fold refines with it",
    )
    p.add_argument(
        "--oracle-budget",
        type=parse_duration,
        default=120.0,
        metavar="DURATION",
        help="training budget of each fold's oracle, e.g. 90s, 2m (default 2m)",
    )
    p.add_argument(
        "--oracle-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the oracle's training, e.g. samples_per_image=16 (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the splits and hold-out (default 0)")
    p.add_argument("--out", required=True, metavar="BENCH_DIR", help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def method_options(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """``["unet.base_channels=16"]`` -> ``{"unet": {"base_channels": 16}}``."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        method, dot, name = key.strip().partition(".")
        if not sep or not dot or not method or not name:
            raise UserError(f"--option {pair!r} is not of the form METHOD.KEY=VALUE")
        out.setdefault(method, {})[name.replace("-", "_")] = parse_value(value)
    return out


def run(args: argparse.Namespace) -> int:
    """Run the bench and print the leaderboard."""
    from segscope.bench import BenchPlan, expand_methods, run_bench
    from segscope.data import open_dataset
    from segscope.data.splits import parse_split_spec
    from segscope.report import render_bench_report

    probe = open_dataset(
        args.data,
        parse_split_spec(args.split)[0] if args.split else None,
        format=args.format,
        **volume_options(args),
    )
    plan = BenchPlan(
        data=args.data,
        methods=expand_methods(args.methods, probe.num_classes),
        cv=None if args.split else (args.cv or "kfold:5"),
        split=args.split,
        format=args.format,
        time_budget_s=args.time_budget_per_method,
        options=method_options(args.option),
        holdout=args.holdout,
        gallery=args.gallery,
        workers=args.workers,
        threads=args.threads,
        seed=args.seed,
        command="",
        primary=args.primary,
        oracle=args.oracle,
        oracle_budget_s=args.oracle_budget,
        oracle_options=parse_options(args.oracle_option),
        **volume_options(args),
    )
    plan.command = command_line(plan, args.out)
    results = run_bench(plan, args.out, progress=not args.quiet)
    render_bench_report(args.out, results=results)
    boards = [b for b in results["boards"] if b["leaderboard"]] or results["boards"][:1]
    for board in boards:
        if len(boards) > 1:
            print(f"\n{board['task']} methods:")
        print(leaderboard_text({**results, **board}))
    if results.get("oracle"):
        print(oracle_text(results))
    for method, rows in results["errors"].items():
        print(f"{method}: failed on {len(rows)} fold(s): {rows[0]['message']}")
    for method, why in results["plan"].get("skipped", {}).items():
        print(f"{method}: skipped ({why})")
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0


def command_line(plan: Any, out: str) -> str:
    """The ``segscope bench`` command that reruns ``plan`` exactly, every default spelled out."""
    words = ["segscope", "bench", "--data", plan.data, "--format", plan.format]
    words += ["--spacing", ",".join(f"{v:g}" for v in plan.spacing)] if plan.spacing else []
    words += ["--blocks", str(plan.blocks)] if plan.blocks else []
    words += ["--methods", ",".join(plan.methods)]
    words += ["--split", plan.split] if plan.split else ["--cv", plan.cv or "kfold:5"]
    words += ["--time-budget-per-method", f"{plan.time_budget_s:g}s"]
    for method, options in plan.options.items():
        for key, value in options.items():
            text = value if isinstance(value, str) else json.dumps(value)
            words += ["-o", f"{method}.{key}={text}"]
    words += ["--holdout", f"{plan.holdout:g}", "--seed", str(plan.seed), "--gallery", str(plan.gallery)]
    words += ["--workers", str(plan.workers), "--threads", str(plan.threads)]
    words += ["--primary", plan.primary] if plan.primary else []
    if plan.oracle:
        words += ["--oracle", plan.oracle, "--oracle-budget", f"{plan.oracle_budget_s:g}s"]
        for key, value in plan.oracle_options.items():
            words += ["--oracle-option", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    words += ["--out", str(out)]
    return " ".join(shlex.quote(w) for w in words)


def leaderboard_text(results: dict[str, Any]) -> str:
    """The leaderboard as a plain-text table (mean ± sd over folds)."""
    keys = results["metric_keys"]
    lines = [f"{'method':<22}" + "".join(f"{k:>24}" for k in keys) + f"{'fit s':>9}{'s/image':>9}"]
    for e in results["leaderboard"]:
        cells = []
        for k in keys:
            sd = e[f"{k}_sd"]
            cells.append(f"{e[k]:>14.4f}" + (f" ± {sd:.4f}" if math.isfinite(sd) else " " * 9) + " ")
        lines.append(
            f"{e['method']:<22}" + "".join(cells) + f"{e['fit_seconds']:>9.1f}{e['seconds_per_image']:>9.3f}"
        )
    return "\n".join(lines)


def oracle_text(results: dict[str, Any]) -> str:
    """Two lines on the oracle: the per-image choice's primary metric and its gain over the best method."""
    oracle, primary = results["oracle"], results["primary"]
    gain, metric = oracle["gain"], oracle["metric"]
    line = f"{'oracle-select':<22}{primary} {oracle['select'][primary]:.4f} (mean of per-image values)"
    if gain["best_single"] is None:
        return line
    return (
        f"{line}\n{'':<22}{metric} {gain['value']:+.4f} over the best single method "
        f"({gain['best_single']}) on {gain['n']} images"
    )
