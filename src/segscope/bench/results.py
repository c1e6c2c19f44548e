"""Aggregate a bench's cells: leaderboard (mean ± sd over folds), per-class IoU, failures, paired tests.

Writes ``results.json`` (everything, standard JSON) and ``leaderboard.csv`` beside the cells.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segscope.bench.cell import ERROR, RESULT, strict_json
from segscope.bench.oracle_results import oracle_summary
from segscope.io import write_json_atomic, write_text_atomic
from segscope.metrics.specs import leaderboard_metrics, lower_is_better

LOWER_IS_BETTER = frozenset(lower_is_better())


def collect_results(out: str | Path) -> dict[str, Any]:
    """Read every cell of the bench in ``out`` and aggregate it; write ``results.json`` and
    ``leaderboard.csv``.

    Returns a dict with ``plan`` (``bench.json``), ``metric_keys``, ``primary``, ``leaderboard`` (one
    entry per method, best first: ``<metric>`` and ``<metric>_sd`` over folds -- sd is NaN with one
    fold --, ``fit_seconds``, ``seconds_per_image``, ``num_parameters``, ``folds``, ``failed_folds``),
    ``per_class_iou``, ``errors`` (method -> list of ``{fold, message, traceback}``), ``paired_tests``
    (see :func:`paired_tests`), ``cells`` (method -> list of cell records) and, when the bench ran with
    an oracle, ``oracle`` (:func:`segscope.bench.oracle_results.oracle_summary`: correlations, the
    ``oracle-select`` row -- kept out of ``leaderboard``, which lists real methods only, and written as
    the last row of the semantic board in ``leaderboard.csv`` --, choices and flags).
    """
    out = Path(out)
    plan = json.loads((out / "bench.json").read_text())
    methods = [m for m in plan["methods"] if m not in plan.get("skipped", {})]
    folds = list(plan.get("folds", {}))
    cells: dict[str, list[dict[str, Any]]] = {}
    errors: dict[str, list[dict[str, Any]]] = {}
    for method in methods:
        for fold in folds or sorted(p.name for p in (out / "cells" / method).glob("*")):
            cell = out / "cells" / method / fold
            if (cell / RESULT).is_file():
                cells.setdefault(method, []).append(json.loads((cell / RESULT).read_text()))
            elif (cell / ERROR).is_file():
                record = json.loads((cell / ERROR).read_text())
                errors.setdefault(method, []).append(
                    {"fold": fold, "message": record["message"], "traceback": record.get("traceback", "")}
                )
    binary = len(plan.get("classes", [])) == 2 or any(
        "pixel_error" in c["metrics"] for rows in cells.values() for c in rows
    )
    tasks = plan.get("tasks", {})
    boards = []
    for task in ("semantic", "instance"):
        members = [m for m in methods if (tasks.get(m, "semantic") == "instance") == (task == "instance")]
        if task == "semantic" or any(m in cells for m in members):
            boards.append(
                _board(task, members, cells, errors, binary, plan.get("primary"), plan.get("ndim") == 3)
            )
    first = boards[0] if boards[0]["leaderboard"] or len(boards) == 1 else boards[1]
    semantic = boards[0]  # the oracle compares label maps: semantic and binary methods only
    ranked = [e["method"] for e in semantic["leaderboard"]]
    oracle = oracle_summary(plan, cells, ranked, semantic["metric_keys"], semantic["primary"])
    results = {
        "plan": plan,
        **first,  # the main board's metric_keys, primary, leaderboard and paired_tests at the top level
        "boards": boards,
        "lower_is_better": sorted(LOWER_IS_BETTER),
        "per_class_iou": {m: _mean_per_class(cells[m], "iou") for m in cells},
        "errors": errors,
        "cells": cells,
    }
    if oracle is not None:
        results["oracle"] = oracle
    write_json_atomic(out / "results.json", strict_json(results))
    csv_text = []
    for board in boards:
        select = [oracle["select"]] if oracle and board is semantic else []  # oracle-select: a last row
        csv_text.append(leaderboard_csv(board["leaderboard"] + select, board["metric_keys"]))
    write_text_atomic(out / "leaderboard.csv", "".join(csv_text))
    return results


def _board(
    task: str,
    methods: list[str],
    cells: dict[str, list[dict[str, Any]]],
    errors: dict[str, list[dict[str, Any]]],
    binary: bool,
    primary: str | None,
    volume: bool = False,
) -> dict[str, Any]:
    """One leaderboard (methods of one evaluator kind): ``task``, ``metric_keys``, ``primary``,
    ``leaderboard`` (best first) and ``paired_tests`` on the primary metric (``volume``: the 3-D columns)."""
    keys = leaderboard_metrics(task, binary=binary, volume=volume)
    primary = primary if primary in keys or (primary and task == "semantic") else None
    primary = primary or keys[0]
    if primary not in keys:
        keys.insert(0, primary)
    board = [_leaderboard_entry(m, cells[m], keys, len(errors.get(m, []))) for m in methods if m in cells]
    board.sort(key=lambda e: _sort_value(e[primary], primary))
    tests = paired_tests(
        {m: per_image_values(cells[m], primary) for m in (e["method"] for e in board)}, primary
    )
    return {
        "task": task,
        "metric_keys": keys,
        "primary": primary,
        "leaderboard": board,
        "paired_tests": tests,
    }


def _leaderboard_entry(method: str, rows: list[dict[str, Any]], keys: list[str], failed: int) -> dict:
    entry: dict[str, Any] = {"method": method, "folds": len(rows), "failed_folds": failed}
    for key in [*keys, "fit_seconds", "seconds_per_image"]:
        values = np.array(
            [_number(r["metrics"].get(key) if key in keys else r.get(key)) for r in rows], np.float64
        )
        finite = values[np.isfinite(values)]
        entry[key] = float(finite.mean()) if finite.size else math.nan
        entry[f"{key}_sd"] = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
    entry["num_parameters"] = int(max(r.get("num_parameters", 0) for r in rows))
    return entry


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _sort_value(value: float, key: str) -> float:
    if not math.isfinite(value):
        return math.inf
    return value if key in LOWER_IS_BETTER else -value


def _mean_per_class(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    names = list(rows[0]["metrics"].get(key, {}))
    out = {}
    for name in names:
        values = np.array([_number(r["metrics"][key].get(name)) for r in rows], np.float64)
        out[name] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
    return out


def per_image_values(rows: Sequence[dict[str, Any]], metric: str) -> dict[str, float]:
    """``{"<fold>/<image>": value}`` of one method's per-image ``metric`` over all its folds."""
    return {f"{c['fold']}/{r['name']}": _number(r.get(metric)) for c in rows for r in c["per_image"]}


