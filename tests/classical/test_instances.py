"""watershed_instances: a classical instance method (channel threshold + distance-transform watershed)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import segscope
from segscope.classical.instances import (
    WatershedInstances,
    distance_watershed,
    instance_scores,
    object_channel,
)
from segscope.data.formats import open_dataset
from segscope.errors import UserError
from segscope.metrics.instance_evaluator import InstanceEvaluator
from segscope.types import Instances
from tests.conftest import shared_dataset, write_folder_dataset


def two_touching_discs(size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A green plant-like image of two overlapping discs on brown soil, and its instance map."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    ids = np.zeros((size, size), np.int64)
    c = size // 2
    ids[(yy - c) ** 2 + (xx - (c - 8)) ** 2 <= 81] = 1
    ids[((yy - c) ** 2 + (xx - (c + 8)) ** 2 <= 81) & (ids == 0)] = 2
    image = np.empty((size, size, 3), np.float64)
    image[...] = (120, 90, 60)  # soil
    image[ids > 0] = (60, 170, 50)  # leaves
    image += rng.normal(0, 6, image.shape)
    return image.clip(0, 255).astype(np.uint8), ids


def test_functions_split_touching_discs():
    image, ids = two_touching_discs()
    exg = object_channel(image, "exg")
    assert exg[ids > 0].mean() > 0.3 > exg[ids == 0].mean()
    np.testing.assert_allclose(object_channel(image[..., :1], "exg"), image[..., 0] / 255.0)  # grey fallback
    labels = distance_watershed(ids > 0, sigma=1.0, h=1.0, min_size=10)
    assert labels.max() == 2 and set(np.unique(labels[ids > 0])) == {1, 2}
    assert distance_watershed(np.zeros((8, 8), bool)).max() == 0
    scores = instance_scores(labels)
    assert scores.shape == (2,) and ((scores > 0) & (scores <= 1)).all()


def test_predict_returns_instances():
    image, ids = two_touching_discs()
    seg = WatershedInstances(channel="exg", threshold="otsu", h=1.0, sigma=1.0, min_size=10)
    assert seg.task == "instance" and seg.ndim == 2
    pred = seg.predict(image)
    assert isinstance(pred, Instances) and len(pred) == 2 and pred.spatial_shape == ids.shape
    row = InstanceEvaluator().add(pred, Instances.from_label_map(ids))
    assert row["sbd"] > 0.8 and row["abs_dic"] == 0
    proba = seg.predict_proba(image)
    assert proba.shape == (2, *ids.shape)
    np.testing.assert_array_equal(proba.argmax(0), (pred.to_label_map() > 0).astype(np.int64))
    with pytest.raises(ValueError, match="uint8"):
        seg.predict(image.astype(np.float32))
    with pytest.raises(UserError, match="tune_metric"):
        WatershedInstances(tune_metric="iou")


def test_fit_on_synthetic_instances_by_ap50(tmp_path):
    root = tmp_path / "plants"
    (root / "images").mkdir(parents=True)
    (root / "instances").mkdir()
    for i in range(3):
        image, ids = two_touching_discs(seed=i)
        Image.fromarray(image).save(root / "images" / f"p{i}.png")
        Image.fromarray(ids.astype(np.uint8)).save(root / "instances" / f"p{i}.png")
    ds = open_dataset(root)
    seg = WatershedInstances(channel="exg", tune_metric="ap50", min_size=10, sigma=1.0)
    seg.fit(ds, progress=False)
    assert len(seg.history) == 10 and all("train_ap50" in h for h in seg.history)
    assert max(h["train_ap50"] for h in seg.history) == pytest.approx(1.0)
    assert seg.params["channel"] == "exg"
    # a semantic dataset has no instances to tune on
    with pytest.raises(UserError, match="instance"):
        seg.fit(open_dataset(write_folder_dataset(tmp_path / "discs", n=2)), progress=False)


def test_cvppp_four_images_and_round_trip(tmp_path):
    ds = open_dataset(shared_dataset("cvppp_a1"))
    train, test = ds.subset([0, 10, 20, 30]), ds.subset([5, 25, 45, 65])
    seg = segscope.create_segmenter("watershed_instances", num_classes=2, channel="exg", tune_images=4)
    seg.fit(train, progress=False)
    assert len(seg.history) == 10  # threshold x h, channel fixed
    evaluator = InstanceEvaluator()
    preds = []
    for i in range(len(test)):
        image = test.load_image(i)
        pred = seg.predict(image)
        assert isinstance(pred, Instances) and pred.spatial_shape == image.shape[:2]
        true = test.load_instances(i)
        assert 0.3 * len(true) <= len(pred) <= 3 * len(true)  # plausible leaf counts
        evaluator.add(pred, true, test.stems[i])
        preds.append((image, pred))
    result = evaluator.result()
    assert result["sbd"] > 0.3
    assert result["abs_dic"] < 8
    assert 0 < result["mask_ap50"] <= 1
    seg.save(tmp_path / "run")
    loaded = segscope.load(tmp_path / "run")
    assert type(loaded) is WatershedInstances and loaded.params == seg.params
    for image, pred in preds:
        again = loaded.predict(image)
        np.testing.assert_array_equal(again.masks, pred.masks)
        np.testing.assert_array_equal(again.scores, pred.scores)
        np.testing.assert_array_equal(again.boxes, pred.boxes)
