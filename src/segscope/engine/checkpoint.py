"""Checkpoints: weights in safetensors, resolved config and metrics in JSON, all written atomically.

A run directory holds ``last.safetensors`` + ``last.json`` + ``last_state.pt`` (optimizer, scheduler and
loop state, for ``--resume``) and ``best.safetensors`` + ``best.json``. The weights file is written
before its JSON; both carry the epoch, so a crash between the two is detected on load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from segscope.errors import UserError
from segscope.io import atomic_path, write_json_atomic


def save_weights(path: Path, model: torch.nn.Module, *, epoch: int) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"epoch": str(epoch)})


def load_weights(path: Path, model: torch.nn.Module) -> int:
    """Load ``path`` into ``model``; return the epoch recorded in the file."""
    from safetensors import safe_open

    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            epoch = int((f.metadata() or {}).get("epoch", -1))
        state = load_file(str(path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: cannot read weights ({str(exc).splitlines()[0][:120]})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(
            f"{path}: weights do not fit the model (missing {len(missing)}, "
            f"unexpected {len(unexpected)} keys, e.g. {(missing or unexpected)[0]})"
        )
    return epoch


def save_checkpoint(
    run_dir: Path,
    tag: str,
    model: torch.nn.Module,
    info: dict[str, Any],
    *,
    epoch: int,
    trainer_state: dict[str, Any] | None = None,
) -> None:
    """Write ``<tag>.safetensors``, then ``<tag>_state.pt`` (if given), then ``<tag>.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_weights(run_dir / f"{tag}.safetensors", model, epoch=epoch)
    if trainer_state is not None:
        with atomic_path(run_dir / f"{tag}_state.pt") as tmp:
            torch.save(trainer_state, tmp)
    write_json_atomic(run_dir / f"{tag}.json", {**info, "epoch": epoch})


def read_checkpoint_info(run_dir: Path, tag: str) -> dict[str, Any]:
    path = run_dir / f"{tag}.json"
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: corrupt checkpoint info ({exc.msg})") from None


def load_trainer_state(run_dir: Path, tag: str = "last") -> dict[str, Any]:
    path = run_dir / f"{tag}_state.pt"
    if not path.is_file():
        raise UserError(f"{path}: no resumable state in {run_dir}")
    return torch.load(path, map_location="cpu", weights_only=True)
