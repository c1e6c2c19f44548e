"""The bench report: one self-contained HTML page comparing every method of a bench side by side.

Sections: leaderboard (mean ± sd over folds, sortable), failures and skipped methods, paired Wilcoxon
tests with a per-image box plot, label-free quality (with ``--oracle``: the oracle against the truth,
the oracle-select row, the images to look at first), per-class IoU (table and heat map), confusion matrices,
learning curves of the deep methods, a gallery (input, ground truth, every method's overlay), per-fold
scores, and the machine, versions and command that reproduce it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from segscope.bench.results import LOWER_IS_BETTER, collect_results, per_image_values
from segscope.io import write_text_atomic
from segscope.metrics.specs import metric_help
from segscope.report import figures
from segscope.report.fewshot_report import RESULTS as FEWSHOT_RESULTS
from segscope.report.fewshot_report import fewshot_section
from segscope.report.html import esc, figure_block, fmt, img_tag, page, swatches
from segscope.report.oracle_report import SELECT_NOTE, oracle_section

SORT_JS = """
document.querySelectorAll('table.sortable').forEach(table => {
  table.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
    const body = table.tBodies[0];
    const asc = th.dataset.dir !== 'asc';
    table.querySelectorAll('th').forEach(h => {
      delete h.dataset.dir;
      h.textContent = h.textContent.replace(/ [▲▼]$/, '');
    });
    th.dataset.dir = asc ? 'asc' : 'desc';
    th.textContent += asc ? ' ▲' : ' ▼';
    const key = row => {
      const cell = row.cells[col];
      const v = cell.dataset.v !== undefined ? parseFloat(cell.dataset.v) : NaN;
      return isNaN(v) ? (cell.dataset.v !== undefined ? null : cell.textContent.trim().toLowerCase()) : v;
    };
    const rows = [...body.rows];
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === null || y === null) return (x === null) - (y === null);  // missing values last
      return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1);
    });
    rows.forEach(r => body.appendChild(r));
  }));
});
"""


def render_bench_report(
    out: str | Path, *, results: dict[str, Any] | None = None, thumbnail: int = 256
) -> Path:
    """Write ``out/report.html`` for the bench in ``out`` (collecting its results unless given).

    ``thumbnail`` is the longest side, in pixels, of the gallery images embedded in the page.
    """
    out = Path(out)
    res = results if results is not None else collect_results(out)
    plan = res["plan"]
    boards = res.get("boards") or [res]  # one leaderboard per evaluator kind (semantic, instance)
    methods = [e["method"] for b in boards for e in b["leaderboard"]]
    semantic = [m for m in methods if res["per_class_iou"].get(m)]  # sections built from the metrics present
    protocol = f"--split {plan['split']}" if plan.get("split") else f"--cv {plan.get('cv')}"
    folds = plan.get("folds", {})
    body = [
        f"<h1>segscope bench — {esc(Path(plan['data']).name)}</h1>",
        f"<p class='meta'>{esc(plan['data'])} · {len(plan.get('classes', []))} classes · {esc(protocol)} "
        f"({len(folds)} fold{'s' * (len(folds) != 1)}, seed {plan.get('seed', 0)}) · fit budget "
        f"{fmt(plan['time_budget_s'], 0)} s per method and fold · hold-out {plan.get('holdout', 0):g} · "
        f"{esc(plan.get('environment', {}).get('date', ''))}</p>",
    ]
    for board in boards:
        if board["leaderboard"] or len(boards) == 1:
            title = "Leaderboard" if len(boards) == 1 else f"Leaderboard: {board['task']} methods"
            body += _leaderboard({**res, **board}, title)
    body += _failures(res)
    for board in boards:
        body += _paired({**res, **board})
    body += oracle_section(res)
    if semantic:
        body += _per_class(res, semantic)
        body += _confusions(res, semantic)
    if methods:
        body += _curves(res, methods)
        body += _gallery(out, res, methods, thumbnail)
        body += _per_fold(res, methods)
    if (out / FEWSHOT_RESULTS).is_file():  # `segscope fewshot evaluate --out` this bench folder
        body += fewshot_section(out, json.loads((out / FEWSHOT_RESULTS).read_text()))
    body += _reproduce(plan)
    path = out / "report.html"
    write_text_atomic(path, page(f"segscope bench: {Path(plan['data']).name}", body, script=SORT_JS))
    return path


def _better(key: str) -> str:
    return "↓" if key in LOWER_IS_BETTER else "↑"


def _leaderboard(res: dict[str, Any], title: str = "Leaderboard") -> list[str]:
    keys, board, primary = res["metric_keys"], res["leaderboard"], res["primary"]
    select = res.get("oracle", {}).get("select") if res.get("task", "semantic") == "semantic" else None
    note = SELECT_NOTE if select else ""
    parts = [
        f"<h2>{esc(title)}</h2>",
        f"<p class='meta'>ranked by {esc(primary)}; mean ± sd over folds (sd needs two folds); best value "
        f"per column in bold green; ↑ higher is better, ↓ lower is better; click a header to sort.{note}</p>",
    ]
    if not board:
        return [*parts, "<p class='err'>No method finished a fold.</p>"]
    best = {}
    for key in [*keys, "fit_seconds", "seconds_per_image"]:
        values = [e[key] for e in board if np.isfinite(e[key])]
        if len(set(values)) > 1:  # a tie across every method marks nothing
            best[key] = min(values) if key in LOWER_IS_BETTER else max(values)
    head = "".join(f"<th title='{esc(metric_help(k))}'>{esc(k)} {_better(k)}</th>" for k in keys)
    parts.append(
        "<div class='scroll'><table class='sortable' id='leaderboard'><thead><tr><th>#</th>"
        f"<th class='text'>method</th><th class='text'>family</th><th>folds</th>{head}"
        "<th title='fit (training or tuning) time per fold'>fit s ↓</th>"
        "<th title='prediction time per test image'>s / image ↓</th><th>parameters</th></tr></thead><tbody>"
    )
    for rank, e in enumerate(board + ([select] if select else []), 1):
        family = "oracle (per image)" if e.get("pseudo") else _family(e["method"])
        folds = f"{e['folds']}" + (
            f" <span class='err'>({e['failed_folds']} failed)</span>" if e["failed_folds"] else ""
        )
        pseudo = bool(e.get("pseudo"))  # oracle-select: means of its chosen per-image values, not ranked
        cells = [
            f"<td data-v='{'' if pseudo else rank}'>{'–' if pseudo else rank}</td>",
            f"<td class='text'>{esc(e['method'])}</td>",
            f"<td class='text'>{esc(family)}</td>",
            f"<td data-v='{e['folds']}'>{folds}</td>",
        ]
        for key in [*keys, "fit_seconds", "seconds_per_image"]:
            digits = {"fit_seconds": 1, "seconds_per_image": 3}.get(key, 4)
            mark = " class='best'" if key in best and e[key] == best[key] and not pseudo else ""
            sd = e.get(f"{key}_sd")
            sd_text = (
                f" <span class='sd'>± {fmt(sd, digits)}</span>" if sd is not None and np.isfinite(sd) else ""
            )
            value = e[key] if np.isfinite(e[key]) else ""
            cells.append(f"<td data-v='{value}'{mark}>{fmt(e[key], digits)}{sd_text}</td>")
        cells.append(f"<td data-v='{e['num_parameters']}'>{fmt(e['num_parameters'])}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table></div>")
    return parts


def _family(method: str) -> str:
    from segscope.registry import REGISTRY

    return REGISTRY.get(method).family if method in REGISTRY else ""


def _failures(res: dict[str, Any]) -> list[str]:
    parts = []
    errors = res["errors"]
    if errors:
        parts.append(
            "<h2 class='err'>Failures</h2><p class='meta'>These cells raised; the other cells ran on. "
            "Fix the cause and run the same command again: failed cells are retried, finished ones kept."
            "</p><table><tr><th>method</th><th class='text'>fold</th><th class='text'>error</th></tr>"
        )
        for method, rows in errors.items():
            for row in rows:
                parts.append(
                    f"<tr><td>{esc(method)}</td><td class='text'>{esc(row['fold'])}</td><td class='text err'>"
                    f"{esc(row['message'])}<details><summary>traceback</summary><pre>{esc(row['traceback'])}"
                    "</pre></details></td></tr>"
                )
        parts.append("</table>")
    for method, why in res["plan"].get("skipped", {}).items():
        parts.append(f"<p class='meta'>Skipped <b>{esc(method)}</b>: {esc(why)}.</p>")
    return parts


def _paired(res: dict[str, Any]) -> list[str]:
    tests, primary = res["paired_tests"], res["primary"]
    if not tests:
        return []
    lower = primary in LOWER_IS_BETTER
    parts = [
        "<h2>Paired comparison</h2>",
        "<p class='meta'>Wilcoxon signed-rank test (two-sided) on per-image "
        f"{esc(primary)}: the leaderboard's best method against each other one, paired by test image. "
        "n = images scored by both; a small p-value says the per-image differences lean consistently one "
        "way, the median difference says by how much "
        f"({'negative' if lower else 'positive'} = the best method is better). With many rows, a few "
        "small p-values arise by chance: multiply by the number of rows (Bonferroni) for a strict reading."
        "</p><table><tr><th class='text'>best</th><th class='text'>vs</th><th>n</th><th>best better</th>"
        "<th>other better</th><th>ties</th><th>median difference</th><th>W</th><th>p-value</th></tr>",
    ]
    for t in tests:
        p = t["p_value"]
        p_text = "–" if p is None else f"{p:.3g}"
        strong = " class='best'" if p is not None and p < 0.05 else ""
        parts.append(
            f"<tr><td class='text'>{esc(t['best'])}</td><td class='text'>{esc(t['other'])}</td>"
            f"<td>{t['n']}</td><td>{t['best_wins']}</td><td>{t['other_wins']}</td><td>{t['ties']}</td>"
            f"<td>{t['median_difference']:+.4f}</td><td>{fmt(t['statistic'], 1)}</td>"
            f"<td{strong}>{p_text}</td></tr>"
        )
    parts.append("</table>")
    values = {m: list(per_image_values(res["cells"][m], primary).values()) for m in _methods(res)}
    fig = figures.per_image_boxplot(values, metric=primary)
    parts.append(figure_block(figures.figure_png(fig), f"per-image {primary}, one dot per test image"))
    return parts


def _methods(res: dict[str, Any]) -> list[str]:
    return [e["method"] for e in res["leaderboard"]]


def _per_class(res: dict[str, Any], methods: list[str]) -> list[str]:
    per_class = res["per_class_iou"]
    names = list(per_class[methods[0]])
    table = np.array([[_nan(per_class[m].get(n)) for n in names] for m in methods], np.float64)
    parts = [
        "<h2>Per-class IoU</h2><p class='meta'>mean over folds; – : the class never occurs in a fold's "
        "test images nor in its predictions.</p><div class='scroll'><table class='sortable'><thead><tr>"
        "<th class='text'>method</th>" + "".join(f"<th>{esc(n)}</th>" for n in names) + "</tr></thead><tbody>"
    ]
    finite = np.where(np.isnan(table), -np.inf, table)
    spread = np.nanmax(finite, axis=0) > np.nanmin(np.where(np.isnan(table), np.inf, table), axis=0)
    col_best = np.where(spread, finite.max(axis=0), np.nan)  # a column where all tie marks nothing
    for m, row in zip(methods, table):
        cells = "".join(
            f"<td data-v='{'' if np.isnan(v) else v}'{' class=best' if v == b else ''}>"
            f"{fmt(float(v), 3)}</td>"
            for v, b in zip(row, col_best)
        )
        parts.append(f"<tr><td class='text'>{esc(m)}</td>{cells}</tr>")
    parts.append("</tbody></table></div>")
    fig = figures.per_class_heatmap(table, methods, names)
    parts.append(figure_block(figures.figure_png(fig), "per-class IoU (methods × classes)"))
    return parts


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _confusions(res: dict[str, Any], methods: list[str]) -> list[str]:
    names = list(res["plan"].get("classes") or res["per_class_iou"][methods[0]])
    parts = [
        "<h2>Confusion matrices</h2><p class='meta'>pixels summed over folds; each row (true class) "
        "normalised to sum to 1, so the diagonal is each class's recall.</p><div class='figs'>"
    ]
    for m in methods:
        total = np.sum(
            [np.array(c["metrics"]["confusion_matrix"], np.int64) for c in res["cells"][m]], axis=0
        )
        fig = figures.confusion_matrix_figure(total, names, title=m)
        parts.append(f"<figure>{img_tag(figures.figure_png(fig), f'confusion matrix of {m}')}</figure>")
    parts.append("</div>")
    return parts


def _curves(res: dict[str, Any], methods: list[str]) -> list[str]:
    blocks = []
    for m in methods:
        histories = {c["fold"]: c.get("history") or [] for c in res["cells"][m]}
        fig = figures.learning_curve(histories, title=m)
        if fig is not None:
            blocks.append(figure_block(figures.figure_png(fig), f"{m}: one colour per fold"))
    if not blocks:
        return []
    return [
        "<h2>Learning curves</h2><p class='meta'>deep methods, from their training history.</p>"
        "<div class='figs'>",
        *blocks,
        "</div>",
    ]


def _gallery(out: Path, res: dict[str, Any], methods: list[str], thumbnail: int) -> list[str]:
    from segscope.bench.cell import GALLERY, read_labels
    from segscope.data import default_palette, open_dataset
    from segscope.visualize import display_slice

    plan = res["plan"]
    stems = plan.get("gallery", [])
    if not stems:
        return []
    test_split = plan["split"].split("/")[1] if plan.get("split") else None
    volume = {k: plan[k] for k in ("spacing", "blocks") if plan.get(k) is not None}
    ds = open_dataset(plan["data"], test_split, format=plan.get("format", "auto"), **volume)
    index = {s: i for i, s in enumerate(ds.stems)}
    primary = res["primary"]
    foreground = 1 if ds.num_classes == 2 else None
    instance = {m for m in methods if plan.get("tasks", {}).get(m) == "instance"}
    shown = {m: "sbd" if m in instance else primary for m in methods}  # a per-image score of each kind
    scores = {m: per_image_values(res["cells"][m], shown[m]) for m in methods}
    folds = list(plan.get("folds", {}))
    errors = (
        "red: predicted foreground where the truth is background, blue: missed foreground"
        if foreground is not None
        else "red: wrong class"
    )
    parts = [
        "<h2>Gallery</h2>",
        "<p class='meta'>test images; each method's prediction blended over the input, with its per-image "
        f"{esc(primary)} {_better(primary)}"
        + (" (instance methods: sbd ↑, one colour per instance)" if instance else "")
        + ". <button type='button' id='toggle-errors' "
        "onclick=\"document.body.classList.toggle('show-errors')\">colours / errors</button> switches the "
        f"method columns to their errors ({errors}).</p>",
        swatches(ds.palette, ds.classes, ds.ignore_index),
        "<div class='scroll'><table class='gallery'><tr><th>input</th><th>ground truth</th>"
        + "".join(f"<th>{esc(m)}</th>" for m in methods)
        + "</tr>",
    ]
    for stem in stems:
        if stem not in index:
            continue
        image = ds.load_image(index[stem])
        truth = display_slice(ds.load_mask(index[stem], image_shape=image.shape))
        image = display_slice(image, getattr(ds, "ndim", 2))  # a volume: its middle z-slice
        gt = figures.overlay(image, truth, ds.palette, ignore_index=ds.ignore_index)
        row = [
            f"<td>{_thumb(image, f'{stem} input', thumbnail)}<span class='meta'>{esc(stem)}</span></td>",
            f"<td>{_thumb(gt, f'{stem} ground truth', thumbnail)}<span class='meta'>ground truth</span></td>",
        ]
        for m in methods:
            fold = next(
                (f for f in folds if (out / "cells" / m / f / GALLERY / f"{stem}.png").is_file()), None
            )
            if fold is None:
                row.append("<td class='meta'>no prediction</td>")
                continue
            labels = read_labels(out / "cells" / m / fold / GALLERY / f"{stem}.png")
            palette = (
                ds.palette
                if labels.max(initial=0) < len(ds.palette)
                else default_palette(int(labels.max()) + 1)
            )  # an instance method's gallery map holds instance ids: one colour each
            colours = figures.overlay(image, labels, palette)
            semantic = (labels > 0).astype(np.int64) if m in instance else labels  # its foreground map
            wrong = figures.error_map(
                image, semantic, truth, foreground=foreground, ignore_index=ds.ignore_index
            )
            score = fmt(scores[m].get(f"{fold}/{stem}"))
            row.append(
                f"<td>{_thumb(colours, f'{stem} {m}', thumbnail, 'overlay')}"
                f"{_thumb(wrong, f'{stem} {m} errors', thumbnail, 'errors')}"
                f"<span class='meta'>{esc(shown[m])} {score}</span></td>"
            )
        parts.append("<tr>" + "".join(row) + "</tr>")
    parts.append("</table></div>")
    return parts


def _thumb(array: np.ndarray, alt: str, thumbnail: int, css_class: str | None = None) -> str:
    png = figures.array_png(array, max_side=thumbnail, colors=64)
    return img_tag(png, alt, title=alt, css_class=css_class)


def _per_fold(res: dict[str, Any], methods: list[str]) -> list[str]:
    primary = res["primary"]
    folds = list(res["plan"].get("folds", {}))
    if len(folds) < 2:
        return []
    parts = [
        f"<h2>Per fold</h2><details><summary>{esc(primary)} and fit seconds of every cell</summary>"
        "<table><tr><th>method</th>" + "".join(f"<th>{esc(f)}</th>" for f in folds) + "</tr>"
    ]
    for m in methods:
        by_fold = {c["fold"]: c for c in res["cells"][m]}
        cells = "".join(
            f"<td>{fmt(by_fold[f]['metrics'].get(primary))} "
            f"<span class='sd'>{fmt(by_fold[f]['fit_seconds'], 1)} s</span></td>"
            if f in by_fold
            else "<td class='err'>failed</td>"
            for f in folds
        )
        parts.append(f"<tr><td>{esc(m)}</td>{cells}</tr>")
    parts.append("</table></details>")
    return parts


def _reproduce(plan: dict[str, Any]) -> list[str]:
    env = plan.get("environment", {})
    rows = "".join(f"<tr><td>{esc(k)}</td><td class='text'>{esc(v)}</td></tr>" for k, v in env.items())
    options = json.dumps(plan.get("options", {}), sort_keys=True)
    return [
        "<h2>Reproduce</h2>",
        f"<p>Command: <code>{esc(plan.get('command') or '(called from Python)')}</code></p>",
        f"<p class='meta'>methods {esc(', '.join(plan.get('methods', [])))} · options <code>{esc(options)}"
        "</code> · the exact folds are in <code>splits.json</code>; every number here is in "
        "<code>results.json</code> and <code>leaderboard.csv</code>.</p>",
        f"<table><tr><th>machine and versions</th><th></th></tr>{rows}</table>",
    ]
