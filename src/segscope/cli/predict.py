"""``segscope predict``: label PNGs and colour overlays for images, from a trained run; with ``--oracle``
also a quality oracle's label-free estimate of each prediction (``quality.csv``, lowest first)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from segscope.oracle.quality import Oracle
    from segscope.segmenter import Segmenter

QUALITY_CSV = "quality.csv"
LOOK_FIRST = 5


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="segment images with a trained run",
        description="Write <stem>.png (class indices) and <stem>_overlay.png for each image.",
    )
    p.add_argument(
        "--run", required=True, metavar="RUN_DIR", help="run directory written by `segscope train`"
    )
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files (or folders of images); for a 3-D run, volume files (.tif, .nii.gz, .npy) or "
        "folders of slices",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="network runtime: torch (default) or onnxruntime on RUN_DIR/model.onnx (`segscope export`)",
    )
    p.add_argument("--onnx", type=Path, metavar="FILE", help="ONNX file for --backend onnxruntime")
    p.add_argument("--workers", type=int, default=0, help="image-decoding processes (default 0: none)")
    p.add_argument(
        "--overwrite", action="store_true", help="predict every image again (default: skip finished ones)"
    )
    p.add_argument(
        "--oracle",
        metavar="ORACLE_DIR",
        help="also estimate each prediction's quality (Dice or IoU) with this quality oracle, without "
        "ground truth (`segscope refine train`); writes OUT/quality.csv, lowest first",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="predict 2-D images with a pool of Ray Data actors (--workers N: N actors, default 2; "
        "`pip install 'segscope[ray]'`): a local Ray without ADDRESS, else the cluster at ADDRESS "
        "(auto, ray://head:10001)",
    )
    add_tile_arguments(p)
    p.set_defaults(func=run)


def add_tile_arguments(p: argparse.ArgumentParser) -> None:
    """``--tile`` and its options: tiled prediction of large images (docs/deployment.md)."""
    g = p.add_argument_group("large images (deep semantic runs)")
    g.add_argument(
        "--tile",
        type=int,
        metavar="N",
        help="predict window by window (N pixels a side) in bounded memory; writes <stem>.tif (tiled TIFF "
        "labels) and <stem>_preview.png",
    )
    g.add_argument(
        "--tile-overlap", type=float, default=0.25, help="window overlap, blend mode (default 0.25)"
    )
    g.add_argument("--tile-blend", choices=("gaussian", "constant"), default="gaussian")
    g.add_argument(
        "--tile-mode",
        choices=("blend", "exact"),
        default="blend",
        help="blend: MONAI-style overlapping windows; exact: cores with --halo context, equal to a "
        "whole-image pass when the halo covers the receptive field",
    )
    g.add_argument("--halo", type=int, help="context pixels per side, exact mode (default: receptive radius)")
    g.add_argument("--tile-batch", type=int, default=4, help="windows per network call (default 4)")
    g.add_argument(
        "--tta", choices=("none", "hflip", "flips"), default="none", help="flip test-time augmentation"
    )
    g.add_argument(
        "--compile", action="store_true", help="torch.compile the network (slow first call per window size)"
    )


def expand_images(paths: list[str]) -> list[Path]:
    """Files as given; folders expand to the images inside them, sorted."""
    from segscope.data.formats import IMAGE_SUFFIXES
    from segscope.errors import UserError

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            out.append(p)
        else:
            raise UserError(f"{p}: image file not found")
    if not out:
        raise UserError(f"{', '.join(paths)}: no images found")
    return out


def open_oracle(oracle_dir: str | Path, seg: Segmenter) -> Oracle:
    """The oracle of ``oracle_dir``, checked against the run ``seg``: 2-D, class label maps, same classes."""
    from segscope.errors import UserError
    from segscope.oracle.quality import load_any_oracle

    if seg.ndim != 2:
        raise UserError(f"--oracle {oracle_dir}: oracle quality is for 2-D images; {seg.name} is a 3-D run")
    if getattr(seg, "task", "semantic") == "instance":
        raise UserError(
            f"--oracle {oracle_dir}: the oracle scores class label maps; {seg.name} is an instance method"
        )
    oracle = load_any_oracle(oracle_dir)
    if oracle.num_classes != seg.num_classes:
        raise UserError(
            f"{oracle_dir}: the oracle was trained on {oracle.num_classes} classes, "
            f"the run predicts {seg.num_classes}"
        )
    return oracle


def write_quality_csv(path: Path, qualities: dict[str, float]) -> list[tuple[str, float]]:
    """Write ``stem,predicted_quality`` rows to ``path`` atomically, lowest first; returns the rows."""
    import csv
    import io

    from segscope.io import write_text_atomic
    from segscope.oracle.quality import flag_images

    rows = flag_images(qualities)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["stem", "predicted_quality"])
    writer.writerows((stem, repr(q)) for stem, q in rows)
    write_text_atomic(path, text.getvalue())
    return rows


def check_ray_flags(args: argparse.Namespace) -> None:
    """``--ray`` runs the torch backend without an oracle: one line when combined with either."""
    from segscope.errors import UserError

    if args.ray is None:
        return
    if args.ray != "local" and Path(args.ray).exists():  # `--ray IMAGES/`: nargs='?' took the images
        raise UserError(f"--ray {args.ray}: that is a path, not a Ray address; put --ray after the images")
    if args.oracle:
        raise UserError("--ray cannot be combined with --oracle (run the oracle without --ray)")
    if args.backend == "onnxruntime":
        raise UserError("--ray cannot be combined with --backend onnxruntime (the actors run the torch run)")


def run(args: argparse.Namespace) -> int:
    from functools import partial

    import segscope
    from segscope.inference.batch import predict_files
    from segscope.oracle.quality import predicted_quality

    check_ray_flags(args)
    seg = segscope.load(args.run)
    if args.backend == "onnxruntime":
        from segscope.errors import UserError
        from segscope.models.segmenter import DeepSegmenter

        base = getattr(seg, "base", seg)
        if not isinstance(base, DeepSegmenter):
            raise UserError(f"{args.run}: --backend onnxruntime needs a deep run, {seg.name} is not one")
        base.use_onnxruntime(args.onnx or Path(args.run) / "model.onnx")
    if args.workers < 0:
        from segscope.errors import UserError

        raise UserError(f"--workers must be >= 0, got {args.workers}")
    oracle = open_oracle(args.oracle, seg) if args.oracle else None
    if seg.ndim == 3 and args.ray is not None:
        from segscope.errors import UserError

        raise UserError(f"{args.run}: --ray predicts 2-D images; {seg.name} is a 3-D run (drop --ray)")
    if seg.ndim == 3:  # volume files (or folders of slices) in, label volumes out
        from segscope.inference.batch import predict_volumes

        summary = predict_volumes(
            seg,
            [Path(p) for p in args.images],
            args.out,
            resume=not args.overwrite,
            alpha=args.alpha,
            progress=not args.quiet,
        )
        print(f"{summary.written} label volumes written to {args.out}")
        return 0
    if args.compile:
        getattr(seg, "base", seg).inference_compile = True
    if args.tile is not None:
        from segscope.inference.large_predict import TileSpec, predict_large_files

        spec = TileSpec(
            tile=args.tile,
            overlap=args.tile_overlap,
            blend=args.tile_blend,
            mode=args.tile_mode,
            halo=args.halo,
            batch=args.tile_batch,
            tta=args.tta,
        )
        written, skipped = predict_large_files(
            seg,
            expand_images(args.images),
            args.out,
            spec,
            resume=not args.overwrite,
            progress=not args.quiet,
        )
        extra = f" ({skipped} already there, skipped)" if skipped else ""
        print(f"{written} tiled predictions written to {args.out}{extra}")
        return 0
    if args.ray is not None:
        from segscope.cluster import predict_files_ray

        summary = predict_files_ray(
            args.run,
            expand_images(args.images),
            args.out,
            resume=not args.overwrite,
            alpha=args.alpha,
            concurrency=args.workers or 2,  # --workers N: N actors
            ray_address=None if args.ray == "local" else args.ray,
            progress=not args.quiet,
        )
    else:
        summary = predict_files(
            seg,
            expand_images(args.images),
            args.out,
            workers=args.workers,
            resume=not args.overwrite,
            alpha=args.alpha,
            progress=not args.quiet,
            score=partial(predicted_quality, oracle) if oracle is not None else None,
        )
    skipped = f" ({summary.skipped} already there, skipped)" if summary.skipped else ""
    print(f"{summary.written} predictions written to {args.out}{skipped}")
    if oracle is not None:
        import numpy as np

        rows = write_quality_csv(Path(args.out) / QUALITY_CSV, summary.scores)
        mean = float(np.mean([q for _, q in rows]))
        lowest = ", ".join(f"{stem} ({q:.3f})" for stem, q in rows[:LOOK_FIRST])
        print(f"mean predicted {oracle.quality} {mean:.3f} over {len(rows)} images")
        print(f"look at these first: {lowest}")
        print(f"predicted quality per image written to {Path(args.out) / QUALITY_CSV}")
    return 0