def paired_tests(per_image: Mapping[str, Mapping[str, float]], metric: str) -> list[dict[str, Any]]:
    """Wilcoxon signed-rank test of the best method against each other one, paired by test image.

    Parameters
    ----------
    per_image : method -> ``{"<fold>/<image>": value}``, best method first (the leaderboard's order).
    metric : the metric compared; lower is better for errors (see ``LOWER_IS_BETTER``).

    Returns
    -------
    One dict per other method: ``best``, ``other``, ``metric``, ``n`` (images scored by both, NaN
    dropped), ``best_wins`` / ``other_wins`` / ``ties`` (images), ``median_difference`` (best minus
    other), ``statistic`` and ``p_value`` of :func:`scipy.stats.wilcoxon` with its defaults (two-sided;
    zero differences dropped), ``None`` when every difference is zero or n < 2.

    References
    ----------
    Wilcoxon, "Individual comparisons by ranking methods", Biometrics Bulletin 1945. Demšar,
    "Statistical comparisons of classifiers over multiple data sets", JMLR 2006.
    """
    from scipy.stats import wilcoxon

    methods = list(per_image)
    if len(methods) < 2:
        return []
    best = methods[0]
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    tests = []
    for other in methods[1:]:
        common = [k for k in per_image[best] if k in per_image[other]]
        a = np.array([per_image[best][k] for k in common], np.float64)
        b = np.array([per_image[other][k] for k in common], np.float64)
        keep = np.isfinite(a) & np.isfinite(b)
        a, b = a[keep], b[keep]
        diff = a - b
        statistic = p_value = None
        if len(a) >= 2 and np.any(diff != 0):
            res = wilcoxon(a, b)
            statistic, p_value = float(res.statistic), float(res.pvalue)
        tests.append(
            {
                "best": best,
                "other": other,
                "metric": metric,
                "n": int(len(a)),
                "best_wins": int(np.sum(sign * diff < 0)),
                "other_wins": int(np.sum(sign * diff > 0)),
                "ties": int(np.sum(diff == 0)),
                "median_difference": float(np.median(diff)) if len(a) else math.nan,
                "statistic": statistic,
                "p_value": p_value,
            }
        )
    return tests


def leaderboard_csv(board: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    """The leaderboard as CSV: method, folds, each metric's mean and sd, times, parameter count."""
    columns = [
        "method",
        "folds",
        "failed_folds",
        *[c for k in keys for c in (k, f"{k}_sd")],
        "fit_seconds",
        "seconds_per_image",
        "num_parameters",
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for entry in board:
        writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in entry.items()})
    return buf.getvalue()
