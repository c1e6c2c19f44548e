"""The single-run report: metrics table, learning curve, confusion matrix and overlays, self-contained."""

import base64
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from segscope.report import render_run_report


def test_run_report_has_metrics_curve_and_overlays(tmp_path: Path):
    image = np.zeros((16, 16, 1), np.uint8)
    truth = np.zeros((16, 16), np.int64)
    truth[4:12, 4:12] = 1
    metrics = {
        "method": "unet",
        "fit_seconds": 12.5,
        "num_parameters": 1234,
        "command": "segscope train --data x",
        "metrics": {
            "mean_iou": 0.75,
            "pixel_error": 0.125,
            "iou": {"bg": 0.8, "fg": 0.7},
            "dice": {"bg": 0.9, "fg": 0.8},
            "confusion_matrix": [[10, 2], [1, 5]],
        },
    }
    history = [{"epoch": 1, "train_loss": 0.9, "val_mean_iou": 0.5}, {"epoch": 2, "train_loss": 0.5}]
    out = render_run_report(
        tmp_path,
        tmp_path / "report.html",
        metrics=metrics,
        history=history,
        overlays=[("img0", image, truth, truth)],
        class_names=["bg", "fg"],
    )
    html = out.read_text()
    assert "<td>mean_iou</td><td>0.7500</td>" in html and "<td>pixel_error</td><td>0.1250</td>" in html
    assert "<td>fg</td><td>0.7000</td><td>0.8000</td>" in html and "1,234 parameters" in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 1 + 1 + 3  # learning curve, confusion matrix, image + truth + prediction
    overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(images[-1]))).convert("RGB"))
    assert overlay.shape == (16, 16, 3) and overlay[8, 8].tolist() != overlay[0, 0].tolist()
    with Image.open(tmp_path / "learning_curve.png") as curve:
        assert curve.format == "PNG"


def test_run_report_without_metrics_or_history(tmp_path: Path):
    out = render_run_report(tmp_path, tmp_path / "r.html", metrics={"method": "otsu"}, history=[])
    html = out.read_text()
    assert "segscope run: otsu" in html and "<img" not in html
    assert not (tmp_path / "learning_curve.png").exists()
