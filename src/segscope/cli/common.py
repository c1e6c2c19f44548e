"""Argument helpers shared by several commands."""

from __future__ import annotations

import argparse
import re
from typing import Any

from segscope.errors import UserError


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"10m"``, ``"1.5h"`` -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 90s, 10m, 1h)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def parse_value(text: str) -> Any:
    """YAML-style scalar/list parsing for ``key=value`` options (``3``, ``0.1``, ``true``, ``[1, 2]``)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["base_channels=16", "lr=3e-4"]`` -> ``{"base_channels": 16, "lr": 0.0003}``."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"option {pair!r} is not of the form key=value")
        out[key.strip().replace("-", "_")] = parse_value(value)
    return out


def add_data_arguments(parser: argparse.ArgumentParser, *, split: str | None = None) -> None:
    from segscope.data import FORMATS

    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder")
    parser.add_argument("--format", default="auto", choices=FORMATS, help="dataset layout (default: detect)")
    parser.add_argument(
        "--split", default=split, help=f"split to use (default: {split or 'train, else all'})"
    )
    add_volume_arguments(parser)


def add_volume_arguments(parser: argparse.ArgumentParser) -> None:
    """``--spacing`` and ``--blocks``: the options of a volume dataset (``--format volume``)."""
    parser.add_argument(
        "--spacing",
        type=parse_spacing,
        metavar="Z,Y,X",
        help="volumes: voxel spacing (z, y, x), overriding the files' (e.g. 50,4,4 for ISBI's sections)",
    )
    parser.add_argument(
        "--blocks",
        type=int,
        metavar="N",
        help="volumes: contiguous z-blocks per volume, the samples folds split "
        "(default: 1, or 5 for a single volume)",
    )


def parse_spacing(text: str) -> list[float]:
    """``"50,4,4"`` -> ``[50.0, 4.0, 4.0]``."""
    try:
        values = [float(v) for v in str(text).replace("x", ",").split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or min(values, default=0) <= 0:
        raise argparse.ArgumentTypeError(f"invalid spacing {text!r} (three positive numbers Z,Y,X)")
    return values


def volume_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``open_dataset`` keywords that ``--spacing`` / ``--blocks`` ask for (empty when unset)."""
    return {k: v for k in ("spacing", "blocks") if (v := getattr(args, k, None)) is not None}
