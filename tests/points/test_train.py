"""Training: a few steps lower the loss, the best checkpoint reloads to the very predictions it was selected
on, save/load round-trips predictions exactly, and predictions keep to the category's parts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segscope.errors import UserError
from segscope.points.io import NUM_PARTS, PART_OFFSET
from segscope.points.shapes import generate_set
from segscope.points.train import (
    PartSegmenter,
    TrainConfig,
    evaluate_clouds,
    restrict_to_category,
    split_holdout,
    train_part_segmenter,
)


def test_restrict_to_category():
    logits = np.zeros((50, 3))
    logits[0, :] = 10  # an Airplane part scores highest everywhere
    start = PART_OFFSET["Mug"]
    logits[start, 0], logits[start + 1, 1:] = 1, 1  # Mug handle for point 0, body for points 1-2
    np.testing.assert_array_equal(restrict_to_category(logits, "Mug"), [1, 2, 2])


def test_tiny_training_and_round_trip(tmp_path: Path):
    train = generate_set(8, categories=["Mug", "Laptop"], n_points=256, seed=0)
    val = generate_set(2, categories=["Mug", "Laptop"], n_points=256, seed=1)
    config = TrainConfig(points=256, batch_size=8, width=0.125, epochs=6, time_budget_s=60, seed=0)
    run = train_part_segmenter(train, val, tmp_path / "run", config, data={"source": "test"}, progress=False)
    history = run["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6] and history[-1]["step"] == 12
    assert history[-1]["train_ce"] < history[0]["train_ce"] - 0.3  # from about ln(50) = 3.9
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (
        saved["model"]["width"] == 0.125
        and saved["train"]["batch_size"] == 8
        and saved["data"]["source"] == "test"
    )
    assert saved["best"]["val_instance_miou"] == max(h["val_instance_miou"] for h in history)

    seg = PartSegmenter.from_run(tmp_path / "run")
    summary, preds = evaluate_clouds(seg, val)
    assert summary["instance_miou"] == saved["best"]["val_instance_miou"]  # the selected weights, exactly
    for cloud, pred in zip(val, preds):
        assert pred.shape == (256,) and 1 <= pred.min() and pred.max() <= NUM_PARTS[cloud.category]
    seg.save(tmp_path / "copy")
    again = PartSegmenter.from_run(tmp_path / "copy")
    for cloud, pred in zip(val, preds):
        np.testing.assert_array_equal(again.predict(cloud.points, cloud.category), pred)
    # clouds are normalised first: shifting and scaling one leaves its labels
    np.testing.assert_array_equal(
        seg.predict(val[0].points[:100] * 3 + 1, "Mug"), seg.predict(val[0].points[:100], "Mug")
    )


def test_split_holdout_and_errors(tmp_path: Path):
    clouds = generate_set(5, categories=["Knife", "Cap"], n_points=32)
    keep, held = split_holdout(clouds, 0.2, seed=0)
    assert len(held) == 2 and {c.category for c in held} == {"Knife", "Cap"} and len(keep) == 8
    with pytest.raises(UserError, match="not a points run"):
        PartSegmenter.from_run(tmp_path)
    with pytest.raises(UserError, match="validation"):
        train_part_segmenter(clouds, [], tmp_path / "r", TrainConfig(points=32, width=0.1, epochs=1))
