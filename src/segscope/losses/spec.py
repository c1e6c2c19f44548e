"""Loss specs such as ``"ce+0.5*lovasz"`` or ``"focal:gamma=2+dice"``, parsed into a :class:`CompositeLoss`.

Grammar: terms joined by ``+``, each ``[coef*]name[:key=value,key=value]``; the total is the
coefficient-weighted sum. Values cannot contain ``+`` or ``,``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from segscope.errors import UserError
from segscope.losses import modules, triplet


@dataclass(frozen=True)
class Option:
    """One ``key=value`` of a term: ``parse`` turns the text into a value or raises ``ValueError(hint)``."""

    parse: Callable[[str], Any]
    hint: str


def _number(kind: type, lo: float, hi: float = math.inf, *, lo_open: bool = False) -> Option:
    def parse(text: str) -> Any:
        value = kind(text)
        if not math.isfinite(value) or value < lo or (lo_open and value == lo) or value > hi:
            raise ValueError
        return value

    if hi == math.inf:
        bound = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        bound = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    return Option(parse, f"{'an integer' if kind is int else 'a number'} {bound}")


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError


def _choice(*choices: str) -> Option:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError
        return text

    return Option(parse, f"one of {', '.join(choices)}")


@dataclass(frozen=True)
class LossKind:
    """A spec name: its module, its options and whether the class-weight tensor applies."""

    module: type[nn.Module]
    options: dict[str, Option] = field(default_factory=dict)
    weighted: bool = False


_NONNEG = _number(float, 0.0)
KINDS: dict[str, LossKind] = {
    "ce": LossKind(modules.CrossEntropyLoss, {"label_smoothing": _number(float, 0.0, 1.0)}, weighted=True),
    "dice": LossKind(modules.DiceLoss, {"smooth": _NONNEG}),
    "gdice": LossKind(modules.GeneralizedDiceLoss, {"smooth": _NONNEG}),
    "tversky": LossKind(modules.TverskyLoss, {"alpha": _NONNEG, "beta": _NONNEG, "smooth": _NONNEG}),
    "focal": LossKind(modules.FocalLoss, {"gamma": _NONNEG}, weighted=True),
    "lovasz": LossKind(
        modules.LovaszSoftmaxLoss,
        {"per_image": Option(_bool, "true or false"), "classes": _choice("present", "all")},
    ),
    "boundary": LossKind(modules.BoundaryLoss),
    "boundary_ce": LossKind(
        modules.BoundaryWeightedCrossEntropy,
        {"w0": _NONNEG, "sigma": _number(float, 0.0, lo_open=True), "cells": _number(int, 0)},
        weighted=True,
    ),
    "ohem": LossKind(
        modules.OHEMCrossEntropy,
        {
            "thresh": _number(float, 0.0, 1.0),
            "min_kept": _number(int, 0),
            "keep": _number(float, 0.0, 1.0, lo_open=True),
        },
        weighted=True,
    ),
    "cost": LossKind(modules.CostSensitiveLoss, {"matrix": Option(str, "a JSON file path")}),
    "triplet": LossKind(
        triplet.TripletLoss,
        {
            "margin": _number(float, 0.0, lo_open=True),
            "pixels": _number(int, 2),
            "mining": _choice(*triplet.MINING),
            "normalize": Option(_bool, "true or false"),
        },
    ),
}
LOSSES = tuple(KINDS)

_TERM = re.compile(r"^(?:(?P<coef>[^*:]+)\*)?(?P<name>[A-Za-z_]\w*)(?::(?P<options>.*))?$")


@dataclass(frozen=True)
class Term:
    """One parsed term: ``coef * name(**options)``."""

    coef: float
    name: str
    options: dict[str, Any]


def parse_spec(spec: str) -> list[Term]:
    """The terms of ``spec``; ``UserError`` (one line naming the valid choices) on any mistake."""
    texts = [t.strip() for t in str(spec).split("+")]
    if not spec or not str(spec).strip() or any(not t for t in texts):
        raise UserError(f"empty loss spec or term in {spec!r}; write e.g. ce, ce+dice, ce+0.5*lovasz")
    terms = []
    for text in texts:
        m = _TERM.match(text)
        if m is None:
            raise UserError(
                f"cannot parse loss term {text!r} in {spec!r}; write [coef*]name[:key=value,...], e.g. "
                "0.5*tversky:alpha=0.3,beta=0.7"
            )
        name = m["name"].lower()
        if name not in KINDS:
            raise UserError(f"unknown loss {m['name']!r} in {spec!r}; choose from {', '.join(LOSSES)}")
        coef = 1.0
        if m["coef"] is not None:
            try:
                coef = float(m["coef"])
            except ValueError:
                coef = math.nan
            if not math.isfinite(coef) or coef <= 0:
                raise UserError(f"loss coefficient {m['coef'].strip()!r} in {spec!r} must be a number > 0")
        terms.append(Term(coef, name, _parse_options(name, m["options"], spec)))
    return terms


def _parse_options(name: str, text: str | None, spec: str) -> dict[str, Any]:
    kind = KINDS[name]
    valid = ", ".join(kind.options) or "none"
    out: dict[str, Any] = {}
    if text is None:
        return out
    for item in text.split(","):
        key, eq, raw = (s.strip() for s in item.partition("="))
        if key not in kind.options:
            raise UserError(f"loss {name!r} has no option {key!r} (in {spec!r}); its options: {valid}")
        if not eq or not raw:
            raise UserError(f"loss option {name}:{key} needs a value, as {key}=<value> (in {spec!r})")
        if key in out:
            raise UserError(f"loss option {name}:{key} given twice (in {spec!r})")
        option = kind.options[key]
        try:
            out[key] = option.parse(raw)
        except ValueError:
            raise UserError(f"loss option {name}:{key}={raw!r} must be {option.hint} (in {spec!r})") from None
    return out


def build_loss(
    spec: str,
    *,
    ignore_index: int = 255,
    weight: torch.Tensor | None = None,
    cost_matrix: Any = None,
) -> modules.CompositeLoss:
    """A loss module ``loss(logits, target) -> scalar`` from a spec (module docstring; ``docs/losses.md``).

    ``weight`` (per-class, e.g. from :func:`segscope.losses.class_weights`) goes to the terms that take
    class weights: ce, focal, ohem, boundary_ce. ``cost_matrix`` (``(C, C)`` array-like) serves ``cost``
    terms without ``matrix=path.json``. Examples: ``"ce"``, ``"ce+dice"``, ``"ce+0.5*lovasz"``,
    ``"ohem:thresh=0.7,min_kept=10000"``, ``"focal:gamma=2+dice"``, ``"tversky:alpha=0.3,beta=0.7"``,
    ``"ce+cost:matrix=costs.json"``, ``"gdice+0.01*boundary"``.
    """
    terms = parse_spec(spec)
    default_cost = None if cost_matrix is None else _cost_tensor(cost_matrix)
    built = []
    for term in terms:
        kind = KINDS[term.name]
        options = dict(term.options)
        if kind.weighted:
            options["weight"] = weight
        if term.name == "cost":
            path = options.pop("matrix", None)
            matrix = default_cost if path is None else _cost_tensor(path)
            if matrix is None:
                raise UserError(
                    "loss 'cost' needs a cost matrix: cost:matrix=path.json or build_loss(cost_matrix=...)"
                )
            options["cost_matrix"] = matrix
        built.append((term.coef, kind.module(ignore_index=ignore_index, **options)))
    return modules.CompositeLoss(built, spec=spec)


def _cost_tensor(source: Any) -> torch.Tensor:
    """A square cost matrix (nested list, array or JSON/YAML file; see
    :func:`segscope.imbalance.cost.load_cost_matrix`) as a float32 tensor."""
    from segscope.imbalance.cost import load_cost_matrix

    return torch.tensor(load_cost_matrix(source), dtype=torch.float32)
