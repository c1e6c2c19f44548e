"""The run directory's one config file, ``segmenter.json``, in typed sections.

========== ==================================================================================================
section    holds
========== ==================================================================================================
method     ``name`` (registry name), ``family``, ``task``, ``ndim``
model      what rebuilds the predictor: ``num_classes``, ``in_channels``, ``options`` (the builder's keyword
           arguments), and per family ``weights`` (the checkpoint file holding the weights, e.g.
           ``best.safetensors``), ``input`` (normalisation, resize) and ``dtype``, or the tuned ``params``
           and learned ``state`` of a classical method
train      the :class:`~segscope.engine.TrainConfig` (deep) or the tuning options (classical)
decision   the rule that turns scores into labels and its fitted state (:mod:`segscope.imbalance.decision`)
stages     post-processing stages in order, each ``{"kind": ..., **options}`` (:mod:`segscope.stages`)
========== ==================================================================================================

plus ``classes`` and ``history`` (per-epoch or per-trial log). A predictor is rebuilt from ``method``,
``model`` and ``stages`` alone (and ``decision`` for deep models): the training sections are a record.
Each checkpoint is one weights file; ``model.weights`` names the one the predictor uses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segscope.errors import UserError
from segscope.io import write_json_atomic

CONFIG_FILE = "segmenter.json"
FORMAT_VERSION = 2
SECTIONS = ("method", "model", "train", "decision", "stages")


@dataclass
class RunConfig:
    """The content of ``segmenter.json`` (see the module docstring)."""

    method: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.method["name"])

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, **asdict(self)}

    def write(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / CONFIG_FILE
        write_json_atomic(path, self.to_dict())
        return path

    @classmethod
    def read(cls, run_dir: str | Path) -> RunConfig:
        """Read ``run_dir/segmenter.json``; one-line :class:`UserError` for a missing, corrupt or old file."""
        path = Path(run_dir) / CONFIG_FILE
        if not Path(run_dir).is_dir():
            raise UserError(f"{run_dir}: run directory not found")
        if not path.is_file():
            raise UserError(f"{run_dir}: not a segscope run (no {CONFIG_FILE})")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: corrupt run config ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise UserError(
                f"{path}: written by an older segscope (run config format {data.get('format', 1)}, "
                f"this version reads {FORMAT_VERSION}); retrain the run"
            )
        missing = [k for k in ("method", "model") if k not in data]
        if missing:
            raise UserError(f"{path}: run config lacks the section(s) {', '.join(missing)}")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def weights_path(run_dir: str | Path) -> Path:
    """The weights file a run's predictor uses (``model.weights`` of its config)."""
    config = RunConfig.read(run_dir)
    name = config.model.get("weights")
    if not name:
        raise UserError(
            f"{run_dir}: run of {config.name} has no weights (a {config.method.get('family')} method)"
        )
    return Path(run_dir) / name
