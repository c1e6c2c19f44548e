"""Label-free quality in ``segscope predict --oracle`` and ``segscope evaluate --oracle``: quality.csv (one
row per image, lowest first, resumable), the agreement figures evaluate writes, the not-held-out
warning, and one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from segscope.cli.main import main
from segscope.data.images import read_image
from segscope.factory import create_segmenter
from segscope.oracle import QualityOracle, save_oracle
from segscope.oracle.quality import load_any_oracle, predicted_quality
from tests.conftest import write_folder_dataset
from tests.oracle.helpers import DiceOracle, disc

SIZE = 48


def hand_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    a, b = pred.astype(bool), truth.astype(bool)
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def read_quality_csv(path: Path) -> list[tuple[str, float]]:
    with path.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["stem", "predicted_quality"]
    return [(stem, float(q)) for stem, q in rows[1:]]


@pytest.fixture
def otsu_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    create_segmenter("otsu", num_classes=2).save(run)
    return run


@pytest.fixture
def random_oracle(tmp_path: Path) -> Path:
    """A real (untrained) network oracle saved as a run directory, trained on images 'elsewhere*'."""
    torch.manual_seed(0)
    oracle = QualityOracle(1, base_channels=2, depth=1, size=16, classes=[1], num_classes=2)
    return save_oracle(oracle, tmp_path / "oracle", info={"train_images": ["elsewhere0"], "val_images": []})


def use_toy_oracle(monkeypatch, oracle_dir: Path, oracle: QualityOracle) -> None:
    """Make ``load_any_oracle`` give ``oracle`` (a toy whose forward a saved config cannot rebuild)."""
    save_oracle(oracle, oracle_dir, info={"train_images": ["img00"], "val_images": ["img01"]})
    monkeypatch.setattr("segscope.oracle.quality.load_any_oracle", lambda *a, **k: oracle)


def test_predict_writes_the_toy_oracles_exact_dice_lowest_first(tmp_path, otsu_run, monkeypatch, capsys):
    images = write_folder_dataset(tmp_path / "discs", n=6, size=SIZE) / "images"
    target = disc(SIZE, 9)
    use_toy_oracle(monkeypatch, tmp_path / "toy", DiceOracle(target, size=SIZE))
    out = tmp_path / "pred"
    argv = ["predict", "--run", str(otsu_run), str(images), "--out", str(out), "--quiet"]
    assert main([*argv, "--oracle", str(tmp_path / "toy")]) == 0
    rows = read_quality_csv(out / "quality.csv")
    expected = {p.stem: hand_dice(read_png(out / f"{p.stem}.png") == 1, target) for p in images.iterdir()}
    assert [s for s, _ in rows] == sorted(expected, key=lambda s: (expected[s], s))  # lowest first
    assert dict(rows) == pytest.approx(expected, rel=1e-5)
    assert len(set(expected.values())) == 6  # six different qualities: the order means something
    printed = capsys.readouterr().out
    mean = np.mean(list(expected.values()))
    assert f"mean predicted dice {mean:.3f} over 6 images" in printed
    lowest = [s for s, _ in rows[:5]]
    assert "look at these first: " + ", ".join(f"{s} ({expected[s]:.3f})" for s in lowest) in printed


def test_predict_quality_csv_matches_the_oracle_and_survives_a_resume(
    tmp_path, otsu_run, random_oracle, capsys
):
    images = write_folder_dataset(tmp_path / "discs", n=5, size=SIZE) / "images"
    out = tmp_path / "pred"
    argv = ["predict", "--run", str(otsu_run), str(images), "--out", str(out), "--quiet"]
    argv += ["--oracle", str(random_oracle)]
    assert main(argv) == 0
    first = read_quality_csv(out / "quality.csv")
    oracle = load_any_oracle(random_oracle)
    direct = {
        p.stem: predicted_quality(oracle, read_image(p), read_png(out / f"{p.stem}.png"))
        for p in sorted(images.iterdir())
    }
    assert len(first) == 5 and dict(first) == pytest.approx(direct, abs=1e-12)
    assert [q for _, q in first] == sorted(q for _, q in first)
    (out / "img03.png").unlink()  # as if interrupted: img03 is predicted again, the others are skipped
    capsys.readouterr()
    assert main(argv) == 0
    assert "1 predictions written" in capsys.readouterr().out
    again = read_quality_csv(out / "quality.csv")
    assert dict(again) == pytest.approx(dict(first), abs=1e-12) and len(again) == 5
    assert not list(out.glob(".*.tmp"))


def toy_truth_dataset(root: Path) -> tuple[Path, np.ndarray]:
    """Images of discs of varied size and place, every mask the same disc: Otsu's Dice varies per image."""
    truth = disc(SIZE, 10)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(1)
    for i, (radius, dy) in enumerate([(10, 0), (8, 2), (12, -3), (6, 5), (10, 8), (14, 1)]):
        shown = disc(SIZE, radius, ((SIZE - 1) / 2 + dy, (SIZE - 1) / 2))
        image = (60 + 120 * shown + rng.normal(0, 5, shown.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"img{i:02d}.png")
        Image.fromarray(truth.astype(np.uint8) * 255).save(root / "masks" / f"img{i:02d}.png")
    return root, truth


def test_evaluate_agreement_with_a_toy_oracle_equal_to_the_truth(tmp_path, otsu_run, monkeypatch, capsys):
    data, truth = toy_truth_dataset(tmp_path / "data")
    use_toy_oracle(monkeypatch, tmp_path / "toy", DiceOracle(truth, size=SIZE))
    out = tmp_path / "metrics.json"
    argv = ["evaluate", "--run", str(otsu_run), "--data", str(data), "--quiet", "--out", str(out)]
    assert main([*argv, "--oracle", str(tmp_path / "toy")]) == 0
    captured = capsys.readouterr()
    written = json.loads(out.read_text())
    report = written["oracle_quality"]
    assert "pixel_accuracy" in written and "predictions" not in written  # the usual metrics are still there
    otsu = create_segmenter("otsu", num_classes=2)
    paths = sorted((data / "images").iterdir())
    hand = {p.stem: hand_dice(otsu.predict(read_image(p)) == 1, truth) for p in paths}
    rows = report["per_image"]
    assert [r["stem"] for r in rows] == sorted(hand)
    assert {r["stem"]: r["true_quality"] for r in rows} == pytest.approx(hand, abs=1e-12)
    predicted = np.array([r["predicted_quality"] for r in rows])
    true = np.array([r["true_quality"] for r in rows])
    np.testing.assert_allclose(predicted, true, rtol=1e-5)  # the toy's soft Dice is the true Dice
    assert np.ptp(true) > 0.2
    assert report["pearson"] == pytest.approx(stats.pearsonr(predicted, true).statistic, abs=1e-12)
    assert report["spearman"] == pytest.approx(stats.spearmanr(predicted, true).statistic, abs=1e-12)
    assert report["pearson"] == pytest.approx(1.0, abs=1e-6) and report["spearman"] == 1.0
    assert report["mae"] == pytest.approx(np.mean(np.abs(predicted - true))) and report["mae"] < 1e-5
    assert report["quality"] == "dice" and report["classes"] == [1]
    # img00 and img01 trained the toy: one warning line, and the JSON says which
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "2 of the 6 evaluated images" in warnings[0]
    assert "not held-out" in warnings[0]
    assert report["trained_on_evaluated"] == ["img00", "img01"]
    assert "Pearson 1.000, Spearman 1.000" in captured.out


def test_evaluate_true_quality_leaves_out_the_ignore_index(tmp_path, otsu_run, random_oracle, capsys):
    data = write_folder_dataset(tmp_path / "data", n=4, size=SIZE)
    (data / "dataset.yaml").write_text("classes: [background, disc]\nmask_mode: index\nignore_index: 255\n")
    for mask_path in (data / "masks").iterdir():  # 0/1 labels with an ignored band of rows
        labels = (read_png(mask_path) > 0).astype(np.uint8)
        labels[20:28] = 255
        Image.fromarray(labels).save(mask_path)
    out = tmp_path / "metrics.json"
    argv = ["evaluate", "--run", str(otsu_run), "--data", str(data), "--quiet", "--out", str(out)]
    assert main([*argv, "--oracle", str(random_oracle)]) == 0
    assert "warning" not in capsys.readouterr().err  # the oracle trained on other images
    report = json.loads(out.read_text())["oracle_quality"]
    otsu = create_segmenter("otsu", num_classes=2)
    for row in report["per_image"]:
        image = read_image(data / "images" / f"{row['stem']}.png")
        labels, mask = otsu.predict(image), read_png(data / "masks" / f"{row['stem']}.png")
        keep = mask != 255
        hand = hand_dice(labels[keep] == 1, mask[keep] == 1)
        assert row["true_quality"] == pytest.approx(hand, abs=1e-12)
    predicted = [r["predicted_quality"] for r in report["per_image"]]
    true = [r["true_quality"] for r in report["per_image"]]
    assert report["pearson"] == pytest.approx(stats.pearsonr(predicted, true).statistic, abs=1e-12)
    assert report["spearman"] == pytest.approx(stats.spearmanr(predicted, true).statistic, abs=1e-12)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_oracles_are_one_line_exit_2(tmp_path, otsu_run, disc_dataset, capsys):
    images = str(disc_dataset / "images")
    predict = ["predict", "--run", str(otsu_run), images, "--out", str(tmp_path / "p"), "--quiet"]
    evaluate = ["evaluate", "--run", str(otsu_run), "--data", str(disc_dataset), "--quiet"]
    not_oracle = tmp_path / "empty"
    not_oracle.mkdir()
    for argv in (predict, evaluate):
        assert main([*argv, "--oracle", str(not_oracle)]) == 2
        assert "not an oracle run" in one_error_line(capsys)
    three = QualityOracle(1, num_targets=2, base_channels=2, depth=1, size=16, classes=[1, 2], num_classes=3)
    save_oracle(three, tmp_path / "three")
    for argv in (predict, evaluate):
        assert main([*argv, "--oracle", str(tmp_path / "three")]) == 2
        assert "trained on 3 classes, the run predicts 2" in one_error_line(capsys)
    assert not (tmp_path / "p").exists()  # refused before predicting anything
    volume_run = tmp_path / "run3d"
    create_segmenter("otsu", num_classes=2, ndim=3).save(volume_run)
    volumes = ["predict", "--run", str(volume_run), "x.npy", "--out", str(tmp_path / "v"), "--oracle"]
    assert main([*volumes, str(tmp_path / "three")]) == 2
    assert "oracle quality is for 2-D images" in one_error_line(capsys)
