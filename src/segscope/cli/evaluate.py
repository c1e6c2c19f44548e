"""``segscope evaluate``: score a trained run on a labelled dataset split; with ``--oracle`` also how well
a quality oracle's label-free estimate of each prediction's quality agrees with its true quality."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segscope.cli.common import add_data_arguments, volume_options

if TYPE_CHECKING:
    import numpy as np

    from segscope.data.dataset import SegmentationDataset
    from segscope.oracle.quality import Oracle


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
    p.add_argument(
        "--oracle",
        metavar="ORACLE_DIR",
        help="also compare this quality oracle's label-free estimate of each prediction's Dice/IoU with "
        "the true one (Pearson, Spearman, MAE; per image in the metrics JSON)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def agreement(predicted: list[float], true: list[float]) -> dict[str, float | None]:
    """Pearson, Spearman and MAE of :func:`segscope.oracle.evaluate.agreement`, ``None`` where undefined
    (fewer than 2 images or a constant series)."""
    import math

    from segscope.oracle.evaluate import agreement as oracle_agreement_figures

    figures = oracle_agreement_figures(predicted, true)
    return {
        k: None if not isinstance(figures[k], float) or math.isnan(figures[k]) else figures[k]
        for k in ("pearson", "spearman", "mae")
    }


def oracle_recorder(oracle: Oracle, ds: SegmentationDataset, rows: list[dict[str, Any]]) -> Any:
    """An ``on_prediction`` hook of :func:`segscope.evaluation.evaluate_segmenter` that appends, per image,
    the oracle's predicted quality of the prediction and its true quality of the same kind to ``rows``."""
    from segscope.oracle.quality import predicted_quality, true_quality

    index = {stem: i for i, stem in enumerate(ds.stems)}

    def record(stem: str, image: np.ndarray, labels: np.ndarray) -> None:
        truth = ds.load_mask(index[stem], image_shape=image.shape)
        rows.append(
            {
                "stem": stem,
                "predicted_quality": predicted_quality(oracle, image, labels),
                "true_quality": true_quality(labels, truth, oracle.classes, oracle.quality, ds.ignore_index),
            }
        )

    return record


def warn_if_trained_on(oracle_dir: str | Path, stems: list[str]) -> list[str]:
    """Warn (one line on stderr) if some of ``stems`` trained the oracle; returns those stems."""
    from segscope.oracle.quality import oracle_train_images

    seen = set(oracle_train_images(oracle_dir))
    overlap = [s for s in stems if s in seen]
    if overlap:
        shown = ", ".join(overlap[:3]) + (", ..." if len(overlap) > 3 else "")
        print(
            f"segscope: warning: {len(overlap)} of the {len(stems)} evaluated images ({shown}) trained the "
            f"oracle {oracle_dir}; its quality figures are not held-out",
            file=sys.stderr,
        )
    return overlap


def format_agreement(report: dict[str, Any], oracle_dir: str | Path) -> str:
    """One line: the oracle's Pearson, Spearman and MAE against the true quality."""

    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"oracle {oracle_dir}: predicted vs true {report['quality']} over {len(report['per_image'])} "
        f"images: Pearson {show(report['pearson'])}, Spearman {show(report['spearman'])}, "
        f"MAE {show(report['mae'])}"
    )


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
    oracle = None
    if args.oracle:
        from segscope.cli.predict import open_oracle

        oracle = open_oracle(args.oracle, seg)
    split = args.split or ("val" if "val" in available_splits(args.data, args.format) else None)
    ds = open_dataset(args.data, split, format=args.format, **volume_options(args))
    if not ds.has_masks:
        raise UserError(f"{args.data}: split {split or 'all'} has images without masks; cannot evaluate")
    if ds.num_classes != seg.num_classes:
        raise UserError(f"{args.data}: {ds.num_classes} classes, but the run predicts {seg.num_classes}")
    if oracle is not None and getattr(ds, "ndim", 2) != 2:
        raise UserError(
            f"--oracle {args.oracle}: oracle quality is for 2-D images; {args.data} holds volumes"
        )
    overlap = warn_if_trained_on(args.oracle, ds.stems) if oracle is not None else []
    rows: list[dict[str, Any]] = []
    hook = oracle_recorder(oracle, ds, rows) if oracle is not None else None
    result = evaluate_segmenter(seg, ds, progress=not args.quiet, on_prediction=hook)
    if oracle is not None:
        result["oracle_quality"] = {
            "oracle": str(args.oracle),
            "trained_on_evaluated": overlap,
            "quality": oracle.quality,
            "classes": list(oracle.classes),
            **agreement([r["predicted_quality"] for r in rows], [r["true_quality"] for r in rows]),
            "per_image": rows,
        }
    suffix = "_refined" if args.refine_oracle else ""
    out = Path(args.out) if args.out else Path(args.run) / f"metrics_{split or 'all'}{suffix}.json"
    refined = {"refine_oracle": str(args.refine_oracle)} if args.refine_oracle else {}
    write_json_atomic(
        out, {"run": str(args.run), "data": str(args.data), "split": split, **refined, **result}
    )
    print(format_metrics_table(result))
    if oracle is not None:
        print(format_agreement(result["oracle_quality"], args.oracle))
    print(
        f"{len(ds)} images, {result['seconds_per_image'] * 1000:.1f} ms per image; metrics written to {out}"
    )
    return 0
