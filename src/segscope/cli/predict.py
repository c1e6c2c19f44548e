"""``segscope predict``: label PNGs and colour overlays for images, from a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    p.set_defaults(func=run)


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


def run(args: argparse.Namespace) -> int:
    import segscope
    from segscope.inference.batch import predict_files

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
    summary = predict_files(
        seg,
        expand_images(args.images),
        args.out,
        workers=args.workers,
        resume=not args.overwrite,
        alpha=args.alpha,
        progress=not args.quiet,
    )
    skipped = f" ({summary.skipped} already there, skipped)" if summary.skipped else ""
    print(f"{summary.written} predictions written to {args.out}{skipped}")
    return 0
