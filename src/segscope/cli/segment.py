"""``segscope segment``: run a classical method on images without training; write label PNGs and overlays."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="segment images with a classical method (no training)",
        description="Run a classical method with its default (or given) parameters and write, for each "
        "image, <stem>.png (class indices: 0 background, 1 object for binary methods) and "
        "<stem>_overlay.png. "
        "Methods that learn from labels (superpixel labelling, alpha_expansion) need `segscope train` "
        "and `segscope predict` instead. Example: segscope segment --method watershed cells/*.png --out seg "
        "--option markers=distance --option postprocess=[remove_small_objects]. "
        "Interactive methods (grabcut, graphcut, random_walker) also take a prompt applied to every image: "
        "--box and points in pixels, x (column) first, e.g. "
        "segscope segment --method grabcut photo.png --box 40,30,200,180 --out seg",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (or folders of images)")
    p.add_argument(
        "--method", required=True, help="a classical method name (see `segscope models --family classical`)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--option",
        "-o",
        action="append",
        metavar="KEY=VALUE",
        help="method option (repeatable), e.g. sigma=2, invert=true, preprocess=[clahe, nl_means]",
    )
    p.add_argument("--num-classes", type=int, default=2, help="classes of the label map (default 2)")
    p.add_argument(
        "--instances",
        action="store_true",
        help="also write <stem>_instances.png (16-bit instance ids; watershed)",
    )
    p.add_argument(
        "--box",
        metavar="X0,Y0,X1,Y1",
        help="prompt: the object's box in pixels, x1 and y1 exclusive (grabcut, graphcut, random_walker)",
    )
    p.add_argument(
        "--fg-points",
        metavar='"X,Y;X,Y"',
        help="prompt: points on the object (a brush stroke is a run of points)",
    )
    p.add_argument("--bg-points", metavar='"X,Y;X,Y"', help="prompt: points on the background")
    p.add_argument(
        "--seed-radius", type=int, default=3, metavar="N", help="radius of each point's seed disc (default 3)"
    )
    p.add_argument("--workers", type=int, default=1, help="processes (default 1; not with a prompt)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from segscope.classical.segmenter import check_prompt_kinds
    from segscope.cli.common import parse_options
    from segscope.cli.predict import expand_images
    from segscope.data import default_palette, read_image
    from segscope.errors import UserError
    from segscope.factory import create_segmenter, get_entry
    from segscope.inference.batch import label_image
    from segscope.prompts import Prompt, parse_box, parse_points
    from segscope.visualize import overlay, write_png

    entry = get_entry(args.method)
    if entry.family != "classical":
        raise UserError(
            f"--method {args.method}: segment runs classical methods; train deep models with `segscope train`"
        )
    seg = create_segmenter(args.method, num_classes=args.num_classes, **parse_options(args.option))
    if getattr(seg, "needs_training", False):
        raise UserError(
            f"--method {args.method} learns from labelled images: run "
            f"`segscope train --method {args.method}` then `segscope predict`"
        )
    if args.instances and not hasattr(seg, "predict_instances"):
        raise UserError(f"--instances: {args.method} gives no instance map (watershed does)")
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    prompt = Prompt(
        box=parse_box(args.box) if args.box is not None else None,
        fg_points=parse_points(args.fg_points, "--fg-points") if args.fg_points is not None else (),
        bg_points=parse_points(args.bg_points, "--bg-points") if args.bg_points is not None else (),
        radius=args.seed_radius,
    )
    if prompt:
        check_prompt_kinds(args.method, getattr(seg, "prompts", ()), prompt)
        if args.workers > 1:
            raise UserError("--workers: a prompt is applied one image at a time; drop --workers")
    paths = expand_images(args.images)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    palette = default_palette(seg.num_classes)
    chunk = max(1, 4 * args.workers)
    with tqdm(total=len(paths), desc=f"segment {args.method}", disable=args.quiet) as bar:
        for start in range(0, len(paths), chunk):
            batch = paths[start : start + chunk]
            images = [read_image(p) for p in batch]
            try:
                if prompt:
                    labels = [
                        predict_prompted(seg, path, image, prompt) for path, image in zip(batch, images)
                    ]
                else:
                    labels = seg.predict_many(images, workers=args.workers)
            except UserError:
                raise
            except ValueError as exc:  # a bad option value reaches the algorithm
                raise UserError(f"--method {args.method}: {exc}") from None
            for path, image, output in zip(batch, images, labels):
                lab, pal = label_image(output, palette)
                write_png(out / f"{path.stem}.png", lab)
                write_png(out / f"{path.stem}_overlay.png", overlay(image, lab, pal, alpha=args.alpha))
                if args.instances:
                    write_png(
                        out / f"{path.stem}_instances.png", seg.predict_instances(image).astype("uint16")
                    )
            bar.update(len(batch))
    print(f"{len(paths)} segmentations written to {out}")
    return 0


def predict_prompted(seg, path: Path, image, prompt):
    """One prompted prediction; a prompt that does not fit this image names the file."""
    from segscope.errors import UserError

    try:
        return seg.predict(image, prompt=prompt)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
