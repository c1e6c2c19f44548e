"""``segscope points``: PointNet part segmentation of point clouds (ShapeNet-Part categories).

segscope points train --generated 64 --out runs/pointnet --time-budget 10m
segscope points train --data shapenetcore_partanno_segmentation_benchmark_v0/ --out runs/pointnet
segscope points evaluate --run runs/pointnet --data ../shared/data/shapenet_part_sample --out pn_eval/
segscope points predict --run runs/pointnet 03001627/points/1015e71a.pts scan.ply --category Chair --out pred/
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from segscope.cli.common import parse_duration
from segscope.errors import DataError, UserError

EXAMPLES = textwrap.dedent(__doc__.split("\n\n", 1)[1])


def _positive(kind: type, minimum: float):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "points",
        help="point-cloud part segmentation (PointNet, ShapeNet-Part categories)",
        description="PointNet part segmentation (Qi et al., CVPR 2017): train on a ShapeNet-Part folder "
        "or on a generated set of procedural shapes, evaluate (instance and class mIoU), predict part "
        "labels for .pts/.ply/.npy clouds (see docs/pointclouds.md).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="points_verb", metavar="VERB", required=True)

    t = verbs.add_parser(
        "train", help="train PointNet; the best checkpoint by validation instance mIoU is kept"
    )
    source = t.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", metavar="DIR", help="a ShapeNet-Part folder (its train split; val split or 10%% held out)"
    )
    source.add_argument(
        "--generated",
        type=_positive(int, 1),
        metavar="N_PER_CATEGORY",
        help="train on N generated shapes per category (plus a held-out generated val split)",
    )
    t.add_argument("--categories", help="comma-separated categories (default: all available)")
    t.add_argument(
        "--val-generated",
        type=_positive(int, 1),
        metavar="N",
        help="generated val shapes per category (default N/8, >= 2)",
    )
    t.add_argument(
        "--time-budget", type=parse_duration, default=600.0, metavar="DURATION", help="default 10m"
    )
    t.add_argument("--epochs", type=_positive(int, 1), help="epochs at most (default: until the time budget)")
    t.add_argument(
        "--points", type=_positive(int, 16), default=2048, help="points per training shape (default 2048)"
    )
    t.add_argument("--batch-size", type=_positive(int, 2), default=32, help="default 32 (the paper's)")
    t.add_argument("--lr", type=_positive(float, 0), default=1e-3, help="Adam learning rate (default 0.001)")
    t.add_argument(
        "--width",
        type=_positive(float, 0.05),
        default=1.0,
        help="channel multiplier (default 1.0, the paper's)",
    )
    t.add_argument(
        "--val-every",
        type=_positive(int, 1),
        metavar="STEPS",
        help="validate every STEPS steps (default: each epoch)",
    )
    t.add_argument(
        "--rotate", action="store_true", help="augment with random rotations about the up (y) axis"
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, metavar="RUN_DIR")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=run_train)

    e = verbs.add_parser(
        "evaluate", help="instance / class mIoU on a ShapeNet-Part folder, JSON + HTML report"
    )
    e.add_argument("--run", required=True, metavar="RUN_DIR")
    e.add_argument("--data", required=True, metavar="DIR", help="a ShapeNet-Part folder")
    e.add_argument("--split", help="train, val or test (default: every shape in the folder)")
    e.add_argument("--pictures", type=_positive(int, 0), default=4, help="3-D scatter pictures (default 4)")
    e.add_argument("--out", metavar="DIR", help="report folder (default RUN_DIR/evaluate)")
    e.set_defaults(func=run_evaluate)

    q = verbs.add_parser("predict", help="part labels for .pts / .ply / .npy clouds")
    q.add_argument("--run", required=True, metavar="RUN_DIR")
    q.add_argument("inputs", nargs="+", metavar="INPUT", help=".pts, .ply or .npy point clouds")
    q.add_argument(
        "--category", help="the object category (default: from a ShapeNet-Part <synset>/points/ path)"
    )
    q.add_argument(
        "--format",
        choices=("auto", "seg", "npy"),
        default="auto",
        help="output: .seg text (1-based labels) or .npy (default: .seg for .pts inputs)",
    )
    q.add_argument("--out", required=True, metavar="DIR")
    q.set_defaults(func=run_predict)


def run_train(args: argparse.Namespace) -> int:
    from segscope.points import (
        GENERATED_CATEGORIES,
        TrainConfig,
        category_name,
        generate_set,
        load_shapenet_part,
        split_holdout,
        train_part_segmenter,
    )

    categories = [category_name(c) for c in args.categories.split(",")] if args.categories else None
    if args.generated:
        names = categories or list(GENERATED_CATEGORIES)
        n_val = args.val_generated or max(2, args.generated // 8)
        train = generate_set(args.generated, categories=names, seed=args.seed)
        val = generate_set(n_val, categories=names, seed=args.seed + 1000)
        data = {
            "source": "generated",
            "per_category": args.generated,
            "val_per_category": n_val,
            "categories": names,
            "seed": args.seed,
            "val_seed": args.seed + 1000,
        }
    else:
        train = load_shapenet_part(args.data, "train", categories)
        if (Path(args.data) / "train_test_split" / "shuffled_val_file_list.json").is_file():
            val, held = load_shapenet_part(args.data, "val", categories), "val split"
        else:
            train, val = split_holdout(train, 0.1, args.seed)
            held = "10% of train held out"
        if not val:
            raise UserError(f"{args.data}: too few shapes to hold out a validation split")
        data = {"source": str(args.data), "train_shapes": len(train), "val_shapes": len(val), "val": held}
    config = TrainConfig(
        points=args.points,
        batch_size=args.batch_size,
        lr=args.lr,
        width=args.width,
        epochs=args.epochs,
        time_budget_s=args.time_budget,
        rotate=args.rotate,
        seed=args.seed,
        val_every=args.val_every,
    )
    run = train_part_segmenter(train, val, args.out, config, data=data, progress=not args.quiet)
    best, last = run["best"], run["history"][-1]
    print(
        f"PointNet (width {args.width}): {last['step']} steps, {last['epoch']} epochs in "
        f"{last['seconds']:.0f} s on {len(train)} shapes; best val instance mIoU "
        f"{best['val_instance_miou']:.3f} (class mIoU {best['val_class_miou']:.3f}) at step {best['step']}; "
        f"written to {args.out}"
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from segscope.points import evaluate_run

    out = Path(args.out) if args.out else Path(args.run) / "evaluate"
    results = evaluate_run(args.run, args.data, out, split=args.split, pictures=args.pictures)
    print(f"{'category':<12}{'shapes':>7}{'mIoU':>8}")
    for name, c in results["per_category"].items():
        print(f"{name:<12}{c['n_shapes']:>7}{c['miou']:>8.3f}")
    print(
        f"instance mIoU {results['instance_miou']:.3f} (mean over {results['n_shapes']} shapes), class mIoU "
        f"{results['class_miou']:.3f} (mean over {len(results['per_category'])} categories); predictions "
        f"restricted to each shape's category parts; report: {out / 'index.html'}"
    )
    return 0


def run_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from segscope.points import (
        NUM_PARTS,
        PartSegmenter,
        category_from_path,
        category_name,
        read_point_cloud,
        shape_miou,
        write_npy,
        write_seg,
    )

    segmenter = PartSegmenter.from_run(args.run)
    fixed = category_name(args.category) if args.category else None
    out = Path(args.out)
    jobs = []
    for path in map(Path, args.inputs):  # read and check every input before writing anything
        category = fixed or category_from_path(path)
        if category is None:
            raise DataError(f"{path}: cannot tell the category from the path; pass --category")
        points, labels = read_point_cloud(path)
        jobs.append((path, category, points, labels))
    for path, category, points, labels in jobs:
        pred = segmenter.predict(points, category)
        as_seg = args.format == "seg" or (args.format == "auto" and path.suffix.lower() == ".pts")
        target = out / f"{path.stem}.{'seg' if as_seg else 'npy'}"
        if as_seg:
            write_seg(target, pred)
        else:
            write_npy(target, pred.astype(np.int64))
        score = ""
        if (
            labels is not None
            and len(labels) == len(pred)
            and labels.min() >= 1
            and labels.max() <= NUM_PARTS[category]
        ):
            score = f" (mIoU {shape_miou(pred, labels, NUM_PARTS[category]):.3f} against its labels)"
        print(f"{path}: {category}, {len(points)} points -> {target}{score}")
    return 0
