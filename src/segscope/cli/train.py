"""``segscope train``: fit any registered method (deep or classical) on a dataset."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from segscope.cli.common import add_data_arguments, parse_duration, parse_options
from segscope.errors import UserError

TRAIN_FLAGS = {  # flag -> TrainConfig field
    "epochs": int,
    "batch_size": int,
    "lr": float,
    "optimizer": str,
    "weight_decay": float,
    "schedule": str,
    "loss": str,
    "class_weights": str,
    "sampler": str,
    "crop_max_ratio": float,
    "freeze_encoder_epochs": int,
    "encoder_lr_scale": float,
    "augment": str,
    "crop_size": str,
    "resize": str,
    "early_stopping": int,
    "seed": int,
    "accumulate": int,
    "device": str,
    "num_workers": int,
}
SEGMENTER_FLAGS = ("decision", "cost_matrix", "pretrained")  # options of the segmenter / model builder


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
    """Method options from --config, then flags, then --option (later wins)."""
    options: dict = {}
    if args.config:
        from segscope.engine.config import SEGMENTER_OPTIONS, TrainConfig

        options.update(TrainConfig.from_yaml(args.config).to_dict())
        import yaml

        raw = yaml.safe_load(Path(args.config).read_text()) or {}
        options.update({k: raw[k] for k in SEGMENTER_OPTIONS if k in raw})
        options.update(raw.get("model_options", {}))
    for flag in TRAIN_FLAGS:
        value = getattr(args, flag, None)
        if value is not None:
            options["early_stopping_patience" if flag == "early_stopping" else flag] = value
    for flag in SEGMENTER_FLAGS:
        if getattr(args, flag, None) is not None:
            options[flag] = getattr(args, flag)
    if getattr(args, "amp", None):
        options["amp"] = True
    if getattr(args, "time_budget", None):
        options["time_budget_s"] = args.time_budget
    options.update(parse_options(args.option))
    return options


def run(args: argparse.Namespace) -> int:
    from segscope.methods import create_segmenter
    from segscope.registry import REGISTRY
    from segscope.runs import finish_run, train_val_datasets

    out = Path(args.out)
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
    entry = REGISTRY.get(args.model) if args.model in REGISTRY else None
    train, val = train_val_datasets(
        args.data,
        format=args.format,
        split=args.split,
        val_split=args.val_split,
        val_fraction=args.val_fraction,
        seed=options.get("seed", 0),
    )
    train.validate()
    if val is not None:
        val.validate()
    channels = train.load_image(0).shape[2]
    seg = create_segmenter(args.model, num_classes=train.num_classes, in_channels=channels, **options)
    del entry
    print(
        f"training {args.model} on {len(train)} images ({train.name}), validating on {len(val) if val else 0}"
    )
    t0 = time.perf_counter()
    kwargs = {"resume": True} if args.resume else {}
    seg.fit(train, val, out_dir=out, progress=not args.quiet, **kwargs)
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

    options = collect_options(args)
    plan = BenchPlan(
        data=args.data,
        methods=[args.model],
        cv=args.cv,
        format=args.format,
        time_budget_s=options.pop("time_budget_s", None) or 1e9,
        options={args.model: options} if options else {},
        holdout=args.val_fraction if args.val_split is None else 0.0,
        seed=int(options.get("seed", 0)),
        command="segscope " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    results = run_bench(plan, args.out, progress=not args.quiet)
    for method, rows in results["errors"].items():
        raise UserError(f"{method} failed on {len(rows)} fold(s): {rows[0]['message']}")
    keys = results["metric_keys"]
    print(f"{'fold':<10}" + "".join(f"{k:>16}" for k in keys))
    for cell in results["cells"][args.model]:
        print(f"{cell['fold']:<10}" + "".join(f"{cell['metrics'].get(k, float('nan')):>16.4f}" for k in keys))
    print(leaderboard_text(results))
    print(f"cross-validation written to {args.out} (report: {Path(args.out) / 'report.html'})")
    return 0
