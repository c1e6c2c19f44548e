"""``segscope`` entry point: dispatches to one module per command; user errors exit 2 with one line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = (
    "train", "evaluate", "predict", "models", "segment", "bench", "explain", "refine", "export", "serve",
    "fewshot", "points", "demo",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from segscope import __version__

    parser = argparse.ArgumentParser(
        prog="segscope",
        description="Image segmentation, classical and deep: train, evaluate, predict and compare methods.",
    )
    parser.add_argument("--version", action="version", version=f"segscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"segscope.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"segscope.cli.{name}":
                continue  # command not shipped in this build
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from segscope.errors import TrainingDiverged, UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, TrainingDiverged) as exc:
        print(f"segscope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("segscope: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, permission denied...: name the file, no traceback
        if os.environ.get("SEGSCOPE_DEBUG"):
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"segscope: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
