"""Evaluating a points run on a ShapeNet-Part folder: JSON scores, a small HTML page, 3-D scatter pictures.

Scores are PointNet's (see :mod:`segscope.points.metrics`): instance mIoU (mean over shapes, the paper's
83.7), class mIoU (mean over categories), per-category and per-part IoU, with predictions restricted to
the parts of each shape's category.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from segscope.io import write_bytes_atomic, write_json_atomic, write_text_atomic
from segscope.points.io import NUM_PARTS, PART_NAMES, LabelledCloud, load_shapenet_part, normalize_unit_sphere

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PART_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
COLOUR_NAMES = ("blue", "orange", "green", "red", "purple", "brown")


def scatter_figure(points: np.ndarray, true: np.ndarray | None, pred: np.ndarray, title: str) -> Figure:
    """Side-by-side 3-D scatters of one cloud coloured by true and predicted part (y drawn upwards)."""
    from matplotlib.figure import Figure

    p = normalize_unit_sphere(points)
    panels = [("truth", true), ("prediction", pred)] if true is not None else [("prediction", pred)]
    fig = Figure(figsize=(2.8 * len(panels), 2.9))
    for k, (name, labels) in enumerate(panels, 1):
        ax = fig.add_subplot(1, len(panels), k, projection="3d")
        colours = np.array(PART_COLOURS)[(np.asarray(labels) - 1) % len(PART_COLOURS)]
        ax.scatter(p[:, 0], p[:, 2], p[:, 1], c=colours, s=1.5, depthshade=False)
        for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            setter(-0.7, 0.7)
        ax.view_init(elev=20, azim=-60)
        ax.set_axis_off()
        ax.set_title(name, fontsize=9, pad=0)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.84, wspace=0)
    return fig


def save_scatter_png(
    path: str | Path, points: np.ndarray, true: np.ndarray | None, pred: np.ndarray, title: str
) -> bytes:
    """Render :func:`scatter_figure` to a PNG file (atomically); returns the bytes."""
    from segscope.report.figures import figure_png

    png = figure_png(scatter_figure(points, true, pred, title), dpi=90)
    write_bytes_atomic(path, png)
    return png


def legend(category: str) -> str:
    return ", ".join(f"{k} {n} ({COLOUR_NAMES[(k - 1) % 6]})" for k, n in enumerate(PART_NAMES[category], 1))


def evaluate_run(
    run_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str | None = None,
    pictures: int = 4,
) -> dict:
    """Score a run on every labelled shape of a ShapeNet-Part folder (``split`` None: all shapes found);
    writes ``points_eval.json``, ``index.html`` and ``shape_<k>.png`` to ``out_dir``; returns the scores."""
    from segscope.points.train import PartSegmenter, evaluate_clouds

    segmenter = PartSegmenter.from_run(run_dir)
    clouds = load_shapenet_part(data_dir, split)
    summary, preds = evaluate_clouds(segmenter, clouds)
    from segscope.points.metrics import shape_miou

    shapes = [
        {
            "name": c.name,
            "category": c.category,
            "points": len(c.points),
            "miou": shape_miou(p, c.labels, NUM_PARTS[c.category]),
        }
        for c, p in zip(clouds, preds)
    ]
    out = Path(out_dir)
    chosen = _pick_pictures(clouds, pictures)
    figures = []
    for k, i in enumerate(chosen):
        c = clouds[i]
        title = f"{c.category} {c.name[:12]}: mIoU {shapes[i]['miou']:.3f}"
        figures.append(
            (save_scatter_png(out / f"shape_{k}.png", c.points, c.labels, preds[i], title), c.category, title)
        )
    results = {
        "run": str(run_dir),
        "data": str(data_dir),
        "split": split or "all",
        "protocol": "per shape: mean IoU over the category's parts (absent from prediction and truth = 1); "
        "predictions restricted to the category's parts; instance mIoU = mean over shapes, class mIoU = "
        "mean over categories",
        **summary,
        "shapes": shapes,
    }
    write_json_atomic(out / "points_eval.json", results)
    write_text_atomic(out / "index.html", _html(results, figures))
    return results


def _pick_pictures(clouds: list[LabelledCloud], n: int) -> list[int]:
    """Up to ``n`` shapes, one per category first."""
    firsts = {}
    for i, c in enumerate(clouds):
        firsts.setdefault(c.category, i)
    chosen = list(firsts.values())[:n]
    return chosen + [i for i in range(len(clouds)) if i not in chosen][: n - len(chosen)]


def _html(results: dict, figures: list[tuple[bytes, str, str]]) -> str:
    from segscope.report.html import esc, figure_block, fmt, page

    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{c['n_shapes']}</td><td>{fmt(c['miou'], 3)}</td><td class='text'>"
        + ", ".join(f"{esc(p)} {fmt(v, 3)}" for p, v in c["part_iou"].items())
        + "</td></tr>"
        for name, c in results["per_category"].items()
    )
    body = [
        "<h1>PointNet part segmentation</h1>",
        f"<p class='meta'>run {esc(results['run'])}; data {esc(results['data'])} ({esc(results['split'])}); "
        f"{results['n_shapes']} shapes</p>",
        f"<p><b>instance mIoU {fmt(results['instance_miou'], 3)}</b> (mean over shapes, as the paper's 83.7) "
        f"&middot; <b>class mIoU {fmt(results['class_miou'], 3)}</b> (mean over categories)</p>",
        f"<p class='meta'>{esc(results['protocol'])}</p>",
        "<h2>Per category</h2><table><tr><th>category</th><th>shapes</th><th>mIoU</th>"
        f"<th class='text'>part IoU</th></tr>{rows}</table>",
        "<h2>Pictures</h2><div class='figs'>"
        + "".join(figure_block(png, legend(cat)) for png, cat, title in figures)
        + "</div>",
    ]
    return page("PointNet part segmentation", body)
