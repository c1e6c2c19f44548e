"""``segscope refine train`` -> ``segscope refine`` -> files; the evaluate and bench hooks."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import jaccard_score

import segscope
from segscope.bench.cell import CellTask, run_cell
from segscope.cli.main import main
from segscope.data import open_dataset, read_image
from segscope.errors import UserError
from segscope.factory import create_segmenter, get_entry, split_options
from segscope.oracle import RefinedSegmenter, load_oracle
from tests.conftest import write_folder_dataset

TRAIN = [
    "--kind",
    "global",
    "--size",
    "16",
    "--depth",
    "2",
    "--base-channels",
    "4",
    "--epochs",
    "2",
    "--samples-per-image",
    "8",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = write_folder_dataset(tmp_path_factory.mktemp("data") / "discs", n=6, size=40)
    oracle = root.parent / "oracle"
    assert main(["refine", "train", "--data", str(root), "--out", str(oracle), *TRAIN, "--quiet"]) == 0
    return root, oracle


def test_train_then_refine_round_trip(trained, tmp_path: Path, capsys):
    root, oracle = trained
    meta = json.loads((oracle / "oracle.json").read_text())
    assert meta["oracle"]["size"] == 16 and meta["val_metrics"]["n"] > 0 and len(meta["val_images"]) == 1
    image, mask = root / "images" / "img00.png", root / "masks" / "img00.png"  # a 0/255 mask
    out = tmp_path / "refined"
    code = main(
        ["refine", "--oracle", str(oracle), "--image", str(image), "--mask", str(mask), "--out", str(out)]
    )
    assert code == 0
    labels = np.asarray(Image.open(out / "img00.png"))
    assert labels.shape == (40, 40) and set(np.unique(labels)) <= {0, 1}
    record = json.loads((out / "img00_refine.json").read_text())
    after = record["classes"]["1"]
    # the recorded qualities are the oracle's scores of the mask given and of the mask written
    scorer, picture = load_oracle(oracle), read_image(image)
    given = (np.asarray(Image.open(mask)) == 255).astype(np.float32)
    assert after["predicted_quality_before"] == pytest.approx(scorer.score(picture, given, 1), abs=1e-5)
    written = np.asarray(Image.open(out / "img00_prob.png")) / 255.0
    assert after["predicted_quality_after"] == pytest.approx(scorer.score(picture, written, 1), abs=5e-3)
    np.testing.assert_array_equal(labels, written > 0.5)
    assert (out / "img00_prob.png").is_file() and (out / "img00_overlay.png").is_file()
    assert "predicted dice" in capsys.readouterr().out


def test_from_scratch_and_probability_masks(trained, tmp_path: Path):
    root, oracle = trained
    image = root / "images" / "img01.png"
    assert (
        main(
            [
                "refine",
                "--oracle",
                str(oracle),
                "--image",
                str(image),
                "--from-scratch",
                "--iterations",
                "3",
                "--out",
                str(tmp_path / "s"),
                "--quiet",
            ]
        )
        == 0
    )
    prob = tmp_path / "p.png"
    Image.fromarray(np.full((40, 40), 128, np.uint8)).save(prob)
    assert (
        main(
            [
                "refine",
                "--oracle",
                str(oracle),
                "--image",
                str(image),
                "--mask",
                str(prob),
                "--iterations",
                "3",
                "--out",
                str(tmp_path / "p"),
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        json.loads((tmp_path / "p" / "img01_refine.json").read_text())["classes"]["1"]["best_iteration"] <= 3
    )


def test_user_errors_exit_2(trained, tmp_path: Path, capsys):
    root, oracle = trained
    image = str(root / "images" / "img00.png")
    assert main(["refine", "--oracle", str(oracle), "--image", image, "--out", str(tmp_path)]) == 2
    assert "--mask or --from-scratch" in capsys.readouterr().err
    assert main(["refine", "--oracle", str(tmp_path), "--image", image, "--from-scratch", "--out", "x"]) == 2
    assert "not an oracle run" in capsys.readouterr().err
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(small)
    assert (
        main(["refine", "--oracle", str(oracle), "--image", image, "--mask", str(small), "--out", "x"]) == 2
    )
    assert "small.png: mask size" in capsys.readouterr().err


def test_evaluate_with_refine_oracle(trained, capsys):
    root, oracle = trained
    run = root.parent / "otsu_run"
    create_segmenter("otsu", 2).fit(open_dataset(root), progress=False).save(run)
    args = ["evaluate", "--run", str(run), "--data", str(root), "--refine-oracle", str(oracle)]
    assert main([*args, "--refine-iterations", "3", "--quiet"]) == 0
    result = json.loads((run / "metrics_all_refined.json").read_text())
    assert result["refine_oracle"] == str(oracle)
    # recomputed apart: the refined otsu predictions, scored with scikit-learn over all pixels
    refined = RefinedSegmenter(segscope.load(run), load_oracle(oracle), iterations=3)
    ds = open_dataset(root)
    pred = np.concatenate([refined.predict(ds.load_image(i)).ravel() for i in range(len(ds))])
    true = np.concatenate([ds.load_mask(i).ravel() for i in range(len(ds))])
    assert result["mean_iou"] == pytest.approx(jaccard_score(true, pred, average="macro"), abs=1e-9)


def test_bench_cell_with_refine_oracle(trained, tmp_path: Path):
    root, oracle = trained
    ds = open_dataset(root)
    options = {"refine_oracle": str(oracle), "refine_iterations": 2}
    sections = split_options(get_entry("otsu"), options)
    assert sections.model == {} and sections.stages == [
        {"kind": "oracle", "oracle_dir": str(oracle), "iterations": 2}
    ]
    with pytest.raises(UserError, match="refine_oracle"):
        split_options(get_entry("otsu"), {"refine_iterations": 2})
    task = CellTask(
        "otsu",
        "fold0",
        options,
        ds.subset([0, 1, 2]),
        ds.subset([3, 4]),
        tmp_path / "cell",
        30.0,
        0.0,
        0,
        (),
        1,
    )
    record = run_cell(task)
    assert record["status"] == "ok", record.get("message")
    assert record["state"]["method"]["name"] == "otsu"
    assert record["state"]["stages"] == [{"kind": "oracle", "oracle_dir": str(oracle), "iterations": 2}]
    reloaded = segscope.load(tmp_path / "cell")  # the cell reopens refined, not as plain otsu
    assert reloaded.name == "otsu+oracle" and reloaded.stages[0].options == {"iterations": 2}


def test_local_oracle_train_and_refine(tmp_path: Path, capsys):
    from segscope.oracle.local import load_local_oracle

    root = write_folder_dataset(tmp_path / "discs", n=6, size=32)
    oracle = tmp_path / "local"
    args = ["--kind", "local", "--crop", "32", "--depth", "2", "--base-channels", "4", "--epochs", "2"]
    assert main(["refine", "train", "--data", str(root), "--out", str(oracle), *args, "--quiet"]) == 0
    meta = json.loads((oracle / "oracle.json").read_text())
    assert meta["oracle_kind"] == "local" and len(meta["val_images"]) == 1
    image, mask, out = root / "images" / "img00.png", root / "masks" / "img00.png", tmp_path / "r"
    cmd = ["refine", "--oracle", str(oracle), "--image", str(image), "--mask", str(mask), "--out", str(out)]
    assert main([*cmd, "--iterations", "2", "--step", "1"]) == 0
    record = json.loads((out / "img00_refine.json").read_text())
    scorer, picture = load_local_oracle(oracle), read_image(image)
    given = (np.asarray(Image.open(mask)) == 255).astype(np.int64)
    assert record["predicted_quality_before"] == pytest.approx(scorer.score_labels(picture, given), abs=1e-5)
    assert record["options"]["update"] == "fixed_point" and len(record["estimates"]) == 3
    for name in ("img00.png", "img00_prob.png", "img00_quality.png", "img00_overlay.png"):
        assert (out / name).is_file(), name
    # fixed point with step 1: the written probabilities are the oracle's map of the first refinement
    labels = np.asarray(Image.open(out / "img00.png"))
    np.testing.assert_array_equal(labels, np.asarray(Image.open(out / "img00_prob.png")) > 127)
    assert "predicted dice" in capsys.readouterr().out
