"""Matplotlib figures for reports (Agg backend, returned as PNG bytes)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=100)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def learning_curve_png(history: Sequence[dict[str, Any]], title: str = "") -> bytes | None:
    """Train loss (and val loss) per epoch on the left axis, validation mean IoU on the right."""
    rows = [r for r in history if "epoch" in r]
    if not rows:
        return None
    fig, ax = _figure(6.4, 3.6)
    epochs = [r["epoch"] for r in rows]
    ax.plot(epochs, [r.get("train_loss") for r in rows], label="train loss", color="tab:blue")
    if any("val_loss" in r for r in rows):
        ax.plot(
            [r["epoch"] for r in rows if "val_loss" in r],
            [r["val_loss"] for r in rows if "val_loss" in r],
            label="val loss",
            color="tab:orange",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    handles, labels = ax.get_legend_handles_labels()
    if any("val_mean_iou" in r for r in rows):
        ax2 = ax.twinx()
        ax2.plot(
            [r["epoch"] for r in rows if "val_mean_iou" in r],
            [r["val_mean_iou"] for r in rows if "val_mean_iou" in r],
            label="val mIoU",
            color="tab:green",
        )
        ax2.set_ylabel("mean IoU")
        ax2.set_ylim(0, 1)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="center right")
    ax.set_title(title or "learning curve")
    ax.grid(alpha=0.3)
    return _png(fig)


def confusion_matrix_png(matrix: np.ndarray, class_names: Sequence[str], title: str = "") -> bytes:
    """Row-normalised confusion matrix (rows: true class; each row sums to 1)."""
    m = np.asarray(matrix, np.float64)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    k = len(class_names)
    fig, ax = _figure(1.0 + 0.45 * k, 0.8 + 0.4 * k)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=60, ha="right", fontsize=8)
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
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title or "confusion matrix (row-normalised)")
    return _png(fig)


def panels_png(images: Sequence[np.ndarray], titles: Sequence[str]) -> bytes:
    """Images side by side (e.g. input, ground truth, prediction overlays)."""
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.8), dpi=100)
    for ax, image, title in zip(np.atleast_1d(axes), images, titles):
        ax.imshow(image.squeeze(), cmap="gray" if image.ndim == 2 or image.shape[-1] == 1 else None)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return _png(fig)


def heatmap_png(table: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str = "") -> bytes:
    """Methods x classes heat map of scores in [0, 1] (e.g. per-class IoU), values printed in cells."""
    fig, ax = _figure(1.5 + 0.6 * len(cols), 0.9 + 0.4 * len(rows))
    im = ax.imshow(table, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = table[i, j]
            ax.text(
                j,
                i,
                "–" if np.isnan(v) else f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if v > 0.6 else "white",
            )
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title or "per-class IoU")
    return _png(fig)
