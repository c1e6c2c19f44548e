"""``segscope fewshot``: train, evaluate and use few-shot segmenters (prototypes, siamese matching).

segscope fewshot train --data camvid/ --method prototypes --fold 3 --time-budget 5m --out runs/fs_proto
segscope fewshot evaluate --data camvid/ --run runs/fs_proto --run runs/fs_siam --episodes 500 --out fs_eval/
segscope fewshot predict --run runs/fs_proto --support a.png a_mask.png --query b.png --out pred/
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from segscope.cli.common import parse_duration
from segscope.errors import UserError

EXAMPLES = textwrap.dedent(__doc__.split("\n\n", 1)[1])


def _size(text: str) -> tuple[int, int]:
    parts = text.replace("x", ",").split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) >= 32 for p in parts):
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (H,W, each >= 32, e.g. 176,240)")
    return int(parts[0]), int(parts[1])


def _shots(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid shot counts {text!r} (e.g. 1,5)") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"shot counts must be >= 1, got {text!r}")
    return values


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fewshot",
        help="few-shot segmentation: segment a class from one or five examples",
        description="Episodic few-shot segmentation on a frozen ImageNet EfficientNet-Lite0 (offline wheel): "
        "PANet prototypes, siamese matching, and a fine-tuning baseline, under PASCAL-5i-style class "
        "folds (see docs/fewshot.md).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="fewshot_verb", metavar="VERB", required=True)

    t = verbs.add_parser("train", help="train a head on the seen classes of a fold")
    t.add_argument("--data", required=True, metavar="DIR", help="dataset with a train split")
    t.add_argument("--method", choices=("prototypes", "siamese"), default="prototypes")
    t.add_argument("--fold", type=int, default=0, help="the fold whose classes stay unseen (default 0)")
    t.add_argument("--folds", type=int, default=4, help="number of class folds (default 4)")
    t.add_argument("--ways", type=int, default=1, help="classes per training episode (default 1)")
    t.add_argument("--shots", type=int, default=1, help="support images per class (default 1)")
    t.add_argument("--size", type=_size, default=(176, 240), help="image size H,W (default 176,240)")
    t.add_argument("--time-budget", type=parse_duration, default=300.0, metavar="DURATION", help="default 5m")
    t.add_argument("--max-steps", type=int, default=100_000, help="episodes at most (default 100000)")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument(
        "--policy",
        choices=("ignore", "exclude"),
        default="ignore",
        help="unseen-class pixels of training images: ignored (default), or their images excluded",
    )
    t.add_argument("--min-pixels", type=int, default=500, help="pixels a target class needs (default 500)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, metavar="RUN_DIR")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=run_train)

    e = verbs.add_parser("evaluate", help="score runs and the fine-tuning baseline on fixed unseen episodes")
    e.add_argument("--data", required=True, metavar="DIR")
    e.add_argument("--split", default="val", help="split the test episodes come from (default val)")
    e.add_argument(
        "--run", action="append", default=[], metavar="RUN_DIR", help="a trained head (repeatable)"
    )
    e.add_argument("--no-baseline", action="store_true", help="skip the fine-tuning baseline")
    e.add_argument(
        "--cross-domain",
        action="store_true",
        help="test runs trained on another dataset on this dataset's folds (e.g. --folds 1)",
    )
    e.add_argument("--fold", type=int, default=None, help="fold (default: the runs'; 0 without runs)")
    e.add_argument("--folds", type=int, default=4)
    e.add_argument("--shots", type=_shots, default=[1, 5], help="shot counts (default 1,5)")
    e.add_argument("--episodes", type=int, default=500, help="test episodes per shot count (default 500)")
    e.add_argument("--min-pixels", type=int, default=500, help="pixels a target class needs (default 500)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", required=True, metavar="DIR")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=run_evaluate)

    q = verbs.add_parser("predict", help="segment a query image from annotated support images")
    q.add_argument("--run", metavar="RUN_DIR", help="a trained head (default: the fine-tuning baseline)")
    q.add_argument("--support", nargs=2, action="append", required=True, metavar=("IMG", "MASK"),
                   help="a support image and its mask (nonzero = the class); repeat for K shots")  # fmt: skip
    q.add_argument("--query", required=True, nargs="+", metavar="IMG", help="query image(s)")
    q.add_argument("--out", required=True, metavar="DIR")
    q.set_defaults(func=run_predict)


def run_train(args: argparse.Namespace) -> int:
    from segscope.fewshot.experiment import train_fewshot

    meta = train_fewshot(
        args.data,
        args.out,
        method=args.method,
        fold=args.fold,
        n_folds=args.folds,
        ways=args.ways,
        shots=args.shots,
        size=args.size,
        time_budget_s=args.time_budget,
        max_steps=args.max_steps,
        lr=args.lr,
        policy=args.policy,
        min_pixels=args.min_pixels,
        seed=args.seed,
        progress=not args.quiet,
    )
    tr = meta["train"]
    print(
        f"{args.method}: {tr['steps']} episodes in {tr['seconds']:.0f} s; best selection mIoU "
        f"{tr['best_selection_miou']:.3f} at episode {tr['best_step']} (seen classes, held-out training "
        f"images); unseen: {', '.join(meta['unseen'])}; written to {args.out}"
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from segscope.fewshot.experiment import evaluate_fewshot
    from segscope.report.fewshot_report import render_fewshot_report

    if args.episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {args.episodes}")
    results = evaluate_fewshot(
        args.data,
        args.out,
        runs=args.run,
        baseline=not args.no_baseline,
        cross_domain=args.cross_domain,
        split=args.split,
        fold=args.fold,
        n_folds=args.folds,
        shots=args.shots,
        episodes=args.episodes,
        min_pixels=args.min_pixels,
        seed=args.seed,
        progress=not args.quiet,
    )
    proto = results["protocol"]
    print(
        f"unseen classes {', '.join(proto['unseen'])}; {args.episodes} episodes per shot count "
        f"({proto['split']})"
    )
    print(
        f"{'method':<14}"
        + "".join(
            f"{k + ' mIoU':>13}{k + ' FB-IoU':>15}" for k in results["scores"][next(iter(results["scores"]))]
        )
    )
    for name, by_shot in results["scores"].items():
        print(
            f"{name:<14}" + "".join(f"{s['mean_iou']:>13.3f}{s['fb_iou']:>15.3f}" for s in by_shot.values())
        )
    if (Path(args.out) / "bench.json").is_file():  # a bench folder: its report gains a few-shot section
        from segscope.report import render_bench_report

        report = render_bench_report(args.out)
    else:
        report = render_fewshot_report(args.out, results)
    print(f"report: {report}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from segscope.data import default_palette, read_image
    from segscope.fewshot.run import FewShotPredictor
    from segscope.visualize import overlay, write_png

    predictor = FewShotPredictor.from_run(args.run) if args.run else FewShotPredictor.baseline()
    support = []
    for image_path, mask_path in args.support:
        image = read_image(image_path, channels=3)
        mask = read_image(mask_path)[..., 0]
        if mask.shape != image.shape[:2]:
            raise UserError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, "
                f"its image {image.shape[1]}x{image.shape[0]}"
            )
        if not (mask > 0).any():
            raise UserError(f"{mask_path}: the mask marks no pixel of the class")
        support.append((image, mask))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    palette = default_palette(2)
    for query_path in args.query:
        query = read_image(query_path, channels=3)
        labels = predictor.predict([support], query).astype(np.uint8)
        stem = Path(query_path).stem
        write_png(out / f"{stem}.png", labels)
        write_png(out / f"{stem}_overlay.png", overlay(query, labels, palette, alpha=0.5))
    print(f"{len(args.query)} predictions ({predictor.method}, {len(support)}-shot) written to {out}")
    return 0
