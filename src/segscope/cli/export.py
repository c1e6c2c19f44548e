"""``segscope export``: a trained deep run as an ONNX model, checked in ONNX Runtime against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained deep run to ONNX",
        description=(
            "Write the run's network (BatchNorm folded, float32) as ONNX and print the largest absolute "
            "difference between ONNX Runtime and PyTorch logits on random input. "
            "`segscope predict --backend onnxruntime` then uses it."
        ),
    )
    p.add_argument(
        "--run", required=True, metavar="RUN_DIR", help="run directory written by `segscope train`"
    )
    p.add_argument("--format", choices=("onnx",), default="onnx", help="export format (onnx)")
    p.add_argument("--dynamic", action="store_true", help="symbolic batch, height and width")
    p.add_argument(
        "--size", metavar="H,W", help="traced input size (default: the run's resize, else 256,256)"
    )
    p.add_argument("--out", type=Path, metavar="FILE", help="output file (default RUN_DIR/model.onnx)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import segscope
    from segscope.errors import UserError
    from segscope.inference.onnx_export import DEFAULT_SIZE, export_onnx
    from segscope.models.segmenter import DeepSegmenter

    seg = segscope.load(args.run)
    base = getattr(seg, "base", seg)
    if not isinstance(base, DeepSegmenter):
        raise UserError(f"{args.run}: {seg.name} is not a deep model; only deep runs export to ONNX")
    if getattr(seg, "stages", None):
        kinds = ", ".join(s.kind for s in seg.stages)
        print(f"note: the run's stages ({kinds}) stay in Python; the ONNX file holds the network")
    if args.size:
        try:
            size = tuple(int(v) for v in args.size.split(","))
        except ValueError:
            size = ()
        if len(size) != 2 or min(size) < 1:
            raise UserError(f"--size: expected H,W like 352,480, got {args.size!r}")
    else:
        size = tuple(base.config.resize) if base.config.resize else DEFAULT_SIZE
    out = args.out or Path(args.run) / "model.onnx"
    report = export_onnx(
        base.model, out, in_channels=base.in_channels, size=size, dynamic=args.dynamic, name=base.name
    )
    shapes = ", ".join("x".join(map(str, s)) for s in report.checked_shapes)
    kind = "dynamic" if report.dynamic else "fixed"
    print(
        f"wrote {report.path} ({kind} input {'x'.join(map(str, report.input_shape))}); "
        f"ONNX Runtime vs PyTorch max abs diff {report.max_abs_diff:.2e} on {shapes}"
    )
    return 0
