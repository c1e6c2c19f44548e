"""2-D methods on volumes (slice by slice), the 3-D U-Net's Segmenter, volumes in bench and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segscope
from segscope.bench import BenchPlan, run_bench
from segscope.bench.plan import not_applicable
from segscope.cli.main import main
from segscope.data import open_dataset
from segscope.errors import UserError
from segscope.metrics import hausdorff95
from segscope.slice_wise import SliceWiseSegmenter
from tests.conftest import write_folder_dataset, write_volume_dataset

TINY_3D = {
    "base_channels": 4,
    "epochs": 2,
    "batch_size": 2,
    "samples_per_epoch": 4,
    "patch_size": [8, 16, 16],
    "augment": "light",
    "device": "cpu",
}


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> Path:
    return write_volume_dataset(tmp_path_factory.mktemp("vol") / "balls", n=3, shape=(16, 32, 32))


def test_a_2d_method_runs_slice_by_slice_and_round_trips(volumes, tmp_path):
    ds = open_dataset(volumes, spacing=[2, 1, 1])
    seg = segscope.create_segmenter("otsu", num_classes=2, ndim=3)
    assert isinstance(seg, SliceWiseSegmenter) and seg.ndim == 3 and seg.task == "binary"
    seg.fit(ds.subset([0, 1]), progress=False)
    volume, truth = ds[2]
    pred = seg.predict(volume)
    assert pred.shape == truth.shape == (16, 32, 32) and pred.dtype == np.int64
    # each slice is the 2-D method's own prediction of that slice (axis order kept)
    z = 8
    assert np.array_equal(pred[z], seg.base.predict(volume[z]))
    has = truth.reshape(len(truth), -1).any(1)  # Otsu splits every slice in two, even one of pure noise
    assert (pred[has] == truth[has]).mean() > 0.9  # slices through the bright balls: a threshold finds them
    seg.save(tmp_path / "run")
    config = json.loads((tmp_path / "run" / "segmenter.json").read_text())
    assert config["method"]["ndim"] == 3 and config["method"]["slice_wise"] is True
    again = segscope.load(tmp_path / "run")
    assert isinstance(again, SliceWiseSegmenter)
    assert np.array_equal(again.predict(volume), pred)


def test_3d_methods_are_refused_on_images_and_applicable_rules(tmp_path):
    with pytest.raises(UserError, match="3-D method"):
        segscope.create_segmenter("unet3d", num_classes=2, ndim=2)
    assert "3-D method" in not_applicable("unet3d", 2, "semantic", ndim=2)
    assert not_applicable("unet3d", 2, "semantic", ndim=3) is None
    assert not_applicable("otsu", 2, "semantic", ndim=3) is None
    assert "instance" in not_applicable("watershed_instances", 2, "instance", ndim=3)
    images = open_dataset(write_folder_dataset(tmp_path / "discs", n=2))
    seg = segscope.create_segmenter("unet3d", num_classes=2, in_channels=1, ndim=3, **TINY_3D)
    with pytest.raises(UserError, match="2-D dataset"):
        seg.fit(images, progress=False)


def test_unet3d_segmenter_fits_predicts_and_round_trips(volumes, tmp_path):
    ds = open_dataset(volumes, spacing=[2, 1, 1])
    seg = segscope.create_segmenter("unet3d", num_classes=2, in_channels=1, ndim=3, **TINY_3D)
    seg.fit(ds.subset([0, 1]), ds.subset([2]), out_dir=tmp_path / "run", progress=False)
    assert [h for h in seg.history if "val_mean_iou" in h], "validation ran on the val volume"
    volume = ds.load_image(2)
    proba = seg.predict_proba(volume)
    assert proba.shape == (2, 16, 32, 32)
    np.testing.assert_allclose(proba.sum(0), 1, atol=1e-5)
    pred = seg.predict(volume)
    assert pred.shape == (16, 32, 32) and set(np.unique(pred)) <= {0, 1}
    again = segscope.load(tmp_path / "run")
    assert again.ndim == 3 and again.spacing == (2.0, 1.0, 1.0)
    assert np.array_equal(again.predict(volume), pred)


def test_bench_on_volumes_folds_along_z_with_3d_scores(volumes, tmp_path):
    plan = BenchPlan(
        data=str(volumes),
        methods=["otsu", "unet3d"],
        format="volume",
        spacing=[2.0, 1.0, 1.0],
        blocks=2,
        cv="kfold:3",
        holdout=0.25,
        time_budget_s=20,
        options={"unet3d": TINY_3D},
        workers=1,
        gallery=2,
    )
    results = run_bench(plan, tmp_path / "bench", progress=False)
    assert not results["errors"], results["errors"]
    assert results["metric_keys"][:4] == ["foreground_dice", "foreground_iou", "hd95", "surface_distance"]
    splits = json.loads((tmp_path / "bench" / "splits.json").read_text())
    assert len(splits["splits"]) == 3
    # the otsu cell's HD95 is the surface distance of its prediction in the given voxel spacing
    fold = results["cells"]["otsu"][0]
    cell = tmp_path / "bench" / "cells" / "otsu" / fold["fold"]
    seg = segscope.load(cell)
    ds = open_dataset(volumes, format="volume", spacing=[2, 1, 1], blocks=2)
    row = fold["per_image"][0]
    index = ds.stems.index(row["name"])
    pred, truth = seg.predict(ds.load_image(index)), ds.load_mask(index)
    assert row["hd95"] == pytest.approx(hausdorff95(pred == 1, truth == 1, (2.0, 1.0, 1.0)))
    assert row["hd95"] != pytest.approx(hausdorff95(pred == 1, truth == 1))  # spacing matters here
    # the 3-D U-Net validated on slabs carved from its training blocks, never the test block
    record = results["cells"]["unet3d"][0]
    assert record["val_images"] and not set(record["val_images"]) & {r["name"] for r in record["per_image"]}
    gallery = sorted((tmp_path / "bench" / "cells" / "otsu").glob("*/gallery/*.png"))
    assert gallery and np.asarray(Image.open(gallery[0])).shape == (32, 32)  # the middle z-slice
    from segscope.report import render_bench_report

    html = render_bench_report(tmp_path / "bench", results=results).read_text()
    assert "hd95" in html and "Gallery" in html


def test_cli_trains_evaluates_and_predicts_a_volume(volumes, tmp_path, capsys):
    run = tmp_path / "run"
    options = [f"{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in TINY_3D.items()]
    args = ["train", "--model", "unet3d", "--data", str(volumes), "--format", "volume"]
    args += ["--spacing", "2,1,1", "--out", str(run), "--quiet"]
    for option in options:
        args += ["-o", option]
    assert main(args) == 0
    assert main(["evaluate", "--run", str(run), "--data", str(volumes), "--spacing", "2,1,1", "--quiet"]) == 0
    metrics = json.loads(next(run.glob("metrics_*.json")).read_text())
    assert "hd95" in metrics and "foreground_dice" in metrics  # a 2-epoch model may find no foreground yet
    out = tmp_path / "pred"
    assert main(["predict", "--run", str(run), str(volumes / "images" / "vol0.npy"), "--out", str(out)]) == 0
    labels = np.load(out / "vol0_labels.npy")
    assert labels.shape == (16, 32, 32)
    assert (out / "vol0_overlay.png").is_file()
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not a numpy file")
    capsys.readouterr()
    assert main(["predict", "--run", str(run), str(bad), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.npy" in err and "\n" not in err
