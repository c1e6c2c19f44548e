"""Every way segscope splits images: validation schemes, the seeded hold-out, a dataset's own splits.

All are index splits built with scikit-learn's splitters and saved to JSON for reuse. Specs for
:func:`make_splits`:

* ``kfold:K`` -- K shuffled folds (:class:`sklearn.model_selection.KFold`, seeded);
* ``group-kfold:K`` -- K folds that never split a group (a CamVid sequence, a volume, a patient) across
  train and test (:class:`~sklearn.model_selection.GroupKFold`; groups from ``dataset.groups``);
* ``logo`` -- leave-one-group-out; ``lpgo:P`` -- leave-P-groups-out
  (:class:`~sklearn.model_selection.LeaveOneGroupOut`, :class:`~sklearn.model_selection.LeavePGroupsOut`);
* ``loo`` -- leave-one-out; ``lpo:P`` -- leave-P-out; these and ``lpgo`` are refused when their splits
  exceed ``max_splits``;
* ``holdout:F`` -- one split with a seeded fraction F of the images held out
  (:class:`~sklearn.model_selection.ShuffleSplit`; the same draw as :func:`holdout_indices`, which
  ``segscope train``'s validation set, bench's per-fold validation set and the oracle's use).

A dataset's own splits (``train/val``) are one :class:`Split` whose train and test indices refer to two
different datasets (:func:`named_splits`); :func:`fold_datasets` turns any list of splits into
``(split, train dataset, test dataset)`` triples, so a runner never needs to know which case it has.

References
----------
Kohavi, "A study of cross-validation and bootstrap for accuracy estimation and model selection",
IJCAI 1995. Pedregosa et al., "Scikit-learn: Machine Learning in Python", JMLR 2011.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segscope.errors import UserError
from segscope.io import write_json_atomic

if TYPE_CHECKING:
    from segscope.data.dataset import SegmentationDataset

SCHEMES = "kfold:K, group-kfold:K, logo, lpgo:P, loo, lpo:P or holdout:F"


@dataclass(frozen=True)
class Split:
    """One fold: indices of the training images and of the test images.

    ``train_split`` / ``test_split`` name the dataset split each index list refers to (e.g. ``"train"``
    and ``"val"`` for a dataset's own splits); ``None`` means the dataset that was cross-validated
    (``open_dataset(root)``), so both lists index the same images and must be disjoint.
    """

    name: str
    train: list[int]
    test: list[int]
    train_split: str | None = None
    test_split: str | None = None

    @property
    def same_dataset(self) -> bool:
        """True when ``train`` and ``test`` index the same dataset (cross-validation)."""
        return self.train_split == self.test_split


@dataclass(frozen=True)
class SavedSplits:
    """The content of a splits file: the spec, the number of images it covers, the seed and the splits."""

    spec: str
    n: int
    seed: int | None
    splits: list[Split]


def make_splits(
    n_or_dataset: int | Sequence[Any],
    spec: str,
    *,
    groups: Sequence[str] | None = None,
    seed: int = 0,
    max_splits: int = 50,
) -> list[Split]:
    """The train/test splits of a dataset (or of ``n`` samples) that ``spec`` describes.

    Parameters
    ----------
    n_or_dataset : the number of samples, or a dataset (its length; its ``groups`` for ``group-kfold``).
    spec : ``kfold:K``, ``group-kfold:K``, ``loo``, ``lpo:P`` or ``holdout:F`` (see the module docstring).
    groups : one group id per sample for ``group-kfold`` (default: ``dataset.groups``).
    seed : shuffling seed (``kfold``, ``group-kfold``, ``holdout``).
    max_splits : ``loo`` and ``lpo`` are refused, with one line naming the count, above this many splits.

    Returns
    -------
    list of Split, named ``fold0``, ``fold1``, ... (``holdout`` for a hold-out split), with sorted indices.
    """
    from sklearn.model_selection import (
        GroupKFold,
        KFold,
        LeaveOneGroupOut,
        LeaveOneOut,
        LeavePGroupsOut,
        LeavePOut,
    )

    if isinstance(n_or_dataset, int):
        n = n_or_dataset
    else:
        n = len(n_or_dataset)
        if groups is None and (spec.startswith("group") or spec.startswith(("logo", "lpgo"))):
            groups = list(getattr(n_or_dataset, "groups", []) or []) or None
    if n < 2:
        raise UserError(f"--cv {spec}: need at least 2 images to split, got {n}")
    kind, _, arg = spec.partition(":")
    idx = np.arange(n)
    if kind == "holdout":
        fraction = _number(arg or "0.2", spec, float)
        if not 0 < fraction < 1:
            raise UserError(f"--cv {spec}: the held-out fraction must be in (0, 1)")
        train, test = holdout_indices(n, fraction, seed)
        return [Split("holdout", train, test)]
    if kind in ("group-kfold", "logo", "lpgo"):
        if groups is not None and len(groups) != n:
            raise UserError(f"--cv {spec}: {len(groups)} group ids for {n} images")
        distinct = len({g for g in groups or [] if g != ""})
    if kind == "kfold":
        k = _number(arg or "5", spec, int)
        if not 2 <= k <= n:
            raise UserError(f"--cv {spec}: need 2 <= K <= {n} (the number of images)")
        splitter = KFold(k, shuffle=True, random_state=seed)
    elif kind == "group-kfold":
        k = _number(arg or "5", spec, int)
        if k < 2 or distinct < k:
            raise UserError(f"--cv {spec}: needs at least {max(k, 2)} groups, the dataset has {distinct}")
        splitter = GroupKFold(k, shuffle=True, random_state=seed)
    elif kind in ("logo", "lpgo"):
        p = 1 if kind == "logo" else _number(arg or "2", spec, int)
        if distinct < p + 1:
            raise UserError(f"--cv {spec}: needs at least {p + 1} groups, the dataset has {distinct}")
        count = math.comb(distinct, p)
        if count > max_splits:
            raise UserError(
                f"--cv {spec}: C({distinct}, {p}) = {count} splits exceed the cap of {max_splits}"
            )
        splitter = LeaveOneGroupOut() if kind == "logo" else LeavePGroupsOut(p)
    elif kind == "loo":
        if n > max_splits:
            raise UserError(f"--cv loo: {n} splits exceed the cap of {max_splits}; use kfold:K")
        splitter = LeaveOneOut()
    elif kind == "lpo":
        p = _number(arg or "2", spec, int)
        if not 1 <= p < n:
            raise UserError(f"--cv {spec}: need 1 <= P < {n} (the number of images)")
        count = math.comb(n, p)
        if count > max_splits:
            raise UserError(f"--cv {spec}: C({n}, {p}) = {count} splits exceed the cap of {max_splits}")
        splitter = LeavePOut(p)
    else:
        raise UserError(f"unknown validation scheme {spec!r}; use {SCHEMES}")
    return [
        Split(f"fold{i}", sorted(tr.tolist()), sorted(te.tolist()))
        for i, (tr, te) in enumerate(splitter.split(idx, groups=groups))
    ]


def holdout_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """``(train, held out)`` sorted indices: a seeded ``fraction`` of ``range(n)`` held out (at least one
    image, never all), drawn by :class:`sklearn.model_selection.ShuffleSplit`."""
    from sklearn.model_selection import ShuffleSplit

    k = min(n - 1, max(1, round(n * fraction)))
    train, test = next(ShuffleSplit(n_splits=1, test_size=k, random_state=seed).split(np.arange(n)))
    return sorted(train.tolist()), sorted(test.tolist())


def holdout_split(
    dataset: SegmentationDataset, fraction: float, seed: int
) -> tuple[SegmentationDataset, SegmentationDataset | None]:
    """``(rest, held out)`` of ``dataset`` by :func:`holdout_indices`; ``(dataset, None)`` when ``fraction``
    is 0 or there are fewer than 2 images. Every validation set carved from training data comes from here."""
    if fraction <= 0:
        return dataset, None
    if not 0 < fraction < 1:
        raise UserError(f"the held-out fraction must be in [0, 1), got {fraction}")
    if getattr(dataset, "ndim", 2) == 3 and hasattr(dataset, "with_blocks"):
        return holdout_slabs(dataset, fraction)
    if len(dataset) < 2:
        return dataset, None
    train, test = holdout_indices(len(dataset), fraction, seed)
    return dataset.subset(train), dataset.subset(test)


def holdout_slabs(volumes: Any, fraction: float) -> tuple[Any, Any]:
    """Volumes: the last ``fraction`` of every z-block's slices (at least one, and never the whole block)
    are held out, as contiguous slabs, so validation slices are not interleaved with training slices
    (neighbouring EM sections are nearly identical). Deterministic: no seed is needed."""
    from segscope.data.volume_dataset import VolumeBlock

    kept, held = [], []
    for b in volumes.blocks:
        depth = b.z1 - b.z0
        k = min(depth - 1, max(1, round(fraction * depth)))
        if k < 1:
            kept.append(b)
            continue
        kept.append(VolumeBlock(b.volume, b.z0, b.z1 - k))
        held.append(VolumeBlock(b.volume, b.z1 - k, b.z1))
    if not held:
        return volumes, None
    return volumes.with_blocks(kept), volumes.with_blocks(held)


def train_val_datasets(
    data: str | Path,
    *,
    format: str = "auto",
    split: str | None = None,
    val_split: str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    **options: Any,
) -> tuple[SegmentationDataset, SegmentationDataset | None]:
    """The training set and a validation set: the dataset's ``val`` split when it has one (or
    ``val_split``), otherwise a seeded ``val_fraction`` of the training images (:func:`holdout_split`).
    ``options`` go to :func:`~segscope.data.formats.open_dataset` (a volume's ``spacing``, ``blocks``)."""
    from segscope.data.formats import available_splits, open_dataset

    train = open_dataset(data, split, format=format, **options)
    if val_split is None and "val" in available_splits(data, format) and split in (None, "train"):
        val_split = "val"
    if val_split is not None:  # the val images are converted to the training set's channel count
        return train, open_dataset(data, val_split, format=format, **options).with_channels(train.channels)
    return holdout_split(train, val_fraction, seed)


def parse_split_spec(spec: str) -> tuple[str, str]:
    """``"train/val"`` -> ``("train", "val")``; a :class:`UserError` for anything else."""
    train_name, sep, test_name = spec.partition("/")
    if not sep or not train_name or not test_name or "/" in test_name:
        raise UserError(f"--split {spec}: expected TRAIN/TEST split names, e.g. train/val")
    if train_name == test_name:
        raise UserError(f"--split {spec}: training and test split are the same; use --cv to cross-validate")
    return train_name, test_name


def named_splits(root: str | Path, spec: str, *, format: str = "auto", **options: Any) -> list[Split]:
    """One split that trains on one of the dataset's own splits and tests on another (``"train/val"``);
    ``options`` go to :func:`~segscope.data.formats.open_dataset` (a volume's ``spacing``, ``blocks``)."""
    from segscope.data.formats import open_dataset

    train_name, test_name = parse_split_spec(spec)
    n_train = len(open_dataset(root, train_name, format=format, **options))
    n_test = len(open_dataset(root, test_name, format=format, **options))
    return [
        Split(f"{train_name}-{test_name}", list(range(n_train)), list(range(n_test)), train_name, test_name)
    ]


def fold_datasets(
    splits: Sequence[Split],
    root: str | Path,
    *,
    format: str = "auto",
    dataset: SegmentationDataset | None = None,
    **options: Any,
) -> list[tuple[Split, SegmentationDataset, SegmentationDataset]]:
    """``(split, train part, test part)`` for every split; each named dataset split is opened once.

    ``dataset``, when given, is the cross-validated dataset (``open_dataset(root)``, the split named
    ``None``) and is used as is instead of being reopened; ``options`` go to every
    :func:`~segscope.data.formats.open_dataset` call (a volume's ``spacing`` and ``blocks``: pass a
    :class:`~segscope.data.volume_dataset.VolumeDataset`'s ``open_options`` so folds match it).
    """
    from segscope.data.formats import open_dataset

    opened: dict[str | None, SegmentationDataset] = {} if dataset is None else {None: dataset}

    def _open(name: str | None) -> SegmentationDataset:
        if name not in opened:
            opened[name] = open_dataset(root, name, format=format, **options)
        return opened[name]

    out = []
    for s in splits:
        train, test = _open(s.train_split), _open(s.test_split)
        for part, indices in (("train", s.train), ("test", s.test)):
            ds = train if part == "train" else test
            if indices and not 0 <= min(indices) <= max(indices) < len(ds):
                raise UserError(f"split {s.name}: {part} index out of range for {len(ds)} images")
        out.append((s, train.subset(s.train), test.subset(s.test)))
    return out


def _number(text: str, spec: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise UserError(f"--cv {spec}: {text!r} is not a number") from None


def save_splits(
    path: str | Path, splits: Sequence[Split], *, spec: str, n: int, seed: int | None = None
) -> None:
    """Write ``splits`` (with the spec, image count and seed that made them) to JSON, atomically."""
    write_json_atomic(path, {"spec": spec, "n": n, "seed": seed, "splits": [asdict(s) for s in splits]})


def load_splits(path: str | Path) -> SavedSplits:
    """Read a file written by :func:`save_splits` (a :class:`UserError` naming it if unreadable)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        return SavedSplits(
            spec=data["spec"],
            n=int(data["n"]),
            seed=data.get("seed"),
            splits=[Split(**s) for s in data["splits"]],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a readable splits file ({type(exc).__name__}: {exc})") from None
