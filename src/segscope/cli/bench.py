"""``segscope bench``: run many methods under one protocol and write the comparison report."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from segscope.cli.common import parse_duration, parse_value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="compare many methods on one dataset",
        description="Fit every method on the same training folds, score it on the same test images with the "
        "same metrics, and write BENCH_DIR/report.html (leaderboard, per-class IoU, confusion matrices, "
        "learning curves, gallery, paired tests) plus results.json and leaderboard.csv. Resumable.",
    )
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder")
    p.add_argument("--format", default="auto", help="dataset layout (default: detect)")
    p.add_argument(
        "--methods",
        default="default",
        help="comma-separated names, or default, all-semantic, all-instance, all-classical",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--cv", default=None, help="kfold:K, group-kfold:K, loo, lpo:P or holdout:F (default kfold:5)"
    )
    group.add_argument("--split", help="TRAIN/TEST split names of the dataset, e.g. train/val")
    p.add_argument(
        "--time-budget-per-method",
        type=parse_duration,
        default=600.0,
        metavar="DURATION",
        help="fit budget per method and fold (e.g. 90s, 10m; default 10m)",
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
        "--holdout", type=float, default=0.0, help="fraction of each training part kept for validation"
    )
    p.add_argument("--workers", type=int, default=0, help="processes for classical methods (default: cores)")
    p.add_argument("--gallery", type=int, default=4, help="test images shown for every method")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="BENCH_DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def method_options(pairs: list[str]) -> dict[str, dict]:
    from segscope.errors import UserError

    out: dict[str, dict] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not method or not name:
            raise UserError(f"option {pair!r} is not of the form METHOD.KEY=VALUE")
        out.setdefault(method, {})[name.replace("-", "_")] = parse_value(value)
    return out


def run(args: argparse.Namespace) -> int:
    from segscope.bench import BenchPlan, run_bench
    from segscope.bench.runner import expand_methods
    from segscope.data import open_dataset

    probe = open_dataset(args.data, args.split.split("/")[0] if args.split else None, format=args.format)
    plan = BenchPlan(
        data=str(Path(args.data).resolve()),
        methods=expand_methods(args.methods, probe.num_classes),
        cv=None if args.split else (args.cv or "kfold:5"),
        split=args.split,
        format=args.format,
        time_budget_s=args.time_budget_per_method,
        options=method_options(args.option),
        holdout=args.holdout,
        gallery=args.gallery,
        workers=args.workers,
        seed=args.seed,
        command="segscope " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    results = run_bench(plan, args.out, progress=not args.quiet)
    keys = results["metric_keys"]
    print(f"\n{'method':<22}" + "".join(f"{k:>22}" for k in keys) + f"{'fit s':>9}")
    for e in results["leaderboard"]:
        print(
            f"{e['method']:<22}"
            + "".join(f"{e[k]:>13.4f} ± {e[k + '_sd']:.4f}" for k in keys)
            + f"{e['fit_seconds']:>9.1f}"
        )
    for m, msgs in results["errors"].items():
        print(f"{m}: failed on {len(msgs)} fold(s): {msgs[0]}")
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0
