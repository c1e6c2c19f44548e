import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segscope.cli.main import main


def test_models_lists_unet(capsys):
    assert main(["models", "--family", "deep"]) == 0
    out = capsys.readouterr().out
    assert "unet " in out and "unet_resnet18" in out


def test_train_evaluate_predict_round_trip(disc_dataset: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(disc_dataset),
            "--model",
            "unet",
            "--out",
            str(run),
            "--epochs",
            "3",
            "--batch-size",
            "4",
            "--augment",
            "none",
            "-o",
            "base_channels=4",
            "-o",
            "depth=2",
            "--quiet",
        ]
    )
    assert code == 0
    for name in (
        "segmenter.json",
        "best.safetensors",
        "last.json",
        "log.csv",
        "metrics.json",
        "report.html",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert 0 <= metrics["pixel_error"] <= 1 and "rand_error" in metrics

    assert main(["evaluate", "--run", str(run), "--data", str(disc_dataset), "--quiet"]) == 0
    evaluated = json.loads((run / "metrics_all.json").read_text())
    assert evaluated["pixel_error"] == pytest.approx(1 - evaluated["pixel_accuracy"])

    out = tmp_path / "preds"
    images = sorted((disc_dataset / "images").iterdir())[:2]
    assert main(["predict", "--run", str(run), *map(str, images), "--out", str(out), "--quiet"]) == 0
    labels = np.asarray(Image.open(out / f"{images[0].stem}.png"))
    assert labels.shape == (48, 48) and set(np.unique(labels)) <= {0, 1}
    assert np.asarray(Image.open(out / f"{images[0].stem}_overlay.png")).shape == (48, 48, 3)


def test_user_errors_exit_2_with_one_line(tmp_path: Path, disc_dataset: Path, capsys):
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "masks").mkdir()
    (bad / "images" / "a.png").write_bytes(b"garbage")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(bad / "masks" / "a.png")
    assert main(["train", "--data", str(bad), "--model", "unet", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segscope: error:") and "a.png: cannot read image" in err and "\n" not in err
    assert main(["train", "--data", str(disc_dataset), "--model", "unte", "--out", str(tmp_path / "r")]) == 2
    assert "did you mean unet" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path / "nope"), "--data", str(disc_dataset)]) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert main(["predict", "--run", str(tmp_path / "nope"), "x.png", "--out", str(tmp_path)]) == 2


def test_resume_requires_a_run(tmp_path: Path, disc_dataset: Path, capsys):
    assert (
        main(["train", "--data", str(disc_dataset), "--model", "unet", "--out", str(tmp_path), "--resume"])
        == 2
    )
    assert "nothing to resume" in capsys.readouterr().err


def test_bench_and_demo_commands(disc_dataset: Path, tmp_path: Path, capsys):
    out = tmp_path / "bench"
    code = main(
        [
            "bench",
            "--data",
            str(disc_dataset),
            "--methods",
            "otsu,watershed",
            "--cv",
            "kfold:2",
            "--time-budget-per-method",
            "20s",
            "--workers",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "otsu" in printed and "report:" in printed
    assert (out / "report.html").is_file() and (out / "leaderboard.csv").is_file()
    assert (
        main(
            [
                "bench",
                "--data",
                str(disc_dataset),
                "--methods",
                "otsu",
                "--cv",
                "lpo:5",
                "--out",
                str(tmp_path / "b2"),
            ]
        )
        == 2
    )
    assert "exceed the cap" in capsys.readouterr().err
