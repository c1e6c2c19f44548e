"""A self-contained HTML report of one trained run: metrics, learning curve, confusion matrix, overlays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segscope.engine.overfitting import divergence_message
from segscope.io import write_bytes_atomic, write_text_atomic
from segscope.metrics.specs import headline_metrics
from segscope.report import figures
from segscope.report.html import esc, figure_block, fmt, img_tag, page, swatches

HEADLINE = (*headline_metrics(), "seconds_per_image")


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
    """Write the report of one trained model to ``out_html`` (and ``learning_curve.png`` in ``run_dir``).

    Parameters
    ----------
    run_dir : the run folder (named in the report; the learning curve PNG is saved there).
    metrics : the run summary: ``method``, ``fit_seconds``, ``num_parameters``, ``command``, ``finished``
        and ``metrics`` (an :class:`~segscope.metrics.Evaluator` result; may be empty).
    history : per-epoch dicts (``epoch``, ``train_loss``, ``val_mean_iou``, ...), possibly empty.
    overlays : ``(name, image (H, W, C) uint8, ground truth (H, W), prediction (H, W))`` tuples.
    palette : ``(K, 3)`` class colours (default: :func:`segscope.data.default_palette`).
    class_names : class names for the per-class table, confusion matrix and legend.
    """
    from segscope.data import default_palette

    scores = metrics.get("metrics", {}) or {}
    names = list(class_names) if class_names else list(scores.get("iou", {})) or None
    title = f"segscope run: {metrics.get('method', '')}"
    body = [
        f"<h1>{esc(title)}</h1>",
        f"<p class='meta'>{esc(run_dir)} · {esc(metrics.get('finished', ''))} · "
        f"{fmt(int(metrics.get('num_parameters', 0) or 0))} parameters · "
        f"fit {fmt(metrics.get('fit_seconds', 0.0), 1)} s</p>",
    ]
    if metrics.get("command"):
        body.append(f"<p class='meta'><code>{esc(metrics['command'])}</code></p>")
    headline = [(k, scores[k]) for k in HEADLINE if scores.get(k) is not None]
    if headline:
        body.append("<h2>Validation metrics</h2><table><tr><th>metric</th><th>value</th></tr>")
        body += [f"<tr><td>{esc(k)}</td><td>{fmt(v)}</td></tr>" for k, v in headline]
        body.append("</table>")
    if isinstance(scores.get("iou"), dict):
        body.append("<h2>Per-class scores</h2><table><tr><th>class</th><th>IoU</th><th>Dice</th></tr>")
        for name, v in scores["iou"].items():
            dice = scores.get("dice", {}).get(name)
            body.append(f"<tr><td>{esc(name)}</td><td>{fmt(v)}</td><td>{fmt(dice)}</td></tr>")
        body.append("</table>")
    warning = divergence_message(history)
    if warning:
        body.append(f"<p class='warning'><strong>Warning:</strong> {esc(warning)}</p>")
    curve_fig = figures.learning_curve(history)
    curve = figures.figure_png(curve_fig) if curve_fig is not None else None
    if curve:
        body.append("<h2>Learning curve</h2>" + img_tag(curve, "learning curve"))
    if scores.get("confusion_matrix") and names:
        fig = figures.confusion_matrix_figure(np.array(scores["confusion_matrix"]), names)
        body.append("<h2>Confusion matrix</h2>" + figure_block(figures.figure_png(fig), "row-normalised"))
    if overlays:
        pal = palette if palette is not None else default_palette(len(names or [0, 1]))
        body.append("<h2>Predictions</h2>")
        if names:
            body.append(swatches(pal, names))
        body.append(
            "<div class='scroll'><table class='gallery'><tr><th>image</th><th>ground truth</th>"
            "<th>prediction</th></tr>"
        )
        for name, image, truth, pred in overlays:
            cells = [image, figures.overlay(image, truth, pal), figures.overlay(image, pred, pal)]
            body.append(
                "<tr>"
                + "".join(
                    f"<td>{img_tag(figures.array_png(c, max_side=320), f'{name} {kind}')}</td>"
                    for c, kind in zip(cells, ("image", "ground truth", "prediction"))
                )
                + "</tr>"
                + f"<tr><td colspan='3' class='meta'>{esc(name)}</td></tr>"
            )
        body.append("</table></div>")
    out_html = Path(out_html)
    write_text_atomic(out_html, page(title, body))
    if curve:
        write_bytes_atomic(Path(run_dir) / "learning_curve.png", curve)
    return out_html
