"""``segscope demo``: a small bench on the bundled ISBI 2012 sample — what ``make demo`` runs."""

from __future__ import annotations

import argparse
from pathlib import Path

DEMO_METHODS = ("otsu", "adaptive_threshold", "watershed", "unet_small")


def sample_path() -> Path:
    """The bundled sample: ten 256x256 crops of the ISBI 2012 EM stack (see its SOURCE.md)."""
    return Path(__file__).resolve().parents[1] / "sample" / "isbi2012_sample"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="benchmark a few methods on the bundled sample",
        description="Fit a few classical methods and a small U-Net on 7 of the 10 bundled ISBI 2012 crops, "
        "score them on the other 3, and write OUT/report.html.",
    )
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--time-budget", type=float, default=90.0, help="U-Net training seconds (default 90)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segscope.bench import BenchPlan, run_bench
    from segscope.factory import list_models
    from segscope.report import render_bench_report

    available = set(list_models())
    methods = [m for m in DEMO_METHODS if m in available]
    plan = BenchPlan(
        data=str(sample_path()),
        methods=methods,
        cv="holdout:0.3",
        time_budget_s=args.time_budget,
        options={
            "unet_small": {
                "augment": "em",
                "crop_size": 128,
                "batch_size": 8,
                "amp": True,
                "lr": 3e-3,
                "epochs": 10_000,
                "samples_per_epoch": 32,
            }
        },
        gallery=3,
        command=f"segscope demo --out {args.out}",
    )
    results = run_bench(plan, args.out, progress=not args.quiet)
    render_bench_report(args.out, results=results)
    print(f"\n{'method':<22}{'pixel error':>13}{'Rand error':>12}{'mean IoU':>10}{'fit s':>8}")
    for e in results["leaderboard"]:
        print(
            f"{e['method']:<22}{e['pixel_error']:>13.4f}{e['rand_error']:>12.4f}{e['mean_iou']:>10.4f}"
            f"{e['fit_seconds']:>8.1f}"
        )
    print(f"\nreport: {Path(args.out).resolve() / 'report.html'}")
    return 0
