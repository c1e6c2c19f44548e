"""A self-contained HTML report of one trained run: metrics, learning curve, confusion matrix, overlays."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segscope.io import write_text_atomic
from segscope.report import plots
from segscope.visualize import overlay

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.meta{color:#666;font-size:.9rem}
"""


def img_tag(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def render_run_report(
    run_dir: str | Path,
    out_html: str | Path,
    *,
    metrics: dict[str, Any],
    history: Sequence[dict[str, Any]],
    overlays: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = (),
    palette: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Write ``out_html``; ``overlays`` are ``(name, image, ground truth, prediction)`` tuples."""
    from segscope.data.dataset import default_palette

    m = metrics.get("metrics", {})
    title = f"segscope run: {metrics.get('method', '')}"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p class='meta'>{html.escape(str(run_dir))} · {metrics.get('finished', '')} · "
        f"{metrics.get('num_parameters', 0):,} parameters · fit {metrics.get('fit_seconds', 0):.0f} s</p>",
        f"<p class='meta'><code>{html.escape(metrics.get('command', ''))}</code></p>",
    ]
    headline = [
        (k, m[k])
        for k in (
            "mean_iou",
            "pixel_accuracy",
            "mean_class_accuracy",
            "fw_iou",
            "boundary_f1",
            "pixel_error",
            "rand_error",
            "seconds_per_image",
        )
        if m.get(k) is not None
    ]
    if headline:
        parts.append("<h2>Validation metrics</h2><table><tr><th>metric</th><th>value</th></tr>")
        parts += [f"<tr><td>{k}</td><td>{v:.4f}</td></tr>" for k, v in headline]
        parts.append("</table>")
    if isinstance(m.get("iou"), dict):
        parts.append("<h2>Per-class scores</h2><table><tr><th>class</th><th>IoU</th><th>Dice</th></tr>")
        for name, v in m["iou"].items():
            parts.append(
                f"<tr><td>{html.escape(name)}</td><td>{v:.4f}</td><td>{m['dice'].get(name, float('nan')):.4f}</td></tr>"
            )
        parts.append("</table>")
    curve = plots.learning_curve_png(history)
    if curve:
        parts.append("<h2>Learning curve</h2>" + img_tag(curve, "learning curve"))
    if m.get("confusion_matrix") and class_names:
        parts.append(
            "<h2>Confusion matrix</h2>"
            + img_tag(
                plots.confusion_matrix_png(np.array(m["confusion_matrix"]), class_names), "confusion matrix"
            )
        )
    if overlays:
        pal = palette if palette is not None else default_palette(len(class_names or [0, 1]))
        parts.append("<h2>Predictions</h2>")
        for name, image, truth, pred in overlays:
            png = plots.panels_png(
                [image, overlay(image, truth, pal), overlay(image, pred, pal)],
                [name, "ground truth", "prediction"],
            )
            parts.append(img_tag(png, f"overlay {name}"))
    parts.append("</body></html>")
    out_html = Path(out_html)
    write_text_atomic(out_html, "\n".join(parts))
    if curve:
        from segscope.io import write_bytes_atomic

        write_bytes_atomic(Path(run_dir) / "learning_curve.png", curve)
    return out_html
