"""The bench protocol: identical splits for every method, train/test disjoint, failure isolation, resume."""

import json
from pathlib import Path

import numpy as np
import pytest

from segscope.bench import BenchPlan, run_bench
from segscope.data.splits import Split, load_splits, save_splits
from segscope.errors import UserError
from segscope.report import render_bench_report
from tests.bench.fake_methods import BROKEN, DARKER, LEVELS, MEAN, fits
from tests.bench.helpers import write_multiclass_dataset, write_train_val_dataset
from tests.conftest import write_folder_dataset


def _plan(data: Path, methods, **kw) -> BenchPlan:
    kw = {"cv": "kfold:3", "workers": 1, "gallery": 2, "time_budget_s": 30.0, **kw}
    return BenchPlan(data=str(data), methods=list(methods), **kw)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One bench of a good, a worse and a failing method, with a 25 % hold-out for validation."""
    root = tmp_path_factory.mktemp("protocol")
    data = write_folder_dataset(root / "discs", n=8)
    out = root / "bench"
    results = run_bench(_plan(data, [MEAN, DARKER, BROKEN], holdout=0.25), out, progress=False)
    render_bench_report(out, results=results)  # the bench writes results only; the CLI renders after it
    return data, out, results


def test_every_method_sees_the_same_disjoint_folds(bench):
    data, out, results = bench
    saved = load_splits(out / "splits.json")
    assert saved.spec == "kfold:3" and saved.n == 8 and len(saved.splits) == 3
    stems = sorted(p.stem for p in (data / "images").iterdir())
    tested = []
    for split in saved.splits:
        seen = {
            m: json.loads((out / "cells" / m / split.name / "result.json").read_text())
            for m in (MEAN, DARKER)
        }
        train_stems = [stems[i] for i in split.train]
        test_stems = [stems[i] for i in split.test]
        for record in seen.values():
            state = record["state"]
            # fit saw the training part minus the hold-out, validated on the hold-out, never a test image
            assert sorted(state["train_stems"] + state["val_stems"]) == train_stems
            assert len(state["val_stems"]) == round(0.25 * len(train_stems))
            assert not set(state["train_stems"] + state["val_stems"]) & set(test_stems)
            assert [r["name"] for r in record["per_image"]] == test_stems
        assert seen[MEAN]["state"]["train_stems"] == seen[DARKER]["state"]["train_stems"]
        assert seen[MEAN]["state"]["val_stems"] == seen[DARKER]["state"]["val_stems"]
        tested += test_stems
    assert sorted(tested) == stems  # every image is tested exactly once


def test_a_failing_method_is_isolated_and_reported(bench):
    _, out, results = bench
    assert [e["method"] for e in results["leaderboard"]] == [MEAN, DARKER]
    errors = results["errors"][BROKEN]
    assert [e["fold"] for e in errors] == ["fold0", "fold1", "fold2"]
    assert errors[0]["message"] == "RuntimeError: this method always fails"
    record = json.loads((out / "cells" / BROKEN / "fold0" / "error.json").read_text())
    assert "Traceback" in record["traceback"] and "this method always fails" in record["traceback"]
    assert not (out / "cells" / BROKEN / "fold0" / "result.json").exists()
    html = (out / "report.html").read_text()
    assert "RuntimeError: this method always fails" in html


def test_cells_hold_metrics_times_and_gallery_predictions(bench):
    data, out, results = bench
    record = json.loads((out / "cells" / MEAN / "fold0" / "result.json").read_text())
    for key in ("fit_seconds", "seconds_per_image", "num_parameters", "history", "state", "per_image"):
        assert key in record
    matrix = np.array(record["metrics"]["confusion_matrix"])
    assert matrix.shape == (2, 2) and matrix.sum() == 48 * 48 * record["test_images"]
    per_image = [r["pixel_error"] for r in record["per_image"]]
    assert record["metrics"]["pixel_error"] == pytest.approx(np.mean(per_image))
    from PIL import Image

    # the tuned state came from the training images only: their mean grey value
    fitted = record["state"]["train_stems"]
    level = np.mean([np.asarray(Image.open(data / "images" / f"{s}.png")).mean() for s in fitted])
    assert record["history"][0]["level"] == pytest.approx(level)
    gallery = results["plan"]["gallery"]
    assert len(gallery) == 2
    saved = sorted(p.stem for p in (out / "cells" / MEAN).glob("*/gallery/*.png"))
    assert saved == sorted(gallery)
    labels = np.asarray(Image.open(next((out / "cells" / MEAN).glob(f"*/gallery/{gallery[0]}.png"))))
    assert labels.shape == (48, 48) and set(np.unique(labels)) <= {0, 1}


def test_resume_keeps_finished_cells_retries_failed_ones_and_reuses_the_splits(tmp_path: Path):
    data = write_folder_dataset(tmp_path / "discs", n=6)
    out = tmp_path / "bench"
    run_bench(_plan(data, [MEAN, BROKEN]), out, progress=False)
    cells = out / "cells"
    assert [fits(cells / MEAN / f"fold{i}") for i in range(3)] == [1, 1, 1]

    run_bench(_plan(data, [MEAN, BROKEN]), out, progress=False)
    assert [fits(cells / MEAN / f"fold{i}") for i in range(3)] == [1, 1, 1]  # finished: not fitted again
    assert [fits(cells / BROKEN / f"fold{i}") for i in range(3)] == [2, 2, 2]  # failed: retried

    # A method added later must get the saved folds, even if drawing them again would differ.
    custom = [Split("fold0", [2, 3, 4, 5], [0, 1]), Split("fold1", [0, 1, 4, 5], [2, 3]),
              Split("fold2", [0, 1, 2, 3], [4, 5])]  # fmt: skip
    save_splits(out / "splits.json", custom, spec="kfold:3", n=6, seed=0)
    results = run_bench(_plan(data, [MEAN, DARKER], options={MEAN: {"offset": 5}}), out, progress=False)
    stems = sorted(p.stem for p in (data / "images").iterdir())
    for split in custom:
        record = json.loads((cells / DARKER / split.name / "result.json").read_text())
        assert record["state"]["train_stems"] == [stems[i] for i in split.train]
    # changed options re-run that method's cells; a method no longer asked for leaves the report
    assert [fits(cells / MEAN / f"fold{i}") for i in range(3)] == [2, 2, 2]
    assert {e["method"] for e in results["leaderboard"]} == {MEAN, DARKER} and not results["errors"]


def test_a_changed_protocol_is_refused(tmp_path: Path):
    data = write_folder_dataset(tmp_path / "discs", n=6)
    out = tmp_path / "bench"
    run_bench(_plan(data, [MEAN]), out, progress=False)
    with pytest.raises(UserError, match=r"bench.json: this bench was run with cv='kfold:3', not 'kfold:2'"):
        run_bench(_plan(data, [MEAN], cv="kfold:2"), out, progress=False)
    with pytest.raises(UserError, match="time_budget_s=30.0, not 60.0"):
        run_bench(_plan(data, [MEAN], time_budget_s=60.0), out, progress=False)


def test_process_pool_gives_the_same_scores_as_one_process(tmp_path: Path):
    data = write_folder_dataset(tmp_path / "discs", n=6)
    one = run_bench(_plan(data, [MEAN, DARKER]), tmp_path / "one", progress=False)
    two = run_bench(_plan(data, [MEAN, DARKER], workers=2), tmp_path / "two", progress=False)
    for a, b in zip(one["leaderboard"], two["leaderboard"]):
        assert a["method"] == b["method"] and a["pixel_error"] == b["pixel_error"]
    assert [fits(tmp_path / "two" / "cells" / MEAN / f"fold{i}") for i in range(3)] == [1, 1, 1]


def test_dataset_split_mode_trains_on_train_and_tests_on_val(tmp_path: Path):
    data = write_train_val_dataset(tmp_path / "tv")
    results = run_bench(_plan(data, [MEAN], cv=None, split="train/val"), tmp_path / "b", progress=False)
    (record,) = results["cells"][MEAN]
    assert record["fold"] == "train-val"
    assert record["state"]["train_stems"] == [f"img{i:02d}" for i in range(6)]
    assert [r["name"] for r in record["per_image"]] == ["val0", "val1", "val2"]
    assert np.isnan(results["leaderboard"][0]["pixel_error_sd"])  # one fold: no spread
    assert set(results["plan"]["gallery"]) <= {"val0", "val1", "val2"}


def test_multiclass_bench_skips_binary_methods_and_scores_like_an_independent_count(tmp_path: Path):
    from sklearn.metrics import confusion_matrix

    data = write_multiclass_dataset(tmp_path / "multi")
    results = run_bench(_plan(data, [LEVELS, MEAN], cv="kfold:2"), tmp_path / "m", progress=False)
    render_bench_report(tmp_path / "m", results=results)
    assert "binary" in results["plan"]["skipped"][MEAN] and not (tmp_path / "m" / "cells" / MEAN).exists()
    assert results["metric_keys"][:2] == ["mean_iou", "pixel_accuracy"]
    html = (tmp_path / "m" / "report.html").read_text()
    assert f"Skipped <b>{MEAN}</b>" in html
    # fold0's mean IoU against sklearn's confusion matrix of the same predictions
    from PIL import Image

    record = results["cells"][LEVELS][0]
    truth, pred = [], []
    for row in record["per_image"]:
        image = np.asarray(Image.open(data / "images" / f"{row['name']}.png")).astype(np.int64)
        truth.append(np.asarray(Image.open(data / "masks" / f"{row['name']}.png")).ravel())
        pred.append(np.minimum(image * 3 // 256, 2).ravel())
    cm = confusion_matrix(np.concatenate(truth), np.concatenate(pred), labels=[0, 1, 2])
    iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    assert record["metrics"]["mean_iou"] == pytest.approx(iou.mean())
    assert list(results["per_class_iou"][LEVELS]) == ["dark", "mid", "bright"]


def test_a_deep_method_trains_in_process_and_logs_its_history(tmp_path: Path):
    import torch

    from segscope import create_model

    data = write_folder_dataset(tmp_path / "discs", n=6, size=32)
    threads = torch.get_num_threads()
    options = {"base_channels": 4, "depth": 2, "epochs": 2, "batch_size": 4, "augment": "none"}
    results = run_bench(
        _plan(data, ["unet"], cv="kfold:2", threads=1, options={"unet": options}),
        tmp_path / "d",
        progress=False,
    )
    assert not results["errors"]
    render_bench_report(tmp_path / "d", results=results)
    record = results["cells"]["unet"][0]
    assert [h["epoch"] for h in record["history"]] == [1, 2] and "train_loss" in record["history"][0]
    model = create_model("unet", num_classes=2, in_channels=1, base_channels=4, depth=2)
    assert record["num_parameters"] == sum(p.numel() for p in model.parameters())
    assert (tmp_path / "d" / "cells" / "unet" / "fold0" / "segmenter.json").is_file()
    assert "Learning curves" in (tmp_path / "d" / "report.html").read_text()
    assert torch.get_num_threads() == threads  # the deep cells' thread setting did not leak


def _isbi_subset(tmp_path: Path, count: int, crop: int | None = None) -> Path:
    """The first ``count`` ISBI 2012 slices (optionally their top-left ``crop`` square) in a folder."""
    from PIL import Image

    from tests.conftest import shared_dataset

    isbi = shared_dataset("isbi2012")
    data = tmp_path / "isbi_subset"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
        for i in range(count):
            with Image.open(isbi / sub / f"{i:02d}.png") as im:
                (im.crop((0, 0, crop, crop)) if crop else im).save(data / sub / f"{i:02d}.png")
    return data


def test_real_isbi_crops_with_otsu(tmp_path: Path):
    data = _isbi_subset(tmp_path, 4, crop=192)
    results = run_bench(
        _plan(data, ["otsu", "adaptive_threshold"], cv="kfold:2", time_budget_s=2.0),
        tmp_path / "b",
        progress=False,
    )
    assert not results["errors"], results["errors"]
    assert results["plan"]["classes"] == ["membrane", "cell"]  # the ISBI layout was recognised
    for entry in results["leaderboard"]:
        # thresholding EM slices: membranes are dark but so is much else (U-Net paper: 0.06 pixel error)
        assert 0.05 < entry["pixel_error"] < 0.5 and 0 <= entry["rand_error"] <= 1


@pytest.mark.slow
def test_real_isbi_slices_with_three_classical_methods(tmp_path: Path):
    data = _isbi_subset(tmp_path, 6)
    results = run_bench(
        _plan(data, ["otsu", "adaptive_threshold", "watershed"], cv="kfold:2", time_budget_s=10.0),
        tmp_path / "b",
        progress=False,
    )
    assert not results["errors"], results["errors"]
    assert {e["method"] for e in results["leaderboard"]} == {"otsu", "adaptive_threshold", "watershed"}
    for entry in results["leaderboard"]:
        assert 0.05 < entry["pixel_error"] < 0.5 and 0 <= entry["rand_error"] <= 1
    assert len(results["paired_tests"]) == 2 and all(t["n"] == 6 for t in results["paired_tests"])


def test_a_builder_workers_cannot_receive_is_refused_before_any_work(tmp_path: Path, monkeypatch):
    from segscope.registry import REGISTRY, Entry
    from tests.bench.fake_methods import MeanThreshold

    name = "test_bench_lambda_builder"
    monkeypatch.setitem(
        REGISTRY._entries, name, Entry(name, lambda num_classes=2: MeanThreshold(), MeanThreshold)
    )
    data = write_folder_dataset(tmp_path / "discs", n=4)
    with pytest.raises(UserError, match="builder cannot be sent to worker processes.*--workers 1"):
        run_bench(_plan(data, [name, MEAN], cv="kfold:2", workers=2), tmp_path / "b", progress=False)
    assert not (tmp_path / "b" / "cells").exists()
