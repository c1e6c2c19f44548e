"""``segscope evaluate``: score a trained run on a labelled dataset split."""

from __future__ import annotations

import argparse
from pathlib import Path

from segscope.cli.common import add_data_arguments, volume_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a trained run on a dataset",
        description="Predict every image of a labelled split with a trained run and print/write its metrics.",
    )
    p.add_argument(
        "--run", required=True, metavar="RUN_DIR", help="run directory written by `segscope train`"
    )
    add_data_arguments(p, split=None)
    p.add_argument("--out", metavar="FILE.json", help="metrics JSON (default: RUN_DIR/metrics_<split>.json)")
    p.add_argument(
        "--refine-oracle",
        metavar="ORACLE_DIR",
        help="post-process every prediction by gradient ascent on this quality oracle (`segscope refine`)",
    )
    p.add_argument("--refine-iterations", type=int, default=50, help="ascent steps with --refine-oracle")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import segscope
    from segscope.data import available_splits, open_dataset
    from segscope.errors import UserError
    from segscope.evaluation import evaluate_segmenter, format_metrics_table
    from segscope.io import write_json_atomic

    seg = segscope.load(args.run)
    if args.refine_oracle:
        from segscope.oracle import RefinedSegmenter

        seg = RefinedSegmenter(seg, args.refine_oracle, iterations=args.refine_iterations)
    split = args.split or ("val" if "val" in available_splits(args.data, args.format) else None)
    ds = open_dataset(args.data, split, format=args.format, **volume_options(args))
    if not ds.has_masks:
        raise UserError(f"{args.data}: split {split or 'all'} has images without masks; cannot evaluate")
    if ds.num_classes != seg.num_classes:
        raise UserError(f"{args.data}: {ds.num_classes} classes, but the run predicts {seg.num_classes}")
    result = evaluate_segmenter(seg, ds, progress=not args.quiet)
    suffix = "_refined" if args.refine_oracle else ""
    out = Path(args.out) if args.out else Path(args.run) / f"metrics_{split or 'all'}{suffix}.json"
    refined = {"refine_oracle": str(args.refine_oracle)} if args.refine_oracle else {}
    write_json_atomic(
        out, {"run": str(args.run), "data": str(args.data), "split": split, **refined, **result}
    )
    print(format_metrics_table(result))
    print(
        f"{len(ds)} images, {result['seconds_per_image'] * 1000:.1f} ms per image; metrics written to {out}"
    )
    return 0
