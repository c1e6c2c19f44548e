"""Validation schemes as index splits, built with scikit-learn's splitters and saved to JSON for reuse.

Specs: ``kfold:K``, ``group-kfold:K`` (groups such as the CamVid sequence or a volume id), ``loo``
(leave-one-out), ``lpo:P`` (leave-P-out, refused above ``max_splits``) and ``holdout:F`` (one split with
a seeded fraction F held out).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from segscope.errors import UserError
from segscope.io import write_json_atomic


@dataclass(frozen=True)
class Split:
    """One fold: indices into the dataset for training and for testing."""

    name: str
    train: list[int]
    test: list[int]


def make_splits(
    n: int, spec: str, *, groups: list[str] | None = None, seed: int = 0, max_splits: int = 50
) -> list[Split]:
    """The splits of ``n`` samples that ``spec`` describes (see module docstring)."""
    from sklearn.model_selection import GroupKFold, KFold, LeaveOneOut, LeavePOut

    kind, _, arg = spec.partition(":")
    idx = np.arange(n)
    if kind == "holdout":
        frac = _number(arg or "0.2", spec, float)
        if not 0 < frac < 1:
            raise UserError(f"--cv {spec}: the held-out fraction must be in (0, 1)")
        order = np.random.default_rng(seed).permutation(n)
        k = max(1, round(n * frac))
        return [Split("holdout", sorted(order[k:].tolist()), sorted(order[:k].tolist()))]
    if kind == "kfold":
        k = _number(arg or "5", spec, int)
        if not 2 <= k <= n:
            raise UserError(f"--cv {spec}: need 2 <= K <= {n} (the number of images)")
        splitter, it = KFold(k, shuffle=True, random_state=seed), None
    elif kind == "group-kfold":
        k = _number(arg or "5", spec, int)
        distinct = len(set(groups or []))
        if groups is None or distinct < k:
            raise UserError(f"--cv {spec}: needs at least {k} groups, the dataset has {distinct}")
        splitter, it = GroupKFold(k), None
    elif kind == "loo":
        splitter, it = LeaveOneOut(), None
        if n > max_splits:
            raise UserError(f"--cv loo: {n} splits exceed the cap of {max_splits}; use kfold")
    elif kind == "lpo":
        p = _number(arg or "2", spec, int)
        count = math.comb(n, p)
        if count > max_splits:
            raise UserError(f"--cv {spec}: C({n}, {p}) = {count} splits exceed the cap of {max_splits}")
        splitter, it = LeavePOut(p), None
    else:
        raise UserError(
            f"unknown validation scheme {spec!r}; use kfold:K, group-kfold:K, loo, lpo:P or holdout:F"
        )
    it = splitter.split(idx, groups=groups)
    return [Split(f"fold{i}", sorted(tr.tolist()), sorted(te.tolist())) for i, (tr, te) in enumerate(it)]


def _number(text: str, spec: str, kind):
    try:
        return kind(text)
    except ValueError:
        raise UserError(f"--cv {spec}: {text!r} is not a number") from None


def save_splits(path: str | Path, splits: list[Split], *, spec: str, n: int) -> None:
    write_json_atomic(path, {"spec": spec, "n": n, "splits": [asdict(s) for s in splits]})


def load_splits(path: str | Path) -> tuple[str, int, list[Split]]:
    data = json.loads(Path(path).read_text())
    return data["spec"], data["n"], [Split(**s) for s in data["splits"]]
