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
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (or folders of images)")
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


def label_image(output, palette):
    """``(PNG-ready label map, overlay palette)`` of a method's output: class indices as uint8, or for
    :class:`~segscope.types.Instances` the instance-id map (uint16, 0 = background) with one colour each."""
    import numpy as np

    from segscope.data import default_palette
    from segscope.types import Instances

    if isinstance(output, Instances):
        ids = output.to_label_map()
        return ids.astype(np.uint16), default_palette(max(len(output) + 1, 3))
    return output.astype(np.uint8 if int(output.max(initial=0)) < 256 else np.uint16), palette


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    import segscope
    from segscope.data import default_palette, read_image
    from segscope.visualize import overlay, write_png

    seg = segscope.load(args.run)
    if args.backend == "onnxruntime":
        from segscope.errors import UserError
        from segscope.models.segmenter import DeepSegmenter

        base = getattr(seg, "base", seg)
        if not isinstance(base, DeepSegmenter):
            raise UserError(f"{args.run}: --backend onnxruntime needs a deep run, {seg.name} is not one")
        base.use_onnxruntime(args.onnx or Path(args.run) / "model.onnx")
    images = expand_images(args.images)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    palette = default_palette(seg.num_classes)
    for path in tqdm(images, desc="predict", disable=args.quiet):
        image = read_image(path)
        labels, pal = label_image(seg.predict(image), palette)
        write_png(out / f"{path.stem}.png", labels)
        write_png(out / f"{path.stem}_overlay.png", overlay(image, labels, pal, alpha=args.alpha))
    print(f"{len(images)} predictions written to {out}")
    return 0
