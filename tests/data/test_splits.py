"""Validation splits: partitions, counts against combinatorics, groups never straddle, JSON round trip."""

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segscope.data import open_dataset
from segscope.data.splits import (
    Split,
    fold_datasets,
    load_splits,
    make_splits,
    named_splits,
    save_splits,
)
from segscope.errors import UserError
from tests.conftest import write_folder_dataset


def test_kfold_partitions_every_index_once_and_depends_on_the_seed():
    splits = make_splits(10, "kfold:5", seed=3)
    assert [s.name for s in splits] == [f"fold{i}" for i in range(5)]
    assert sorted(i for s in splits for i in s.test) == list(range(10))
    for s in splits:
        assert len(s.test) == 2 and not set(s.train) & set(s.test)
        assert sorted(s.train + s.test) == list(range(10))
    assert make_splits(10, "kfold:5", seed=3) == splits
    assert make_splits(10, "kfold:5", seed=4) != splits


def test_leave_p_out_enumerates_every_subset():
    splits = make_splits(6, "lpo:2")
    assert len(splits) == 15  # C(6, 2)
    assert {tuple(s.test) for s in splits} == set(itertools.combinations(range(6), 2))
    loo = make_splits(7, "loo")
    assert [s.test for s in loo] == [[i] for i in range(7)]


def test_too_many_splits_are_refused_with_the_count():
    with pytest.raises(UserError, match=r"C\(30, 3\) = 4060 splits exceed the cap of 50"):
        make_splits(30, "lpo:3")
    with pytest.raises(UserError, match="60 splits exceed the cap of 50"):
        make_splits(60, "loo")
    assert len(make_splits(60, "loo", max_splits=60)) == 60


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bootstrap", "unknown validation scheme"),
        ("kfold:x", "'x' is not a number"),
        ("kfold:11", "need 2 <= K <= 10"),
        ("lpo:10", "need 1 <= P < 10"),
        ("holdout:1.5", "fraction must be in"),
        ("group-kfold:3", "needs at least 3 groups, the dataset has 0"),
    ],
)
def test_bad_specs_raise_one_clear_line(spec, message):
    with pytest.raises(UserError, match=message) as err:
        make_splits(10, spec)
    assert "\n" not in str(err.value)


def test_holdout_keeps_the_fraction_out():
    (split,) = make_splits(10, "holdout:0.3", seed=1)
    assert len(split.test) == 3 and sorted(split.train + split.test) == list(range(10))


def _grouped_dataset(root: Path, sequences: dict[str, int]) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for seq, count in sequences.items():
        for i in range(count):
            Image.fromarray(np.full((4, 4), 10 * i, np.uint8)).save(root / "images" / f"{seq}_{i:02d}.png")
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "masks" / f"{seq}_{i:02d}.png")
    return root


def test_group_kfold_takes_groups_from_the_dataset(tmp_path: Path):
    ds = open_dataset(_grouped_dataset(tmp_path / "g", {"seqA": 3, "seqB": 2, "seqC": 4, "seqD": 1}))
    splits = make_splits(ds, "group-kfold:2")
    assert len(splits) == 2
    groups = ds.groups
    for s in splits:
        assert not {groups[i] for i in s.train} & {groups[i] for i in s.test}
    assert sorted(i for s in splits for i in s.test) == list(range(len(ds)))
    with pytest.raises(UserError, match="needs at least 5 groups, the dataset has 4"):
        make_splits(ds, "group-kfold:5")


def test_splits_round_trip_through_json(tmp_path: Path):
    splits = make_splits(9, "kfold:3", seed=2) + [Split("train-val", [0, 1], [0], "train", "val")]
    save_splits(tmp_path / "splits.json", splits, spec="kfold:3", n=9, seed=2)
    saved = load_splits(tmp_path / "splits.json")
    assert (saved.spec, saved.n, saved.seed, saved.splits) == ("kfold:3", 9, 2, splits)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="bad.json: not a readable splits file"):
        load_splits(tmp_path / "bad.json")


def test_named_splits_train_on_one_split_and_test_on_another(tmp_path: Path):
    root = tmp_path / "tv"
    _grouped_dataset(root / "train", {"a": 5})
    _grouped_dataset(root / "val", {"b": 3})
    (split,) = named_splits(root, "train/val")
    assert (split.train_split, split.test_split, split.same_dataset) == ("train", "val", False)
    ((s, train, test),) = fold_datasets([split], root)
    assert train.stems == [f"a_{i:02d}" for i in range(5)] and test.stems == ["b_00", "b_01", "b_02"]
    with pytest.raises(UserError, match="expected TRAIN/TEST"):
        named_splits(root, "train")
    with pytest.raises(UserError, match="the same"):
        named_splits(root, "train/train")


def test_leave_one_group_out_and_leave_p_groups_out_hold_out_whole_groups():
    groups = ["a", "a", "b", "b", "c", "d"]
    logo = make_splits(6, "logo", groups=groups)
    assert [sorted({groups[i] for i in s.test}) for s in logo] == [["a"], ["b"], ["c"], ["d"]]
    lpgo = make_splits(6, "lpgo:2", groups=groups)
    assert len(lpgo) == 6  # C(4, 2) pairs of groups
    for s in lpgo:
        held = {groups[i] for i in s.test}
        assert len(held) == 2 and not held & {groups[i] for i in s.train}
    with pytest.raises(UserError, match="C\\(4, 3\\) = 4 splits exceed the cap of 3"):
        make_splits(6, "lpgo:3", groups=groups, max_splits=3)


def test_every_validation_set_carved_from_training_data_is_the_same_seeded_draw(tmp_path: Path):
    """One hold-out for train's validation set, bench's per-fold validation set and --cv holdout:F."""
    from segscope.data import open_dataset
    from segscope.data.splits import holdout_indices, holdout_split, train_val_datasets

    root = write_folder_dataset(tmp_path / "d", n=10)
    ds = open_dataset(root)
    train_idx, val_idx = holdout_indices(10, 0.3, seed=4)
    assert len(val_idx) == 3 and sorted(train_idx + val_idx) == list(range(10))
    assert holdout_indices(10, 0.3, seed=4) == (train_idx, val_idx) != holdout_indices(10, 0.3, seed=5)
    rest, val = holdout_split(ds, 0.3, seed=4)
    assert val.stems == [ds.stems[i] for i in val_idx] and rest.stems == [ds.stems[i] for i in train_idx]
    _, val_again = train_val_datasets(root, val_fraction=0.3, seed=4)
    assert val_again.stems == val.stems
    (cv,) = make_splits(10, "holdout:0.3", seed=4)
    assert (cv.train, cv.test) == (train_idx, val_idx)
