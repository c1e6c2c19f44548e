"""``segscope points train | evaluate | predict`` end to end: a tiny generated-set run, evaluated on the 16
real ShapeNet-Part shapes, predicting a real .pts; bad input is one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segscope.cli.main import main
from segscope.points.io import NUM_PARTS, read_seg, write_ply
from tests.conftest import shared_dataset


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("points") / "run"
    argv = ["points", "train", "--generated", "3", "--categories", "Chair,Mug,laptop", "--points", "128",
            "--width", "0.125", "--batch-size", "4", "--epochs", "2", "--time-budget", "30", "--quiet",
            "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    return run


def test_train_writes_a_run(run_dir: Path, capsys):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["source"] == "generated" and config["data"]["categories"] == [
        "Chair",
        "Mug",
        "Laptop",
    ]
    assert config["data"]["val_per_category"] == 2 and config["model"]["width"] == 0.125
    assert len(config["history"]) == 2 and (run_dir / "best.safetensors").is_file()


def test_evaluate_and_predict_on_real_shapes(run_dir: Path, tmp_path: Path, capsys):
    sample = shared_dataset("shapenet_part_sample")
    capsys.readouterr()
    assert main(["points", "evaluate", "--run", str(run_dir), "--data", str(sample), "--pictures", "2",
                 "--out", str(tmp_path / "ev")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "instance mIoU" in out and "class mIoU" in out and "Motorbike" in out
    results = json.loads((tmp_path / "ev" / "points_eval.json").read_text())
    assert results["n_shapes"] == 16 and len(results["per_category"]) == 16
    assert np.mean([s["miou"] for s in results["shapes"]]) == pytest.approx(results["instance_miou"])
    html = (tmp_path / "ev" / "index.html").read_text()
    assert html.count("<img") == 2 and "instance mIoU" in html and (tmp_path / "ev" / "shape_1.png").is_file()

    pts = next((sample / "03001627" / "points").glob("*.pts"))  # a chair; the category comes from the path
    ply = tmp_path / "scan.ply"
    write_ply(ply, np.loadtxt(pts)[:500])
    assert main(["points", "predict", "--run", str(run_dir), str(pts), "--out", str(tmp_path / "pred")]) == 0
    labels = read_seg(tmp_path / "pred" / f"{pts.stem}.seg")
    assert len(labels) == len(np.loadtxt(pts)) and labels.min() >= 1 and labels.max() <= NUM_PARTS["Chair"]
    assert "mIoU" in capsys.readouterr().out  # scored against the .seg beside it
    argv = [
        "points",
        "predict",
        "--run",
        str(run_dir),
        str(ply),
        "--category",
        "mug",
        "--out",
        str(tmp_path / "p2"),
    ]
    assert main(argv) == 0
    mug = np.load(tmp_path / "p2" / "scan.npy")
    assert mug.shape == (500,) and set(np.unique(mug)) <= {1, 2}


def test_bad_input_is_one_line(run_dir: Path, tmp_path: Path, capsys):
    corrupt = tmp_path / "03001627" / "points" / "broken.pts"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_text("0.1 0.2 0.3\n0.1 oops\n")
    capsys.readouterr()
    assert main(["points", "predict", "--run", str(run_dir), str(corrupt), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.pts: line 2" in err and not (tmp_path / "o").exists()
    np.save(tmp_path / "c.npy", np.zeros((5, 3)))
    assert (
        main(["points", "predict", "--run", str(run_dir), str(tmp_path / "c.npy"), "--out", str(tmp_path)])
        == 2
    )
    assert "pass --category" in capsys.readouterr().err
    assert main(["points", "evaluate", "--run", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "not a points run" in capsys.readouterr().err
