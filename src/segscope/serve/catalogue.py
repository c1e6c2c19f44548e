"""The methods the web page offers: trained runs given on the command line, plus every classical method
that needs no training.

Each is a :class:`Method` with a public id; the page only ever sends ids, so no path from the client
reaches the file system. Segmenters are built on first use (:func:`segscope.load` for a run,
:func:`segscope.create_segmenter` for a classical method) and kept.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segscope.errors import UserError
from segscope.prompts import Prompt
from segscope.segmenter import Segmenter
from segscope.types import Instances

SERVABLE_TASKS = ("binary", "semantic")  # instance output has no per-class legend on the page yet


@dataclass
class Method:
    """One entry of the page's method list."""

    method_id: str
    label: str
    kind: str  # "run" or "classical"
    task: str
    num_classes: int
    classes: list[str]
    prompts: tuple[str, ...] = ()
    paper: str = ""
    run_dir: Path | None = field(default=None, repr=False)
    _segmenter: Segmenter | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def describe(self) -> dict[str, Any]:
        """What the page sees: no file paths."""
        return {
            "id": self.method_id,
            "label": self.label,
            "kind": self.kind,
            "task": self.task,
            "num_classes": self.num_classes,
            "classes": self.classes,
            "prompts": list(self.prompts),
            "paper": self.paper,
        }

    def segmenter(self) -> Segmenter:
        if self._segmenter is None:
            import segscope

            if self.run_dir is not None:
                self._segmenter = segscope.load(self.run_dir)
            else:
                self._segmenter = segscope.create_segmenter(self.method_id, num_classes=self.num_classes)
        return self._segmenter

    def predict(self, image: np.ndarray, prompt: Prompt | None = None) -> np.ndarray:
        """``(H, W)`` class indices for ``image`` (one call at a time per method)."""
        if prompt and not self.prompts:
            raise UserError(f"{self.label} takes no prompt (box or points)")
        with self._lock:
            seg = self.segmenter()
            base = getattr(seg, "base", seg)
            channels = getattr(base, "in_channels", None)
            if channels in (1, 3) and image.shape[2] != channels:
                from segscope.data.images import convert_channels

                image = convert_channels(image, channels)
            out = seg.predict(image, prompt=prompt) if prompt else seg.predict(image)
        if isinstance(out, Instances):
            out = out.to_semantic()
        return np.asarray(out, np.int64)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "run"


class MethodCatalogue:
    """Ordered methods by id: the runs first (as given), then the classical methods by name."""

    def __init__(self, run_dirs: list[str | Path] = (), *, classical: bool | list[str] = True) -> None:
        self.methods: dict[str, Method] = {}
        for run_dir in run_dirs:
            self._add(self._run_method(Path(run_dir)))
        if classical:
            self._add_classical(None if classical is True else list(classical))

    def _add(self, method: Method) -> None:
        mid, k = method.method_id, 2
        while method.method_id in self.methods:
            method.method_id, k = f"{mid}-{k}", k + 1
        self.methods[method.method_id] = method

    def _run_method(self, run_dir: Path) -> Method:
        from segscope.factory import get_entry
        from segscope.run_config import RunConfig

        config = RunConfig.read(run_dir)
        task = str(config.method.get("task", "semantic"))
        if task not in SERVABLE_TASKS:
            raise UserError(
                f"{run_dir}: {config.name} is an {task} method; the page shows semantic runs only"
            )
        k = int(config.model["num_classes"])
        classes = list(config.classes) or [f"class {i}" for i in range(k)]
        entry = get_entry(config.name)
        return Method(
            method_id=f"run-{_slug(run_dir.resolve().parent.name + '-' + run_dir.name)}",
            label=f"{config.name} ({run_dir.name})",
            kind="run",
            task=task,
            num_classes=k,
            classes=classes,
            prompts=tuple(getattr(entry.segmenter, "prompts", ())),
            paper=entry.paper or "",
            run_dir=run_dir,
        )

    def _add_classical(self, names: list[str] | None) -> None:
        from segscope.factory import get_entry, list_models

        for name in names if names is not None else list_models():
            entry = get_entry(name)
            cls = entry.segmenter
            if entry.family != "classical":
                if names is not None:
                    raise UserError(f"{name} is not a classical method: serve a trained run of it")
                continue
            if getattr(cls, "needs_training", False) or getattr(cls, "task", "") not in SERVABLE_TASKS:
                if names is not None:
                    raise UserError(f"{name} needs training (or gives instances): serve a trained run of it")
                continue
            k = 2 if cls.task == "binary" else 3
            classes = ["background", "object"] if k == 2 else [f"region {i}" for i in range(k)]
            self._add(
                Method(
                    method_id=name,
                    label=name,
                    kind="classical",
                    task=cls.task,
                    num_classes=k,
                    classes=classes,
                    prompts=tuple(getattr(cls, "prompts", ())),
                    paper=entry.paper or "",
                )
            )

    def get(self, method_id: str) -> Method | None:
        return self.methods.get(method_id)

    def describe(self) -> list[dict[str, Any]]:
        return [m.describe() for m in self.methods.values()]
