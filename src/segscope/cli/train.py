"""``segscope train``: fit any registered method (deep or classical) on a dataset."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from segscope.cli.common import add_data_arguments, parse_duration, parse_options, volume_options
from segscope.data.dataset import SegmentationDataset
from segscope.errors import UserError
from segscope.io import write_json_atomic

# Flags that set an option of the same name (``--early-stopping`` sets ``early_stopping_patience``); the
# factory sorts options into the run config's sections (segscope.factory.split_options).
OPTION_FLAGS = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "schedule",
    "loss",
    "class_weights",
    "sampler",
    "crop_max_ratio",
    "freeze_encoder_epochs",
    "encoder_lr_scale",
    "augment",
    "crop_size",
    "resize",
    "early_stopping",
    "seed",
    "accumulate",
    "device",
    "num_workers",
    "decision",
    "cost_matrix",
    "pretrained",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train or tune a method on a dataset",
        description="Train a deep model (or tune a classical method) and write a run directory with "
        "weights (safetensors), config, logs, metrics.json and report.html.",
    )
    add_data_arguments(p)
    p.add_argument(
        "--model", "--method", dest="model", required=True, help="registered name (see `segscope models`)"
    )
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    p.add_argument("--val-split", help="validation split (default: 'val' if the dataset has one)")
    p.add_argument(
        "--val-fraction", type=float, default=0.2, help="held-out fraction when there is no val split"
    )
    p.add_argument("--time-budget", type=parse_duration, help="stop training after this long (e.g. 10m)")
    p.add_argument("--config", metavar="FILE", help="YAML file of training options (flags override it)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=("adamw", "sgd"))
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=("poly", "onecycle", "constant"))
    p.add_argument(
        "--loss",
        help="loss spec: terms joined by +, e.g. ce, ce+dice, ohem:thresh=0.7+lovasz (docs/losses.md)",
    )
    p.add_argument("--class-weights", choices=("inverse", "median_freq", "enet"))
    p.add_argument(
        "--sampler", metavar="SPEC", help="training sampler: uniform, repeat_factor[:t=0.3], class_balanced"
    )
    p.add_argument(
        "--crop-max-ratio",
        type=float,
        metavar="R",
        help="redraw random crops whose largest class covers more than R of the crop (needs --crop-size)",
    )
    p.add_argument(
        "--decision",
        metavar="RULE",
        help="logits -> labels: argmax (default), prior[:tau=T], bias, threshold[:metric=f1], cost",
    )
    p.add_argument(
        "--cost-matrix", metavar="FILE", help="JSON/YAML K x K matrix C[true][pred] for --decision cost"
    )
    p.add_argument(
        "--pretrained",
        metavar="WEIGHTS",
        help="encoder weights: a torchvision weights name, a .pth/.safetensors file or a segscope run dir",
    )
    p.add_argument(
        "--freeze-encoder-epochs", type=int, metavar="N", help="train the decoder only for N epochs"
    )
    p.add_argument(
        "--encoder-lr-scale", type=float, metavar="S", help="encoder learning rate = S x --lr (e.g. 0.1)"
    )
    p.add_argument(
        "--cv",
        metavar="SPEC",
        help="cross-validate instead: kfold:K, group-kfold:K, loo, lpo:P or holdout:F; one run per fold "
        "under --out, splits saved and reused, results as mean ± sd with per-fold rows",
    )
    p.add_argument("--augment", choices=("none", "light", "strong", "em"))
    p.add_argument("--crop-size", help="random training crop HxW (e.g. 256x256)")
    p.add_argument("--resize", help="resize every image to HxW for training and inference")
    p.add_argument(
        "--early-stopping",
        type=int,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without improvement",
    )
    p.add_argument("--accumulate", type=int, help="gradient accumulation steps")
    p.add_argument("--amp", action="store_true", default=None, help="bf16 autocast on CPU / AMP on CUDA")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda or auto")
    p.add_argument("--num-workers", type=int)
    p.add_argument(
        "--option", "-o", action="append", metavar="KEY=VALUE", help="model/method option (repeatable)"
    )
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def collect_options(args: argparse.Namespace) -> dict:
    """Method options from --config, then flags, then --option (later wins).

    A YAML config holds flat options (``epochs: 20``, ``base_channels: 16``, ``decision: prior``) and/or
    whole sections (``model:``, ``train:``, ``decision:``, ``stages:``), as ``segmenter.json`` does."""
    options: dict = {}
    if args.config:
        options.update(read_config_file(Path(args.config)))
    for flag in OPTION_FLAGS:
        value = getattr(args, flag, None)
        if value is not None:
            options["early_stopping_patience" if flag == "early_stopping" else flag] = value
    if getattr(args, "amp", None):
        options["amp"] = True
    if getattr(args, "time_budget", None):
        options["time_budget_s"] = args.time_budget
    options.update(parse_options(args.option))
    return options


def read_config_file(path: Path) -> dict:
    """A YAML config as options (``model_options:`` of older configs becomes the ``model`` section)."""
    from segscope.io import read_yaml_mapping

    data = read_yaml_mapping(path)
    data.pop("method", None)
    if isinstance(data.get("model_options"), dict):
        data["model"] = {**data.pop("model_options"), **(data.get("model") or {})}
    return data


def run(args: argparse.Namespace) -> int:
    from segscope.data.splits import train_val_datasets
    from segscope.engine import distributed
    from segscope.factory import create_segmenter

    out = Path(args.out)
    if distributed.launched() and args.cv:
        raise UserError("--cv runs one fold after another; launch it without torchrun")
    if out.exists() and any(out.iterdir()) and not args.resume:
        if (out / "segmenter.json").exists() or (out / "last.json").exists():
            raise UserError(
                f"{out}: already holds a run; use --resume to continue it or choose another --out"
            )
    if args.cv:
        return run_cv(args)
    if args.resume and not (out / "last_state.pt").exists():
        raise UserError(f"{out}: nothing to resume (no last_state.pt)")
    options = collect_options(args)
    train, val = train_val_datasets(
        args.data,
        **volume_options(args),
        format=args.format,
        split=args.split,
        val_split=args.val_split,
        val_fraction=args.val_fraction,
        seed=options.get("seed", 0),
    )
    train.validate()
    if val is not None:
        val.validate()
    channels = train.load_image(0).shape[-1]
    seg = create_segmenter(
        args.model,
        num_classes=train.num_classes,
        in_channels=channels,
        ndim=getattr(train, "ndim", 2),
        **options,
    )
    main = not distributed.launched() or int(os.environ.get("RANK", "0")) == 0
    if main:
        ranks = f" on {os.environ['WORLD_SIZE']} processes" if distributed.launched() else ""
        print(
            f"training {args.model} on {len(train)} images ({train.name}), "
            f"validating on {len(val) if val else 0}{ranks}"
        )
    t0 = time.perf_counter()
    kwargs = {"resume": True} if args.resume else {}
    try:
        seg.fit(train, val, out_dir=out, progress=not args.quiet and main, **kwargs)
    finally:
        distributed.shutdown()  # torchrun: rank 0 alone evaluates and writes the run from here
    if not main:
        return 0
    fit_seconds = time.perf_counter() - t0
    command = "segscope " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    summary = finish_run(seg, out, val, command=command, progress=not args.quiet, fit_seconds=fit_seconds)
    from segscope.evaluation import format_metrics_table

    if summary["metrics"]:
        print(format_metrics_table(summary["metrics"]))
    print(f"run written to {out} (report: {out / 'report.html'})")
    return 0


def run_cv(args: argparse.Namespace) -> int:
    """``train --cv SPEC``: one fit per fold through the bench runner (splits saved, cells resumable)."""
    from segscope.bench import BenchPlan, run_bench
    from segscope.cli.bench import leaderboard_text
    from segscope.report import render_bench_report

    options = collect_options(args)
    plan = BenchPlan(
        data=args.data,
        methods=[args.model],
        cv=args.cv,
        format=args.format,
        **volume_options(args),
        time_budget_s=options.pop("time_budget_s", None) or 1e9,
        options={args.model: options} if options else {},
        holdout=args.val_fraction if args.val_split is None else 0.0,
        seed=int(options.get("seed", 0)),
        command="segscope " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    results = run_bench(plan, args.out, progress=not args.quiet)
    render_bench_report(args.out, results=results)
    for method, rows in results["errors"].items():
        raise UserError(f"{method} failed on {len(rows)} fold(s): {rows[0]['message']}")
    keys = results["metric_keys"]
    print(f"{'fold':<10}" + "".join(f"{k:>16}" for k in keys))
    for cell in results["cells"][args.model]:
        print(f"{cell['fold']:<10}" + "".join(f"{cell['metrics'].get(k, float('nan')):>16.4f}" for k in keys))
    print(leaderboard_text(results))
    print(f"cross-validation written to {args.out} (report: {Path(args.out) / 'report.html'})")
    return 0


def finish_run(
    segmenter,
    run_dir: Path,
    val: SegmentationDataset | None,
    *,
    command: str,
    progress: bool = True,
    fit_seconds: float = 0.0,
    overlays: int = 4,
) -> dict[str, Any]:
    """Save the segmenter, evaluate on ``val``, write ``metrics.json`` and ``report.html`` in ``run_dir``."""
    from segscope.evaluation import evaluate_segmenter
    from segscope.report import render_run_report
    from segscope.visualize import display_slice

    segmenter.save(run_dir)
    metrics: dict[str, Any] = {}
    predictions: list[np.ndarray] = []
    if val is not None and val.has_masks:
        metrics = evaluate_segmenter(segmenter, val, progress=progress, keep_predictions=overlays)
        predictions = metrics.pop("predictions", [])
    summary = {
        "method": segmenter.name,
        "fit_seconds": round(fit_seconds, 2),
        "num_parameters": segmenter.num_parameters,
        "command": command,
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "metrics": {k: v for k, v in metrics.items() if k != "per_image"},
        "per_image": metrics.get("per_image", []),
    }
    write_json_atomic(run_dir / "metrics.json", summary)

    nd = getattr(val, "ndim", 2)  # a volume's panels show its middle z-slice
    panels = (
        [
            (
                val.stems[i],
                display_slice(val.load_image(i), nd),
                display_slice(val.load_mask(i)),
                display_slice(p),
            )
            for i, p in enumerate(predictions)
        ]
        if val
        else []
    )
    render_run_report(
        run_dir,
        run_dir / "report.html",
        metrics=summary,
        history=segmenter.history,
        overlays=panels,
        palette=val.palette if val is not None else None,
        class_names=val.classes if val is not None else None,
    )
    return summary
