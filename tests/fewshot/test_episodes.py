"""Few-shot episodes: class folds, the no-leak rule of training episodes, test-episode labels,
reproducibility and persistence, on synthetic multi-class datasets and (when present) real CamVid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segscope
from segscope.data import MaskCodec, Sample, SegmentationDataset
from segscope.errors import UserError
from segscope.fewshot import (
    CAMVID_CLASSES,
    CAMVID_FOLDS,
    ClassFolds,
    Episode,
    EpisodeSampler,
    class_pixel_counts,
    load_episodes,
    save_episodes,
)
from tests.conftest import shared_dataset

IGNORE = 255


def write_multiclass_dataset(root: Path, masks: list[np.ndarray], classes, ignore_index=IGNORE):
    """A dataset of noise images with the given index masks (written as 8-bit index PNGs)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    samples = []
    for i, m in enumerate(masks):
        img, msk = root / "images" / f"img{i:02d}.png", root / "masks" / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (*m.shape, 3), dtype=np.uint8)).save(img)
        Image.fromarray(m.astype(np.uint8)).save(msk)
        samples.append(Sample(img, msk))
    return SegmentationDataset(
        samples, list(classes), codec=MaskCodec("index"), ignore_index=ignore_index, name="synthetic"
    )


def random_masks(n: int, k: int, size: int = 16, seed: int = 1) -> list[np.ndarray]:
    """Masks of 2-4 random rectangles of random classes each, plus a few ignore pixels."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = np.full((size, size), rng.integers(k), np.int64)
        for c in rng.choice(k, rng.integers(2, 5), replace=False):
            y, x = rng.integers(0, size - 4, 2)
            h, w = rng.integers(3, 8, 2)
            m[y : y + h, x : x + w] = c
        m[rng.integers(0, size, 3), rng.integers(0, size, 3)] = IGNORE
        out.append(m)
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    classes = [f"c{i}" for i in range(6)]
    ds = write_multiclass_dataset(tmp_path_factory.mktemp("fs") / "syn", random_masks(40, 6), classes)
    return ds, ClassFolds.split(classes, 3)


def hand_masks() -> list[np.ndarray]:
    """8x8 masks with known contents; classes bg=0, a=1, b=2, c=3, d=4; 255 = ignore."""
    masks = [np.zeros((8, 8), np.int64) for _ in range(7)]
    masks[0][:2, :5] = 1  # a: 10 px; c: 16 px
    masks[0][4:6, :] = 3
    masks[1][0, :3] = 1  # a: 3 px (below min_pixels 5); b: 8 px
    masks[1][7, :] = 2
    masks[2][:, :1] = 2  # b: 8 px; d: 8 px; ignore: 4 px
    masks[2][:, 7:] = 4
    masks[2][3, 2:6] = IGNORE
    masks[3][:3, :3] = 1  # a: 9 px; b: 6 px; c: 6 px
    masks[3][5:, :2] = 2
    masks[3][5:, 6:] = 3
    masks[4][:, :] = 4  # d only, some ignore
    masks[4][0, 0] = IGNORE
    masks[5][2:4, 2:5] = 1  # a: 6 px; b: 2 px
    masks[5][7, 6:] = 2
    masks[6][1:, 1:] = 2  # b: 49 px
    return masks


@pytest.fixture
def hand(tmp_path):
    classes = ["bg", "a", "b", "c", "d"]
    ds = write_multiclass_dataset(tmp_path / "hand", hand_masks(), classes)
    return ds, ClassFolds.split(classes, 2, exclude=["bg"])


# -- folds ---------------------------------------------------------------------------------------
def test_camvid_split_is_the_documented_one():
    assert CAMVID_CLASSES == (
        "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
        "Pedestrian", "Bicyclist",
    )  # fmt: skip
    folds = ClassFolds.split(CAMVID_CLASSES, 4)
    assert folds == CAMVID_FOLDS
    named = [[CAMVID_CLASSES[c] for c in folds.unseen(f)] for f in range(4)]
    assert named == [
        ["Sky", "Building", "Pole"],
        ["Road", "Pavement", "Tree"],
        ["SignSymbol", "Fence", "Car"],
        ["Pedestrian", "Bicyclist"],
    ]
    for f in range(4):
        assert set(folds.seen(f)).isdisjoint(folds.unseen(f))
        assert sorted(folds.seen(f) + folds.unseen(f)) == list(range(11))
    with pytest.raises(UserError, match="fold 4 out of range"):
        folds.unseen(4)
    assert ClassFolds.from_dict(json.loads(json.dumps(folds.to_dict()))) == folds


def test_split_pascal_style_with_exclude_and_remainder():
    voc = ClassFolds.split([f"k{i}" for i in range(21)], 4, exclude=[0])  # background excluded
    assert voc.folds == tuple(tuple(range(1 + 5 * f, 6 + 5 * f)) for f in range(4))
    assert 0 not in voc.seen(2) and voc.seen(0) == tuple(range(6, 21))
    assert [len(f) for f in ClassFolds.split(list("abcdefg"), 3).folds] == [3, 2, 2]
    with pytest.raises(UserError):
        ClassFolds(("a", "b"), ((0,), (0, 1)))  # a class in two folds


# -- training episodes: no unseen class leaks --------------------------------------------------------
@pytest.mark.parametrize("ways", [1, 2])
def test_train_ignore_policy_hides_every_unseen_pixel(synthetic, ways):
    ds, folds = synthetic
    fold = 1
    unseen = list(folds.unseen(fold))
    sampler = EpisodeSampler(ds, folds, fold, mode="train", ways=ways, shots=1, queries=ways)
    rng = np.random.default_rng(0)
    n_unseen_seen = 0
    for _ in range(500 if ways == 1 else 100):
        ep = sampler.sample(rng)
        assert set(ep.classes) <= set(folds.seen(fold))
        data = sampler.load(ep)
        for k, (c, idx) in enumerate(zip(ep.classes, ep.support)):
            for i, sm in zip(idx, data.support_masks[k]):
                m = ds.load_mask(i)
                assert not (sm[np.isin(m, unseen)] != IGNORE).any()
                assert not np.isin(m[sm == 1], unseen).any()
                assert np.array_equal(
                    sm, np.where(m == c, 1, np.where(np.isin(m, unseen + [IGNORE]), 255, 0))
                )
        for i, lab in zip(ep.query, data.query_labels):
            m = ds.load_mask(i)
            n_unseen_seen += int(np.isin(m, unseen).sum())
            assert (lab[np.isin(m, unseen)] == IGNORE).all()
            assert not np.isin(m[(lab != 0) & (lab != IGNORE)], unseen).any()
    assert n_unseen_seen > 0  # the check above was exercised


def test_train_exclude_policy_never_uses_an_image_with_an_unseen_class(synthetic):
    ds, folds = synthetic
    fold = 0
    has_unseen = {i for i in range(len(ds)) if np.isin(ds.load_mask(i), folds.unseen(fold)).any()}
    assert 0 < len(has_unseen) < len(ds)
    sampler = EpisodeSampler(ds, folds, fold, mode="train", policy="exclude")
    assert set(np.flatnonzero(~sampler.allowed)) == has_unseen
    rng = np.random.default_rng(1)
    used = set()
    for _ in range(500):
        ep = sampler.sample(rng)
        used |= {i for s in ep.support for i in s} | set(ep.query)
    assert used and used.isdisjoint(has_unseen)
    ignore_sampler = EpisodeSampler(ds, folds, fold, mode="train")  # "ignore" does use them
    eps = ignore_sampler.fixed(200, 0)
    assert {i for e in eps for i in e.query} & has_unseen


# -- test episodes -----------------------------------------------------------------------------------
def test_test_episodes_on_a_hand_built_dataset(hand):
    ds, folds = hand
    assert folds.unseen(0) == (1, 2) and folds.seen(0) == (3, 4)
    sampler = EpisodeSampler(ds, folds, 0, mode="test", min_pixels=5)
    assert {c: p.tolist() for c, p in sampler.pools.items()} == {1: [0, 3, 5], 2: [1, 2, 3, 6]}
    rng = np.random.default_rng(0)
    seen_classes = set()
    for _ in range(100):
        ep = sampler.sample(rng)
        (c,) = ep.classes
        seen_classes.add(c)
        assert c in (1, 2) and len(ep.support) == 1 and len(ep.support[0]) == 1 and len(ep.query) == 1
        assert set(ep.support[0]).isdisjoint(ep.query)
        data = sampler.load(ep)
        sm, lab = data.support_masks[0][0], data.query_labels[0]
        assert (sm == 1).sum() >= 5 and (lab == 1).sum() >= 5
        for i, arr in ((ep.support[0][0], sm), (ep.query[0], lab)):
            m = ds.load_mask(i)  # other classes (seen ones included) are background, ignore is 255
            assert np.array_equal(arr, np.where(m == c, 1, np.where(m == IGNORE, 255, 0)))
        assert data.support_images[0][0].shape == (8, 8, 3) and data.classes == ep.classes
    assert seen_classes == {1, 2}


def test_two_way_query_labels_are_way_plus_one(hand):
    ds, folds = hand
    sampler = EpisodeSampler(ds, folds, 0, mode="test", ways=2, shots=1, queries=2, min_pixels=5)
    for ep in sampler.fixed(30, 2):
        assert sorted(ep.classes) == [1, 2]
        images = [i for s in ep.support for i in s] + list(ep.query)
        assert len(set(images)) == len(images) == 4
        a, b = ep.classes
        data = sampler.load(ep)
        for j, i in enumerate(ep.query):
            m = ds.load_mask(i)
            expected = np.where(m == a, 1, np.where(m == b, 2, np.where(m == IGNORE, 255, 0)))
            assert np.array_equal(data.query_labels[j], expected)
            assert (m == ep.classes[j % 2]).sum() >= 5  # query j takes way j % ways's class


def test_load_resizes(hand):
    ds, folds = hand
    sampler = EpisodeSampler(ds, folds, 0, mode="test", shots=2)
    data = sampler.load(sampler.fixed(1, 0)[0], size=(12, 20))
    assert [im.shape for im in data.support_images[0]] == [(12, 20, 3)] * 2
    assert data.query_labels[0].shape == (12, 20) and data.query_labels[0].dtype == np.int64
    assert set(np.unique(data.support_masks[0][0])) <= {0, 1, 255}


def test_errors_are_one_line_user_errors(hand):
    ds, folds = hand
    with pytest.raises(UserError, match="out of range"):
        EpisodeSampler(ds, folds, 2, mode="test")
    with pytest.raises(UserError, match=r"needs 4 eligible.*short: a \(3\)$") as exc:
        EpisodeSampler(ds, folds, 0, mode="test", shots=3, min_pixels=5)
    assert "\n" not in str(exc.value)
    with pytest.raises(UserError, match="3 ways"):
        EpisodeSampler(ds, folds, 0, mode="test", ways=3)
    with pytest.raises(UserError, match="mode"):
        EpisodeSampler(ds, folds, 0, mode="val")
    with pytest.raises(UserError, match="folds are for classes"):
        EpisodeSampler(ds, CAMVID_FOLDS, 0)


# -- reproducibility, persistence, counts ------------------------------------------------------------
def test_fixed_is_reproducible_and_round_trips(synthetic, tmp_path):
    ds, folds = synthetic
    sampler = EpisodeSampler(ds, folds, 2, mode="test", shots=2, queries=2)
    eps = sampler.fixed(50, 7)
    assert (
        eps
        == sampler.fixed(50, 7)
        == EpisodeSampler(ds, folds, 2, mode="test", shots=2, queries=2).fixed(50, 7)
    )
    assert eps != sampler.fixed(50, 8)
    path = tmp_path / "episodes.json"
    save_episodes(path, eps, sampler.describe())
    back, meta = load_episodes(path)
    assert back == eps and all(isinstance(e, Episode) for e in back)
    assert meta["fold"] == 2 and meta["shots"] == 2 and ClassFolds.from_dict(meta["folds"]) == folds
    with pytest.raises(UserError, match="not found"):
        load_episodes(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="not a segscope episode file"):
        load_episodes(tmp_path / "other.json")


def test_fixed_is_the_same_in_another_process(synthetic, tmp_path):
    ds, folds = synthetic
    sampler = EpisodeSampler(ds, folds, 0, mode="train", shots=3)
    code = (
        "import sys, json; from pathlib import Path\n"
        "from segscope.data import Sample, SegmentationDataset\n"
        "from segscope.fewshot import ClassFolds, EpisodeSampler\n"
        "s = [Sample(Path(a), Path(b)) for a, b in json.load(sys.stdin)]\n"
        "ds = SegmentationDataset(s, [f'c{i}' for i in range(6)], ignore_index=255)\n"
        "eps = EpisodeSampler(ds, ClassFolds.split(ds.classes, 3), 0, mode='train', shots=3).fixed(40, 5)\n"
        "print(json.dumps([e.to_dict() for e in eps]))"
    )
    files = json.dumps([[str(s.image), str(s.mask)] for s in ds.samples])
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], input=files, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert [Episode.from_dict(d) for d in json.loads(out.stdout)] == sampler.fixed(40, 5)


def test_class_pixel_counts_are_exact_and_memoised(hand):
    ds, folds = hand
    counts = class_pixel_counts(ds)
    expected = np.stack([np.bincount(m[m != IGNORE].ravel(), minlength=5) for m in hand_masks()])
    assert counts.dtype == np.int64 and np.array_equal(counts, expected)
    assert class_pixel_counts(ds) is counts
    assert class_pixel_counts(ds.subset(range(len(ds)))) is counts  # same files, another object
    mask0 = ds.samples[0].mask
    Image.fromarray(np.full((8, 8), 2, np.uint8)).save(mask0)
    os.utime(mask0, ns=(1, 1))
    assert class_pixel_counts(ds)[0].tolist() == [0, 0, 64, 0, 0]


# -- real CamVid -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def camvid():
    root = shared_dataset("camvid")
    train, val = segscope.open_dataset(root, "train"), segscope.open_dataset(root, "val")
    return {"train": (train, class_pixel_counts(train)), "val": (val, class_pixel_counts(val))}


def test_camvid_fold3_test_episodes(camvid):
    val, counts = camvid["val"]
    start = time.perf_counter()
    sampler = EpisodeSampler(val, CAMVID_FOLDS, 3, mode="test", counts=counts)
    eps = sampler.fixed(500, 0)
    assert time.perf_counter() - start < 20
    assert len(eps) == 500 and {c for e in eps for c in e.classes} <= {9, 10}
    for e in eps:
        assert e.support[0][0] != e.query[0]
        assert counts[e.support[0][0], e.classes[0]] >= 1 and counts[e.query[0], e.classes[0]] >= 1
    assert eps == sampler.fixed(500, 0)
    data = sampler.load(eps[0], size=(90, 120))
    assert data.query_images[0].shape == (90, 120, 3)
    assert set(np.unique(data.query_labels[0])) <= {0, 1, 255} and (data.query_labels[0] == 1).any()


def test_camvid_exclude_counts_match_the_docstring(camvid):
    train, counts = camvid["train"]
    assert len(train) == 367
    left = [int((counts[:, list(CAMVID_FOLDS.unseen(f))].sum(1) == 0).sum()) for f in range(4)]
    assert left == [0, 0, 7, 43]
    assert (
        EpisodeSampler(train, CAMVID_FOLDS, 3, mode="train", policy="exclude", counts=counts).allowed.sum()
        == 43
    )
    with pytest.raises(UserError, match="short"):
        EpisodeSampler(train, CAMVID_FOLDS, 0, mode="train", policy="exclude", counts=counts)
