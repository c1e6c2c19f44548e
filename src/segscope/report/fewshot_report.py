"""The few-shot section of a report: the episode protocol, mIoU / FB-IoU per method and shot count,
per-class IoU, the heads' selection curves, and example episodes.

:func:`render_fewshot_report` writes it as its own page (``segscope fewshot evaluate``);
:func:`fewshot_section` is what the bench report appends when its folder holds a ``fewshot.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segscope.io import write_text_atomic
from segscope.report.html import esc, fmt, img_tag, page

RESULTS = "fewshot.json"


def fewshot_section(out: str | Path, results: dict[str, Any], *, level: int = 2) -> list[str]:
    """HTML blocks for ``results`` (as written by :func:`segscope.fewshot.experiment.evaluate_fewshot`)."""
    out = Path(out)
    h = f"h{level}"
    proto = results["protocol"]
    folds = proto.get("folds", {})
    shots = [f"{k}-shot" for k in proto.get("shots", [])]
    parts = [
        f"<{h}>Few-shot segmentation: unseen classes {esc(', '.join(proto['unseen']))}</{h}>",
        "<p class='meta'>"
        f"{esc(proto.get('dataset', ''))} {esc(proto.get('split', ''))} "
        f"({proto.get('num_images', '?')} images) · "
        f"fold {proto.get('fold')} of {len(folds.get('folds', []))} class folds (PASCAL-5i style) · "
        f"{proto.get('ways', 1)}-way · {proto.get('episodes')} fixed test episodes per shot count "
        f"(seed {proto.get('seed')}, lists saved as episodes_&lt;K&gt;shot.json) · images "
        f"{'x'.join(map(str, proto.get('size', [])))} · a target needs ≥ {proto.get('min_pixels')} pixels · "
        "mIoU: per-class IoU accumulated over episodes, mean over the fold's classes; FB-IoU: mean of "
        "foreground and background IoU. Heads were trained on the seen classes only and chosen on held-out "
        "training images.</p>",
        "<table><tr><th>method</th>"
        + "".join(
            f"<th>{esc(s)} mIoU ↑</th><th>{esc(s)} FB-IoU ↑</th><th>{esc(s)} s/episode</th>" for s in shots
        )
        + "</tr>",
    ]
    best = {
        s: max((r[s]["mean_iou"] for r in results["scores"].values() if s in r), default=None) for s in shots
    }
    for name, by_shot in results["scores"].items():
        cells = []
        for s in shots:
            r = by_shot.get(s)
            if r is None:
                cells.append("<td></td><td></td><td></td>")
                continue
            cls = " class='best'" if r["mean_iou"] == best[s] else ""
            cells.append(f"<td{cls}>{fmt(r['mean_iou'], 3)}</td><td>{fmt(r['fb_iou'], 3)}</td>"
                         f"<td>{fmt(r['seconds_per_episode'], 3)}</td>")  # fmt: skip
        parts.append(f"<tr><td>{esc(name)}</td>{''.join(cells)}</tr>")
    parts.append("</table>")
    classes = sorted({c for r in results["scores"].values() for s in r.values() for c in s["per_class_iou"]})
    if classes:
        parts.append(
            "<table><tr><th>per-class IoU</th>" + "".join(f"<th>{esc(c)}</th>" for c in classes) + "</tr>"
        )
        for name, by_shot in results["scores"].items():
            for s, r in by_shot.items():
                row = "".join(f"<td>{fmt(r['per_class_iou'].get(c), 3)}</td>" for c in classes)
                parts.append(f"<tr><td>{esc(name)}, {esc(s)}</td>{row}</tr>")
        parts.append("</table>")
    parts += _training(results.get("runs", {}))
    parts += _gallery(out, results.get("gallery", []), list(results["scores"]))
    return parts


def _training(runs: dict[str, Any]) -> list[str]:
    if not runs:
        return []
    rows = ["<p class='meta'>trained heads (seen classes: "
            + esc(", ".join(next(iter(runs.values()))["seen"])) + ")</p>",
            "<table><tr><th>head</th><th>episodes</th><th>seconds</th><th>kept episode</th>"
            "<th>selection mIoU (seen, held-out train images)</th></tr>"]  # fmt: skip
    for name, run in runs.items():
        tr = run["train"]
        rows.append(
            f"<tr><td>{esc(name)}</td><td>{tr['steps']}</td><td>{fmt(tr['seconds'], 0)}</td>"
            f"<td>{tr['best_step']}</td><td>{fmt(tr['best_selection_miou'], 3)}</td></tr>"
        )
    rows.append("</table>")
    return rows


def _gallery(out: Path, entries: list[dict[str, Any]], methods: list[str]) -> list[str]:
    if not entries:
        return []
    columns = ["support", "truth", *methods]
    parts = ["<p class='meta'>example episodes: the first support image with its mask, the query's truth, "
             "each method's prediction (yellow: the target class)</p>", "<table class='gallery'><tr><th></th>"
             + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>"]  # fmt: skip
    for e in entries:
        cells = []
        for c in columns:
            path = out / e["files"].get(c, "")
            png = path.read_bytes() if c in e["files"] and path.is_file() else None
            alt = f"{c}, episode {e['episode']}"
            cells.append(f"<td>{img_tag(png, alt)}</td>")
        head = f"{esc(e['tag'])} #{e['episode']}<br>{esc(', '.join(e['classes']))}"
        parts.append(f"<tr><th>{head}</th>{''.join(cells)}</tr>")
    parts.append("</table>")
    return parts


def render_fewshot_report(out: str | Path, results: dict[str, Any] | None = None) -> Path:
    """Write ``out/report.html`` for the few-shot evaluation in ``out``."""
    out = Path(out)
    results = results if results is not None else json.loads((out / RESULTS).read_text())
    body = ["<h1>segscope few-shot evaluation</h1>", *fewshot_section(out, results)]
    path = out / "report.html"
    write_text_atomic(path, page("segscope few-shot evaluation", body))
    return path
