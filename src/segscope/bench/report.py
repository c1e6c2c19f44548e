"""The bench report: leaderboard, per-class IoU, confusion matrices, learning curves, gallery, paired tests.

One self-contained HTML file (PNG figures embedded as base64, inline CSS and a few lines of JS to sort
the leaderboard), plus ``results.json`` and ``leaderboard.csv`` beside it.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from segscope.io import write_text_atomic
from segscope.report import plots
from segscope.report.run_report import STYLE, img_tag

LOWER_IS_BETTER = ("pixel_error", "rand_error", "fit_seconds", "seconds_per_image")
SORT_JS = """
window.addEventListener('load', () => {  // lets a headless browser test see that every figure decoded
  const imgs = [...document.images];
  document.body.dataset.images = imgs.length;
  document.body.dataset.brokenImages = imgs.filter(i => !i.complete || i.naturalWidth === 0).length;
});
document.querySelectorAll('table.sortable th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0]; const asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
  const key = r => { const v = parseFloat(r.cells[col].dataset.v ?? r.cells[col].textContent); return isNaN(v) ? r.cells[col].textContent : v; };
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (asc ? 1 : -1)).forEach(r => body.appendChild(r));
}));
"""


def collect_results(out: Path) -> dict[str, Any]:
    """Read every cell; aggregate mean ± sd per method; write ``results.json`` and ``leaderboard.csv``."""
    out = Path(out)
    plan = json.loads((out / "bench.json").read_text())
    cells: dict[str, list[dict[str, Any]]] = {}
    errors: dict[str, list[dict[str, Any]]] = {}
    for method in plan["methods"]:
        for cell in sorted((out / "cells" / method).glob("*")):
            if (cell / "result.json").exists():
                cells.setdefault(method, []).append(json.loads((cell / "result.json").read_text()))
            elif (cell / "error.json").exists():
                errors.setdefault(method, []).append(json.loads((cell / "error.json").read_text()))
    binary = any("pixel_error" in c["metrics"] for rows in cells.values() for c in rows)
    keys = (
        ["pixel_error", "rand_error", "mean_iou", "boundary_f1"]
        if binary
        else ["mean_iou", "pixel_accuracy", "mean_class_accuracy", "boundary_f1"]
    )
    board = []
    for method, rows in cells.items():
        entry: dict[str, Any] = {"method": method, "folds": len(rows)}
        for k in keys:
            v = np.array([r["metrics"].get(k, np.nan) for r in rows], float)
            entry[k] = float(np.nanmean(v))
            entry[f"{k}_sd"] = float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0
        entry["fit_seconds"] = float(np.mean([r["fit_seconds"] for r in rows]))
        entry["seconds_per_image"] = float(np.mean([r["seconds_per_image"] for r in rows]))
        entry["num_parameters"] = int(rows[0]["num_parameters"])
        board.append(entry)
    primary = keys[0]
    board.sort(key=lambda e: e[primary] if primary in LOWER_IS_BETTER else -e[primary])
    results = {
        "plan": plan,
        "metric_keys": keys,
        "primary": primary,
        "leaderboard": board,
        "errors": {m: [e["message"] for e in es] for m, es in errors.items()},
        "paired_tests": paired_tests(cells, primary),
        "cells": cells,
    }
    from segscope.io import write_json_atomic

    write_json_atomic(out / "results.json", results)
    buf = io.StringIO()
    cols = [
        "method",
        "folds",
        *[c for k in keys for c in (k, f"{k}_sd")],
        "fit_seconds",
        "seconds_per_image",
        "num_parameters",
    ]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(board)
    write_text_atomic(out / "leaderboard.csv", buf.getvalue())
    return results


def paired_tests(cells: dict[str, list[dict[str, Any]]], primary: str) -> list[dict[str, Any]]:
    """Wilcoxon signed-rank test of the best method against each other one, paired by test image."""
    from scipy.stats import wilcoxon

    per_image = {
        m: {r["name"] + "@" + c["fold"]: r.get(primary) for c in rows for r in c["per_image"]}
        for m, rows in cells.items()
    }
    if len(per_image) < 2:
        return []
    sign = 1 if primary in LOWER_IS_BETTER else -1
    best = min(per_image, key=lambda m: sign * np.nanmean(list(per_image[m].values())))
    tests = []
    for other in per_image:
        if other == best:
            continue
        common = sorted(set(per_image[best]) & set(per_image[other]))
        a = np.array([per_image[best][k] for k in common], float)
        b = np.array([per_image[other][k] for k in common], float)
        ok = ~(np.isnan(a) | np.isnan(b))
        a, b = a[ok], b[ok]
        if len(a) == 0:
            continue
        p = float(wilcoxon(a, b).pvalue) if np.any(a != b) and len(a) > 1 else 1.0
        tests.append(
            {
                "best": best,
                "other": other,
                "metric": primary,
                "n": int(len(a)),
                "median_difference": float(np.median(a - b)),
                "p_value": p,
                "best_wins": int(np.sum(sign * (a - b) < 0)),
            }
        )
    return tests


def render_bench_report(out: str | Path) -> Path:
    """Write ``out/report.html`` from the cells in ``out``."""
    from segscope.data import open_dataset
    from segscope.visualize import overlay

    out = Path(out)
    res = collect_results(out)
    plan, keys, board = res["plan"], res["metric_keys"], res["leaderboard"]
    env = plan.get("environment", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>segscope bench</title>",
        f"<style>{STYLE} th{{cursor:pointer}} .err{{color:#b00}}</style></head><body>",
        f"<h1>segscope bench — {html.escape(Path(plan['data']).name)}</h1>",
        f"<p class='meta'>{html.escape(plan.get('split') or plan.get('cv') or '')} · budget "
        f"{plan['time_budget_s']:.0f} s per method and fold · {env.get('date', '')}</p>",
    ]
    # leaderboard
    arrows = {k: "↓" if k in LOWER_IS_BETTER else "↑" for k in keys}
    parts.append("<h2>Leaderboard</h2><p class='meta'>mean ± sd over folds; click a header to sort</p>")
    parts.append(
        "<table class='sortable' id='leaderboard'><thead><tr><th>method</th><th>folds</th>"
        + "".join(f"<th>{k} {arrows[k]}</th>" for k in keys)
        + "<th>fit s ↓</th><th>s / image ↓</th><th>parameters</th></tr></thead><tbody>"
    )
    for e in board:
        parts.append(
            f"<tr><td>{html.escape(e['method'])}</td><td>{e['folds']}</td>"
            + "".join(f"<td data-v='{e[k]:.6f}'>{e[k]:.4f} ± {e[k + '_sd']:.4f}</td>" for k in keys)
            + f"<td>{e['fit_seconds']:.1f}</td><td>{e['seconds_per_image']:.3f}</td>"
            + f"<td data-v='{e['num_parameters']}'>{e['num_parameters']:,}</td></tr>"
        )
    parts.append("</tbody></table>")
    for m, msgs in res["errors"].items():
        parts.append(
            f"<p class='err'>{html.escape(m)} failed on {len(msgs)} fold(s): {html.escape(msgs[0])}</p>"
        )
    for m, why in plan.get("skipped", {}).items():
        parts.append(f"<p class='meta'>skipped {html.escape(m)}: {html.escape(why)}</p>")
    # paired tests
    if res["paired_tests"]:
        parts.append(
            "<h2>Paired comparison</h2><p class='meta'>Wilcoxon signed-rank test on per-image "
            f"{res['primary']}, best method against each other, paired by test image</p>"
            "<table><tr><th>best</th><th>vs</th><th>n images</th><th>best better on</th>"
            "<th>median difference</th><th>p-value</th></tr>"
        )
        for t in res["paired_tests"]:
            parts.append(
                f"<tr><td>{t['best']}</td><td>{t['other']}</td><td>{t['n']}</td><td>{t['best_wins']}</td>"
                f"<td>{t['median_difference']:+.4f}</td><td>{t['p_value']:.3g}</td></tr>"
            )
        parts.append("</table>")
    cells = res["cells"]
    methods = [e["method"] for e in board]
    # per-class IoU
    if methods:
        names = list(cells[methods[0]][0]["metrics"]["iou"])
        table = np.array(
            [[np.nanmean([c["metrics"]["iou"][n] for c in cells[m]]) for n in names] for m in methods]
        )
        parts.append(
            "<h2>Per-class IoU</h2>" + img_tag(plots.heatmap_png(table, methods, names), "per-class IoU")
        )
        parts.append(
            "<table><tr><th>method</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
        )
        for m, row in zip(methods, table):
            parts.append(f"<tr><td>{m}</td>" + "".join(f"<td>{v:.3f}</td>" for v in row) + "</tr>")
        parts.append(
            "</table><h2>Confusion matrices</h2><p class='meta'>summed over folds, row-normalised</p>"
        )
        for m in methods:
            total = np.sum([np.array(c["metrics"]["confusion_matrix"]) for c in cells[m]], axis=0)
            parts.append(img_tag(plots.confusion_matrix_png(total, names, title=m), f"confusion {m}"))
    curves = [
        (m, cells[m][0]["history"])
        for m in methods
        if cells[m][0]["history"] and "epoch" in cells[m][0]["history"][0]
    ]
    if curves:
        parts.append("<h2>Learning curves</h2><p class='meta'>first fold</p>")
        parts += [img_tag(plots.learning_curve_png(h, title=m), f"learning curve {m}") for m, h in curves]
    # gallery
    gallery = plan.get("gallery", [])
    if gallery and methods:
        parts.append("<h2>Gallery</h2>")
        ds = open_dataset(
            plan["data"], plan["split"].split("/")[1] if plan.get("split") else None, format=plan["format"]
        )
        index = {s: i for i, s in enumerate(ds.stems)}
        for stem in gallery:
            if stem not in index:
                continue
            image, truth = ds[index[stem]]
            panels, titles = (
                [image, overlay(image, truth, ds.palette, ignore_index=ds.ignore_index)],
                [stem, "ground truth"],
            )
            for m in methods:
                path = next((p for p in (out / "cells" / m).glob(f"*/gallery/{stem}.png")), None)
                if path is not None:
                    from PIL import Image

                    panels.append(overlay(image, np.asarray(Image.open(path)).astype(np.int64), ds.palette))
                    titles.append(m)
            parts.append(img_tag(plots.panels_png(panels, titles), f"gallery {stem}"))
    parts.append(
        "<h2>Reproduce</h2><table>"
        + "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in env.items()
        )
        + "</table>"
    )
    parts.append(f"<p><code>{html.escape(plan.get('command', ''))}</code></p>")
    parts.append(f"<script>{SORT_JS}</script></body></html>")
    path = out / "report.html"
    write_text_atomic(path, "\n".join(parts))
    return path
