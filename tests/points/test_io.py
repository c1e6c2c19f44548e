"""Point-cloud files: the real ShapeNet-Part sample, .pts/.seg errors, .ply ASCII and binary, .npy."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from segscope.errors import DataError
from segscope.points.io import (
    CATEGORY_NAMES,
    NUM_PARTS,
    LabelledCloud,
    category_from_path,
    load_shapenet_part,
    normalize_unit_sphere,
    read_npy,
    read_ply,
    read_point_cloud,
    read_pts,
    read_seg,
    shapenet_part_files,
    write_npy,
    write_ply,
    write_shapenet_part,
)
from tests.conftest import shared_dataset

STANDARD_PARTS = {
    "Airplane": 4,
    "Bag": 2,
    "Cap": 2,
    "Car": 4,
    "Chair": 4,
    "Earphone": 3,
    "Guitar": 3,
    "Knife": 2,
    "Lamp": 4,
    "Laptop": 2,
    "Motorbike": 6,
    "Mug": 2,
    "Pistol": 3,
    "Rocket": 3,
    "Skateboard": 3,
    "Table": 3,
}


def test_real_sample_loads():
    root = shared_dataset("shapenet_part_sample")
    clouds = load_shapenet_part(root)
    assert sorted(c.category for c in clouds) == sorted(CATEGORY_NAMES) and len(clouds) == 16
    assert NUM_PARTS == STANDARD_PARTS
    for cloud in clouds:
        seg = read_seg(next(root.glob(f"*/points_label/{cloud.name}.seg")))  # read apart from the loader
        assert len(cloud.points) == len(cloud.labels) == len(seg) and 2000 < len(cloud.points) < 3100
        assert cloud.points.dtype == np.float32 and cloud.points.shape[1] == 3
        assert 1 <= cloud.labels.min() and cloud.labels.max() <= NUM_PARTS[cloud.category]
    assert len(load_shapenet_part(root, "train")) == 16  # the split list
    assert [c for c, _, _ in shapenet_part_files(root)] == sorted(CATEGORY_NAMES)  # synsets sort like names
    pts = next((root / "03001627" / "points").glob("*.pts"))
    assert category_from_path(pts) == "Chair"
    points, labels = read_point_cloud(pts)  # the .seg beside it is found
    assert labels is not None and len(labels) == len(points)
    # the raw files are centred with a unit bounding-box diagonal; normalised, the farthest point is at 1
    raw = read_pts(pts)
    assert np.linalg.norm(np.ptp(raw, axis=0)) == pytest.approx(1.0, abs=0.02)
    assert np.linalg.norm(normalize_unit_sphere(raw), axis=1).max() == pytest.approx(1.0)


def test_bad_pts_and_seg(tmp_path: Path):
    bad = tmp_path / "bad.pts"
    bad.write_text("0.1 0.2 0.3\n0.4 five 0.6\n")
    with pytest.raises(DataError, match=r"bad.pts: line 2: expected 3 number"):
        read_pts(bad)
    bad.write_text("0.1 0.2 0.3\n0.4 0.5\n")
    with pytest.raises(DataError, match="line 2"):
        read_pts(bad)
    bad.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_pts(bad)
    with pytest.raises(DataError, match="not found"):
        read_pts(tmp_path / "missing.pts")
    seg = tmp_path / "x.seg"
    seg.write_text("1\n2.5\n")
    with pytest.raises(DataError, match="integers"):
        read_seg(seg)
    root = tmp_path / "sp"
    cloud = LabelledCloud("Mug", np.zeros((3, 3), np.float32), np.array([1, 2, 3]), "m0")
    write_shapenet_part(root, {"train": [cloud]})
    with pytest.raises(DataError, match=r"labels 1..3 outside 1..2 of Mug"):
        load_shapenet_part(root, "train")
    (root / "03797390" / "points_label" / "m0.seg").write_text("1\n2\n")
    with pytest.raises(DataError, match="2 labels for 3 points"):
        load_shapenet_part(root)


def test_shapenet_part_round_trip(tmp_path: Path):
    rng = np.random.default_rng(0)
    clouds = [
        LabelledCloud("Laptop", rng.uniform(-1, 1, (20, 3)).astype(np.float32), rng.integers(1, 3, 20), "a"),
        LabelledCloud("Knife", rng.uniform(-1, 1, (9, 3)).astype(np.float32), rng.integers(1, 3, 9), "b"),
    ]
    write_shapenet_part(tmp_path, {"train": clouds[:1], "test": clouds[1:]})
    back = load_shapenet_part(tmp_path, "train") + load_shapenet_part(tmp_path, "test")
    for c, b in zip(clouds, back):
        assert (c.category, c.name) == (b.category, b.name)
        np.testing.assert_allclose(b.points, c.points, atol=6e-6)
        np.testing.assert_array_equal(b.labels, c.labels)
    with pytest.raises(DataError, match="split list not found"):
        load_shapenet_part(tmp_path, "val")


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip(tmp_path: Path, binary: bool):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(57, 3)).astype(np.float32)
    labels = rng.integers(1, 5, 57)
    write_ply(tmp_path / "a.ply", points, labels, binary=binary)
    got, got_labels = read_ply(tmp_path / "a.ply")
    np.testing.assert_array_equal(got, points)
    np.testing.assert_array_equal(got_labels, labels)
    write_ply(tmp_path / "b.ply", points, binary=binary)
    assert read_ply(tmp_path / "b.ply")[1] is None
    head = (tmp_path / "a.ply").read_bytes()[:40]
    assert (b"binary_little_endian" in head) == binary


def test_ply_written_by_hand(tmp_path: Path):
    ascii_ply = (
        "ply\nformat ascii 1.0\ncomment made by hand\nelement vertex 3\nproperty float x\nproperty float y\n"
        "property float z\nproperty uchar red\nproperty int label\nelement face 1\n"
        "property list uchar int vertex_indices\nend_header\n0 0 0 255 1\n1 0 0 0 2\n0 1 0.5 7 2\n3 0 1 2\n"
    )
    (tmp_path / "h.ply").write_text(ascii_ply)
    points, labels = read_ply(tmp_path / "h.ply")
    np.testing.assert_array_equal(points, [[0, 0, 0], [1, 0, 0], [0, 1, 0.5]])
    np.testing.assert_array_equal(labels, [1, 2, 2])
    # binary: an element before the vertices, double coordinates, a ushort label called "part"
    header = (
        b"ply\nformat binary_little_endian 1.0\nelement camera 1\nproperty float fx\nelement vertex 2\n"
        b"property double x\nproperty double y\nproperty double z\nproperty ushort part\nend_header\n"
    )
    body = (
        struct.pack("<f", 9.0) + struct.pack("<dddH", 1.5, 2.5, 3.5, 3) + struct.pack("<dddH", -1, -2, -3, 1)
    )
    (tmp_path / "b.ply").write_bytes(header + body)
    points, labels = read_ply(tmp_path / "b.ply")
    np.testing.assert_array_equal(points, [[1.5, 2.5, 3.5], [-1, -2, -3]])
    np.testing.assert_array_equal(labels, [3, 1])
    (tmp_path / "t.ply").write_bytes(header + body[:-5])
    with pytest.raises(DataError, match="t.ply: corrupt PLY vertex data"):
        read_ply(tmp_path / "t.ply")
    (tmp_path / "be.ply").write_bytes(header.replace(b"little", b"big") + body)
    with pytest.raises(DataError, match="binary_big_endian.*not supported"):
        read_ply(tmp_path / "be.ply")
    (tmp_path / "n.ply").write_text("hello\n")
    with pytest.raises(DataError, match="not a PLY file"):
        read_ply(tmp_path / "n.ply")


def test_npy(tmp_path: Path):
    cloud = np.random.default_rng(2).normal(size=(10, 3))
    write_npy(tmp_path / "p.npy", cloud)
    points, labels = read_npy(tmp_path / "p.npy")
    np.testing.assert_allclose(points, cloud.astype(np.float32))
    assert labels is None
    with_labels = np.concatenate([cloud, np.arange(1, 11)[:, None] % 3 + 1], axis=1)
    write_npy(tmp_path / "l.npy", with_labels)
    np.testing.assert_array_equal(read_point_cloud(tmp_path / "l.npy")[1], with_labels[:, 3].astype(int))
    np.save(tmp_path / "bad.npy", np.zeros((4, 2)))
    with pytest.raises(DataError, match=r"bad.npy: expected a numeric \(N, 3\)"):
        read_npy(tmp_path / "bad.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="junk.npy: not a .npy array"):
        read_npy(tmp_path / "junk.npy")
    with pytest.raises(DataError, match="unsupported point-cloud file"):
        read_point_cloud(tmp_path / "x.obj")


def test_category_from_path():
    assert category_from_path("data/02691156/points/abc.pts") == "Airplane"
    assert category_from_path("scans/Mug/cup.ply") == "Mug"
    assert category_from_path("scans/cup.ply") is None
