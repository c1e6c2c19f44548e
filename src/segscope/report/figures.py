"""Figures for reports: overlays, learning curves, confusion matrices, heat maps, per-image box plots,
predicted-against-true quality scatter plots.

Matplotlib figures are built on :class:`matplotlib.figure.Figure` directly (the Agg canvas, no pyplot
and so no global figure state); :func:`figure_png` turns one into PNG bytes. Image panels (overlays)
are plain arrays, encoded by :func:`array_png`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from segscope.engine.overfitting import divergence_epoch
from segscope.visualize import overlay as visualize_overlay  # noqa: E402

History = Sequence[Mapping[str, Any]]


overlay = visualize_overlay  # one implementation, re-exported for report code


def error_map(
    image: np.ndarray,
    prediction: np.ndarray,
    truth: np.ndarray,
    *,
    foreground: int | None = None,
    ignore_index: int | None = None,
) -> np.ndarray:
    """Where a prediction is wrong, drawn over the dimmed image.

    Binary data (``foreground`` set): false positives (predicted foreground, truly not) red, false
    negatives blue. Otherwise every wrong pixel is red. Pixels labelled ``ignore_index`` are never marked.

    Returns
    -------
    ``(H, W, 3)`` uint8.
    """
    if prediction.shape != truth.shape or truth.shape != image.shape[:2]:
        raise ValueError(
            f"image {image.shape[:2]}, prediction {prediction.shape}, truth {truth.shape} differ"
        )
    grey = image.mean(axis=2) if image.ndim == 3 else image.astype(np.float64)
    out = np.repeat((0.55 * grey)[..., None], 3, axis=2)
    valid = np.ones(truth.shape, bool) if ignore_index is None else truth != ignore_index
    wrong = valid & (prediction != truth)
    if foreground is None:
        out[wrong] = (235, 40, 40)
    else:
        out[wrong & (prediction == foreground)] = (235, 40, 40)
        out[wrong & (prediction != foreground)] = (40, 120, 255)
    return out.round().clip(0, 255).astype(np.uint8)


def learning_curve(
    history: History | Mapping[str, History], *, title: str = "learning curve"
) -> Figure | None:
    """Training loss per epoch (left axis) and validation mean IoU (right axis, dashed).

    Where the validation loss diverges from the training loss (see
    :func:`segscope.engine.overfitting.divergence_epoch`), a vertical line marks its minimum.

    ``history`` is a list of per-epoch dicts (``epoch``, ``train_loss``, optional ``val_loss`` and
    ``val_mean_iou``), or a mapping ``{label: history}`` drawn in one colour per label (e.g. per fold).
    Returns ``None`` when no entry has an ``epoch`` (e.g. a classical method's tuning trials).
    """
    curves = {"": history} if not isinstance(history, Mapping) else dict(history)
    curves = {k: [r for r in h if "epoch" in r] for k, h in curves.items()}
    curves = {k: h for k, h in curves.items() if h}
    if not curves:
        return None
    fig = Figure(figsize=(6.4, 3.4), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax_iou = None
    colours = [f"C{i % 10}" for i in range(len(curves))]
    for (label, rows), colour in zip(curves.items(), colours):
        suffix = f" ({label})" if label else ""
        style = {"color": colour, "marker": "o" if len(rows) <= 40 else None, "markersize": 3}
        ax.plot(*_series(rows, "train_loss"), **style, label=f"train loss{suffix}")
        if any("val_loss" in r for r in rows):
            ax.plot(*_series(rows, "val_loss"), **style, linestyle=":", label=f"val loss{suffix}")
            diverged = divergence_epoch(rows)
            if diverged is not None:
                ax.axvline(diverged, color=colour, alpha=0.6, linewidth=1.2)
                ax.annotate(
                    "val loss diverges",
                    (diverged, 0.97),
                    xycoords=("data", "axes fraction"),
                    fontsize=7,
                    color=colour,
                    ha="left",
                    va="top",
                    xytext=(3, 0),
                    textcoords="offset points",
                )
        if any("val_mean_iou" in r for r in rows):
            ax_iou = ax_iou or ax.twinx()
            ax_iou.plot(*_series(rows, "val_mean_iou"), **style, linestyle="--", label=f"val mIoU{suffix}")
    epochs = [r["epoch"] for rows in curves.values() for r in rows]
    ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if ax_iou is not None:
        ax_iou.set_ylabel("validation mean IoU")
        ax_iou.set_ylim(0, 1)
        more = ax_iou.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, fontsize=7, loc="upper right", ncol=2 if len(labels) > 4 else 1)
    ax.set_title(title, fontsize=10)
    return fig


def _series(rows: History, key: str) -> tuple[list[Any], list[Any]]:
    kept = [r for r in rows if r.get(key) is not None]
    return [r["epoch"] for r in kept], [r[key] for r in kept]


def confusion_matrix_figure(
    matrix: np.ndarray, class_names: Sequence[str], *, title: str = "confusion matrix"
) -> Figure:
    """Row-normalised confusion matrix (rows: true class, columns: predicted; each row sums to 1).

    ``matrix`` is ``(K, K)`` pixel counts; a class with no pixel has an all-zero row.
    """
    counts = np.asarray(matrix, np.float64)
    k = len(class_names)
    if counts.shape != (k, k):
        raise ValueError(f"matrix {counts.shape} does not match {k} class names")
    norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    cell = 0.42 if k <= 6 else 0.3
    size = 1.6 + cell * k
    fig = Figure(figsize=(size + 0.8, size), dpi=100, layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(
        range(k), class_names, rotation=60 if k > 3 else 0, ha="right" if k > 3 else "center", fontsize=8
    )
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 12:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7 if k <= 6 else 5,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=10)
    return fig


def per_class_heatmap(
    table: np.ndarray, rows: Sequence[str], cols: Sequence[str], *, title: str = "per-class IoU"
) -> Figure:
    """Heat map of scores in [0, 1], ``table[i, j]`` for method ``rows[i]`` and class ``cols[j]``;
    NaN (class absent from every test image) is drawn grey with a dash."""
    values = np.asarray(table, np.float64)
    if values.shape != (len(rows), len(cols)):
        raise ValueError(f"table {values.shape} does not match {len(rows)} rows x {len(cols)} columns")
    fig = Figure(figsize=(2.2 + 0.65 * len(cols), 1.0 + 0.38 * len(rows)), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.set_facecolor("#dddddd")
    im = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(
        range(len(cols)),
        cols,
        rotation=45 if len(cols) > 3 else 0,
        ha="right" if len(cols) > 3 else "center",
        fontsize=8,
    )
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = values[i, j]
            ax.text(
                j,
                i,
                "–" if np.isnan(v) else f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if np.isnan(v) or v > 0.6 else "white",
            )
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=10)
    return fig


def per_image_boxplot(values: Mapping[str, Sequence[float]], *, metric: str) -> Figure:
    """Box plot of each method's per-image ``metric`` with every image as a dot (methods top to bottom)."""
    names = list(values)
    fig = Figure(figsize=(6.4, 0.9 + 0.42 * len(names)), dpi=100, layout="constrained")
    ax = fig.subplots()
    data = [np.asarray([v for v in values[n] if v is not None and np.isfinite(v)], np.float64) for n in names]
    positions = np.arange(len(names))[::-1]
    ax.boxplot(data, positions=positions, orientation="horizontal", widths=0.55, showfliers=False)
    rng = np.random.default_rng(0)  # fixed jitter: the same report every time
    for pos, d in zip(positions, data):
        ax.scatter(d, pos + rng.uniform(-0.15, 0.15, len(d)), s=8, alpha=0.6, color="C0", zorder=3)
    ax.set_yticks(positions, names, fontsize=8)
    ax.set_xlabel(f"{metric} per test image")
    ax.grid(axis="x", alpha=0.3)
    return fig


def quality_scatter(
    points: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, metric: str, quality: str = "predicted"
) -> Figure:
    """Predicted (x) against true (y) quality, one panel per method, one dot per test image, with the
    identity line: a perfect oracle puts every dot on it. ``points`` is method -> (predicted, true)."""
    names = list(points)
    cols = min(4, max(1, len(names)))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(2.6 * cols, 2.5 * rows), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        predicted, true = (np.asarray(v, np.float64) for v in points[name])
        ax.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, zorder=1)
        ax.scatter(predicted, true, s=10, alpha=0.7, color="C0", zorder=2)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.supxlabel(f"{quality} quality (oracle, no labels)", fontsize=9)
    fig.supylabel(f"true {metric}", fontsize=9)
    return fig


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def array_png(array: np.ndarray, *, max_side: int | None = None, colors: int | None = None) -> bytes:
    """Encode a uint8 ``(H, W)`` or ``(H, W, 3)`` array as PNG.

    ``max_side`` shrinks it (area filter) so its longer side is at most that many pixels; ``colors``
    quantises a colour image to that many palette entries (median cut, no dithering), which makes
    overlays of textured images several times smaller.
    """
    from PIL import Image

    im = Image.fromarray(
        np.ascontiguousarray(array.squeeze() if array.ndim == 3 and array.shape[2] == 1 else array)
    )
    if max_side is not None and max(im.size) > max_side:
        scale = max_side / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BOX)
    if colors is not None and im.mode == "RGB":
        im = im.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
