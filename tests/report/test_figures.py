"""Figure helpers: overlay and error-map pixels by hand, normalised confusion rows, PNG round trips."""

import io

import numpy as np
import pytest
from PIL import Image

from segscope.report import figures

PALETTE = np.array([[0, 0, 0], [200, 100, 0]], np.uint8)


def test_overlay_blends_class_colours_by_alpha():
    image = np.array([[[100], [100]], [[40], [200]]], np.uint8)  # (2, 2, 1) grey
    labels = np.array([[0, 1], [1, 0]])
    out = figures.overlay(image, labels, PALETTE, alpha=0.25)
    # 0.75 * grey + 0.25 * colour, rounded
    assert out[0, 1].tolist() == [round(0.75 * 100 + 50), round(0.75 * 100 + 25), 75]
    assert out[1, 1].tolist() == [150, 150, 150]
    with pytest.raises(ValueError, match="alpha"):
        figures.overlay(image, labels, PALETTE, alpha=2)
    with pytest.raises(ValueError, match="differ in size"):
        figures.overlay(image, labels[:1], PALETTE)


def test_error_map_marks_false_positives_red_and_misses_blue():
    image = np.full((2, 3, 3), 100, np.uint8)
    truth = np.array([[0, 1, 1], [0, 0, 255]])
    pred = np.array([[1, 0, 1], [0, 1, 1]])
    out = figures.error_map(image, pred, truth, foreground=1, ignore_index=255)
    assert out[0, 0].tolist() == [235, 40, 40] and out[1, 1].tolist() == [235, 40, 40]  # false positives
    assert out[0, 1].tolist() == [40, 120, 255]  # missed foreground
    assert out[0, 2].tolist() == [55, 55, 55] and out[1, 2].tolist() == [55, 55, 55]  # right / ignored
    multi = figures.error_map(image, pred, truth, ignore_index=255)
    assert multi[0, 1].tolist() == [235, 40, 40]


def test_confusion_matrix_figure_normalises_each_true_row():
    counts = np.array([[8, 2, 0], [1, 1, 2], [0, 0, 0]])
    fig = figures.confusion_matrix_figure(counts, ["a", "b", "c"])
    shown = np.asarray(fig.axes[0].images[0].get_array())
    np.testing.assert_allclose(shown, [[0.8, 0.2, 0], [0.25, 0.25, 0.5], [0, 0, 0]])
    assert Image.open(io.BytesIO(figures.figure_png(fig))).format == "PNG"
    with pytest.raises(ValueError, match="does not match 2 class names"):
        figures.confusion_matrix_figure(counts, ["a", "b"])


def test_learning_curve_per_fold_and_none_without_epochs():
    history = [{"epoch": e, "train_loss": 1 / e, "val_mean_iou": 0.1 * e} for e in (1, 2, 3)]
    fig = figures.learning_curve({"fold0": history, "fold1": history[:2]})
    loss_lines = fig.axes[0].get_lines()
    assert [list(line.get_xdata()) for line in loss_lines] == [[1, 2, 3], [1, 2]]
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == pytest.approx([0.1, 0.2, 0.3])
    assert figures.learning_curve([{"trial": 0, "score": 0.5}]) is None


def test_heatmap_masks_missing_values():
    table = np.array([[0.5, np.nan], [1.0, 0.25]])
    fig = figures.per_class_heatmap(table, ["m1", "m2"], ["c1", "c2"])
    shown = fig.axes[0].images[0].get_array()
    assert shown.mask.tolist() == [[False, True], [False, False]]
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.50", "–", "1.00", "0.25"]


def test_array_png_round_trips_and_shrinks():
    array = np.random.default_rng(0).integers(0, 256, (40, 20, 3), dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(figures.array_png(array))))
    np.testing.assert_array_equal(back, array)
    small = Image.open(io.BytesIO(figures.array_png(array, max_side=10, colors=16)))
    assert small.size == (5, 10) and small.mode == "P" and len(small.getcolors()) <= 16
