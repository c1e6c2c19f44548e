"""``segscope.load(run_dir)``: rebuild a fitted Segmenter, classical or deep, from its run directory."""

from __future__ import annotations

from pathlib import Path

from segscope.errors import UserError
from segscope.segmenter import Segmenter, read_segmenter_json


def load(run_dir: str | Path) -> Segmenter:
    """Load what ``segscope train`` (or ``Segmenter.save``) wrote to ``run_dir``."""
    from segscope.methods import _ensure_registered, create_segmenter
    from segscope.registry import REGISTRY

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    meta = read_segmenter_json(run_dir)
    if meta.get("family") == "deep":
        from segscope.deep import DeepSegmenter

        return DeepSegmenter.from_run(run_dir)
    _ensure_registered()
    builder = REGISTRY.get(meta["name"]).builder
    if hasattr(builder, "from_state"):
        return builder.from_state(meta)
    return create_segmenter(meta["name"], meta["num_classes"], **meta.get("options", {}))
