"""The instance layout: images/ + instances/ (instance-id PNGs, 0 = background), task "instance"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segscope.data.formats import FORMATS, available_splits, detect_format, open_dataset
from segscope.errors import DataError
from tests.conftest import shared_dataset, write_folder_dataset


def instance_map(seed: int, size: int = 32, n: int = 3, ids=None) -> np.ndarray:
    """``n`` disjoint rectangles with ids ``ids`` (default 1..n) on a 0 background."""
    rng = np.random.default_rng(seed)
    ids = list(range(1, n + 1)) if ids is None else list(ids)
    out = np.zeros((size, size), np.int64)
    for k, value in enumerate(ids):
        y = 2 + 10 * (k % 3)
        x = int(rng.integers(1, size - 9))
        out[y : y + 8, x : x + 8] = value
    return out


def write_instance_dataset(root: Path, maps: list[np.ndarray], *, dtype=np.uint8) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "instances").mkdir()
    for i, ids in enumerate(maps):
        image = np.zeros((*ids.shape, 3), np.uint8)
        image[..., 1] = np.where(ids > 0, 200, 40)
        Image.fromarray(image).save(root / "images" / f"plant{i:03d}.png")
        Image.fromarray(ids.astype(dtype)).save(root / "instances" / f"plant{i:03d}.png")
    return root


def test_detect_and_open(tmp_path):
    maps = [instance_map(i) for i in range(4)]
    root = write_instance_dataset(tmp_path / "leaves", maps)
    assert "instance" in FORMATS
    assert detect_format(root) == "instance"
    assert available_splits(root) == ["all"]
    ds = open_dataset(root)
    assert ds.task == "instance" and ds.classes == ["background", "object"] and len(ds) == 4
    for i, ids in enumerate(maps):
        image, mask = ds[i]
        assert image.shape == (32, 32, 3)
        np.testing.assert_array_equal(mask, (ids > 0).astype(np.int64))  # the semantic view
        inst = ds.load_instances(i, image_shape=image.shape)
        assert len(inst) == 3 and inst.spatial_shape == (32, 32)
        np.testing.assert_array_equal(inst.labels, [1, 1, 1])
        np.testing.assert_array_equal(inst.to_label_map(), ids)  # ids 1..n in increasing order
    assert ds.describe()["task"] == "instance"
    # views keep the task
    assert ds.subset([0, 2]).task == "instance"
    assert ds.with_samples(ds.samples[:1]).task == "instance"
    assert ds.subset([1]).load_instances(0).masks.sum() == (maps[1] > 0).sum()


def test_sixteen_bit_ids(tmp_path):
    maps = [instance_map(i, ids=[300, 7, 1000]) for i in range(3)]
    ds = open_dataset(write_instance_dataset(tmp_path / "deep_ids", maps, dtype=np.uint16))
    assert ds.task == "instance"
    inst = ds.load_instances(0)
    assert len(inst) == 3
    # increasing id order: 7, 300, 1000
    for mask, value in zip(inst.masks, [7, 300, 1000]):
        np.testing.assert_array_equal(mask, maps[0] == value)
    np.testing.assert_array_equal(ds.load_mask(0), (maps[0] > 0).astype(np.int64))


def test_splits_yaml_and_explicit_format(tmp_path):
    root = tmp_path / "split"
    write_instance_dataset(root / "train", [instance_map(i) for i in range(3)])
    write_instance_dataset(root / "val", [instance_map(10 + i) for i in range(2)])
    assert detect_format(root) == "instance"
    assert available_splits(root) == ["train", "val"]
    assert len(open_dataset(root)) == 3 and len(open_dataset(root, "val")) == 2
    (root / "dataset.yaml").write_text("classes: [background, leaf]\nname: leaves\n")
    ds = open_dataset(root, "val")
    assert ds.task == "instance" and ds.classes == ["background", "leaf"] and ds.name == "leaves"
    assert len(ds.load_instances(1)) == 3
    (root / "dataset.yaml").write_text("mask_mode: index\n")
    with pytest.raises(DataError, match="mask_mode"):
        open_dataset(root)
    (root / "dataset.yaml").write_text("classes: [background, leaf, stem]\n")
    with pytest.raises(DataError, match="2 classes"):
        open_dataset(root)


def test_semantic_folders_are_unchanged(tmp_path):
    root = write_folder_dataset(tmp_path / "discs", n=3)
    assert detect_format(root) == "folder"
    ds = open_dataset(root)
    assert ds.task == "semantic" and ds.subset([0]).task == "semantic"
    with pytest.raises(DataError, match="not an instance dataset"):
        ds.load_instances(0)
    # a folder with masks/ as well as instances/ stays a semantic folder unless asked for
    (root / "instances").mkdir()
    for p in sorted((root / "masks").iterdir()):
        (root / "instances" / p.name).write_bytes(p.read_bytes())
    assert detect_format(root) == "folder"
    ds = open_dataset(root, format="instance")
    assert ds.task == "instance" and len(ds.load_instances(0)) == 1


def test_cvppp_a1():
    root = shared_dataset("cvppp_a1")
    ds = open_dataset(root)
    assert detect_format(root) == "instance" and ds.task == "instance" and len(ds) >= 4
    ids = np.asarray(Image.open(ds.samples[0].mask)).astype(np.int64)
    image = ds.load_image(0)
    inst = ds.load_instances(0, image_shape=image.shape)
    assert image.shape[2] == 3 and inst.spatial_shape == image.shape[:2]
    assert len(inst) == len(np.unique(ids)) - 1 > 1
    np.testing.assert_array_equal(ds.load_mask(0), (ids > 0).astype(np.int64))
