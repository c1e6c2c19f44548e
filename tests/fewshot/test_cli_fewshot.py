"""``segscope fewshot train | evaluate | predict`` end to end on a tiny synthetic CamVid-layout dataset:
coloured blobs of a few classes on a road, the 4 CamVid class folds, fold 3 (Pedestrian, Bicyclist)
unseen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segscope.cli.main import main

COLOURS = {1: (200, 60, 60), 5: (40, 160, 40), 8: (60, 60, 220), 9: (240, 220, 30), 10: (230, 30, 230)}
H, W = 64, 80


def blob_image(rng: np.random.Generator, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    image = np.full((H, W, 3), 90, np.uint8) + rng.integers(0, 20, (H, W, 3), dtype=np.uint8)
    mask = np.full((H, W), 3, np.uint8)  # Road
    for c in classes:
        r, k = rng.integers(0, H - 20), rng.integers(0, W - 20)
        mask[r : r + 20, k : k + 20] = c
        image[r : r + 20, k : k + 20] = COLOURS[c]
    mask[0, :4] = 11  # a few Unlabelled pixels
    return image, mask


@pytest.fixture(scope="module")
def camvid_like(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("camvid_like")
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("val", 14)):
        (root / split).mkdir()
        (root / f"{split}annot").mkdir()
        for i in range(n):
            classes = list(rng.choice([1, 5, 8], 2, replace=False)) + [[9], [10], [9, 10]][i % 3]
            image, mask = blob_image(rng, classes)
            Image.fromarray(image).save(root / split / f"{i:03d}.png")
            Image.fromarray(mask).save(root / f"{split}annot" / f"{i:03d}.png")
    return root


def test_train_evaluate_predict(camvid_like: Path, tmp_path: Path, capsys):
    run = tmp_path / "proto"
    argv = ["fewshot", "train", "--data", str(camvid_like), "--fold", "3", "--size", "64,80", "--quiet",
            "--time-budget", "60", "--max-steps", "40", "--min-pixels", "100", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "prototypes: 40 episodes" in out and "unseen: Pedestrian, Bicyclist" in out
    meta = json.loads((run / "fewshot.json").read_text())
    assert meta["unseen"] == ["Pedestrian", "Bicyclist"] and meta["protocol"]["mode"] == "train"
    assert meta["protocol"]["selection_images"] == 4  # 15 % of the 24 training images, never val

    ev = tmp_path / "eval"
    argv = ["fewshot", "evaluate", "--data", str(camvid_like), "--run", str(run), "--episodes", "12",
            "--shots", "1,2", "--min-pixels", "100", "--quiet", "--out", str(ev)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "prototypes" in out and "finetune" in out and "report:" in out
    results = json.loads((ev / "fewshot.json").read_text())
    for method in ("prototypes", "finetune"):
        for shot in ("1-shot", "2-shot"):
            s = results["scores"][method][shot]
            assert s["episodes"] == 12 and 0 <= s["mean_iou"] <= 1
            assert set(s["per_class_iou"]) <= {"Pedestrian", "Bicyclist"}
    # a colour blob is easy: the baseline separates it from the road
    assert results["scores"]["finetune"]["2-shot"]["fb_iou"] > 0.6
    episodes = json.loads((ev / "episodes_1shot.json").read_text())["episodes"]
    assert len(episodes) == 12 and all(set(e["classes"]) <= {9, 10} for e in episodes)
    html = (ev / "report.html").read_text()
    assert "Few-shot segmentation: unseen classes Pedestrian, Bicyclist" in html and "data:image/png" in html

    image, mask = blob_image(np.random.default_rng(5), [9])
    query, qmask = blob_image(np.random.default_rng(6), [9, 1])
    Image.fromarray(image).save(tmp_path / "s.png")
    Image.fromarray(((mask == 9) * 255).astype(np.uint8)).save(tmp_path / "s_mask.png")
    Image.fromarray(query).save(tmp_path / "q.png")
    pred = tmp_path / "pred"
    argv = ["fewshot", "predict", "--support", str(tmp_path / "s.png"), str(tmp_path / "s_mask.png"),
            "--query", str(tmp_path / "q.png"), "--out", str(pred)]  # fmt: skip
    assert main(argv) == 0  # the fine-tuning baseline: no run needed
    labels = np.asarray(Image.open(pred / "q.png"))
    assert labels.shape == (H, W)
    truth = qmask == 9
    iou = (labels.astype(bool) & truth).sum() / (labels.astype(bool) | truth).sum()
    assert iou > 0.5
    assert main([*argv[:-2], "--run", str(run), "--out", str(pred)]) == 0


def test_bad_arguments_are_one_line(camvid_like: Path, tmp_path: Path, capsys):
    assert main(["fewshot", "train", "--data", str(camvid_like), "--fold", "7", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fold" in err
    assert (
        main(
            [
                "fewshot",
                "evaluate",
                "--data",
                str(camvid_like),
                "--run",
                str(tmp_path),
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "not a few-shot run" in capsys.readouterr().err
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((H, W), np.uint8)).save(blank)
    argv = [
        "fewshot",
        "predict",
        "--support",
        str(blank),
        str(blank),
        "--query",
        str(blank),
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 2
    assert "marks no pixel" in capsys.readouterr().err
