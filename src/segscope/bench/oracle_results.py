"""What a bench's per-fold quality oracles say: label-free quality against the truth, per-image method choice
(the ``oracle-select`` pseudo-method) and the images to look at first.

The oracle predicts the Dice (or IoU) of a label map over the classes it scores. The per-image true metric
it is compared with (:func:`quality_metric`) is the closest one every cell records per image: the
foreground Dice (IoU) on binary data when the oracle scores the foreground only (its default), else the
per-image mean IoU (the cells keep no per-image mean Dice; for a Dice oracle, mean IoU orders label maps
much as mean Dice does, so read its Spearman correlation first).

Only semantic and binary methods take part (an instance method's per-image metrics are of another kind);
each test image is keyed ``"<fold>/<stem>"`` as in :func:`segscope.bench.results.per_image_values`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SELECT = "oracle-select"
FLAGS_SHOWN = 10


def quality_metric(plan: Mapping[str, Any]) -> str:
    """The per-image metric closest to what the bench's oracles predict (see the module notes)."""
    oracles = list((plan.get("oracles") or {}).values())
    quality = oracles[0].get("quality", "dice") if oracles else "dice"
    classes = oracles[0].get("classes", [1]) if oracles else [1]
    if len(plan.get("classes", [])) == 2 and list(classes) == [1]:
        return "foreground_iou" if quality == "iou" else "foreground_dice"
    return "mean_iou"


def quality_pairs(rows: Sequence[Mapping[str, Any]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted, true)``: one method's predicted quality and true ``metric`` of every test image both
    are known for (cell records of all its folds)."""
    pairs = [
        (_number(r.get("predicted_quality")), _number(r.get(metric))) for c in rows for r in c["per_image"]
    ]
    pairs = [(p, t) for p, t in pairs if math.isfinite(p) and math.isfinite(t)]
    predicted, true = (np.array(v, np.float64) for v in zip(*pairs)) if pairs else (np.zeros(0),) * 2
    return predicted, true


def correlation(predicted: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    """Pearson and Spearman correlation (:mod:`scipy.stats`) with ``n``; ``None`` below 3 images or when
    either side is constant."""
    from scipy.stats import pearsonr, spearmanr

    n = int(len(predicted))
    if n < 3 or np.ptp(predicted) == 0 or np.ptp(true) == 0:
        return {"pearson": None, "spearman": None, "n": n}
    return {
        "pearson": float(pearsonr(predicted, true).statistic),
        "spearman": float(spearmanr(predicted, true).statistic),
        "n": n,
    }


def oracle_summary(
    plan: Mapping[str, Any],
    cells: Mapping[str, list[dict[str, Any]]],
    methods: Sequence[str],
    metric_keys: Sequence[str],
    primary: str,
) -> dict[str, Any] | None:
    """The oracle section of ``results.json``, or ``None`` when no cell of ``methods`` (best first, the
    order that breaks ties) holds a predicted quality.

    Keys: ``metric`` (the true per-image metric, :func:`quality_metric`), ``correlation`` (method ->
    Pearson / Spearman / n), ``select`` (the ``oracle-select`` leaderboard row: for each fold, the mean
    over its test images of the per-image metrics of the method the oracle rated best on each image; then
    mean ± sd over folds), ``choices`` (``"<fold>/<stem>"`` -> chosen method), ``choice_counts``,
    ``gain`` (mean true metric of the choice minus that of the best single method, on the images every
    method was scored on: ``value``, ``best_single``, ``n``, ``means`` per method) and ``flags``
    (every image, lowest best predicted quality first: ``fold``, ``image``, ``best_quality``, ``method``).
    """
    from segscope.oracle.quality import choose_per_image, flag_images

    rows = {
        m: {f"{c['fold']}/{r['name']}": r for c in cells.get(m, []) for r in c["per_image"]} for m in methods
    }
    scored = [m for m in methods if any(r.get("predicted_quality") is not None for r in rows[m].values())]
    if not scored:
        return None
    metric = quality_metric(plan)
    choices: dict[str, str] = {}
    best_quality: dict[str, float] = {}
    for key in dict.fromkeys(k for m in scored for k in rows[m]):
        qualities = {m: _number(rows[m][key].get("predicted_quality")) for m in scored if key in rows[m]}
        qualities = {m: q for m, q in qualities.items() if math.isfinite(q)}
        if qualities:
            choices[key] = choose_per_image(qualities)
            best_quality[key] = qualities[choices[key]]
    chosen_rows = {key: rows[m][key] for key, m in choices.items()}
    common = [k for k in choices if all(k in rows[m] for m in scored)]
    means = {m: _mean([rows[m][k].get(metric) for k in common]) for m in scored}
    finite = {m: v for m, v in means.items() if math.isfinite(v)}
    best_single = max(finite, key=finite.get) if finite else None
    select_mean = _mean([chosen_rows[k].get(metric) for k in common])
    flags = []
    for key, quality in flag_images(best_quality):
        fold, _, image = key.partition("/")
        flags.append({"fold": fold, "image": image, "best_quality": quality, "method": choices[key]})
    return {
        "metric": metric,
        "correlation": {m: correlation(*quality_pairs(cells[m], metric)) for m in scored},
        "select": select_entry(chosen_rows, [*dict.fromkeys([*metric_keys, primary, metric])]),
        "choices": choices,
        "choice_counts": {m: sum(v == m for v in choices.values()) for m in scored},
        "gain": {
            "value": select_mean - means[best_single] if best_single else math.nan,
            "best_single": best_single,
            "n": len(common),
            "select_mean": select_mean,
            "means": means,
        },
        "flags": flags,
    }


def select_entry(chosen_rows: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """The ``oracle-select`` leaderboard row: per fold, the mean of each per-image metric over the chosen
    rows; then mean and sd over folds (sd NaN with one fold), as the other rows' fold values are."""
    by_fold: dict[str, list[Mapping[str, Any]]] = {}
    for key, row in chosen_rows.items():
        by_fold.setdefault(key.partition("/")[0], []).append(row)
    entry: dict[str, Any] = {
        "method": SELECT,
        "pseudo": True,
        "aggregation": "mean of per-image values",
        "folds": len(by_fold),
        "failed_folds": 0,
        "images": len(chosen_rows),
        "num_parameters": 0,
    }
    for key in [*keys, "fit_seconds", "seconds_per_image"]:
        folds = np.array([_mean([r.get(key) for r in fold]) for fold in by_fold.values()], np.float64)
        folds = folds[np.isfinite(folds)]
        entry[key] = float(folds.mean()) if folds.size else math.nan
        entry[f"{key}_sd"] = float(folds.std(ddof=1)) if folds.size > 1 else math.nan
    return entry


def _mean(values: Sequence[Any]) -> float:
    array = np.array([_number(v) for v in values], np.float64)
    array = array[np.isfinite(array)]
    return float(array.mean()) if array.size else math.nan


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)
