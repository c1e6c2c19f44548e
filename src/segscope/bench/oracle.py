"""A bench's quality oracles: one per fold, trained on that fold's training part only, never on its tests.

With ``BenchPlan.oracle`` set, :func:`train_fold_oracles` trains (or, on a resume, reopens) the oracle of
every fold in ``BENCH_DIR/oracles/<fold>`` before any cell runs, and checks from the oracle's own metadata
that it saw none of the fold's test images. Each cell then scores every test image's prediction with its
fold's oracle (:class:`QualityRecorder`): the label-free quality that :mod:`segscope.bench.oracle_results`
compares with the true one. The guard :func:`check_refine_oracle` keeps a method's ``refine_oracle=DIR``
stage from refining test images its oracle was trained on (``refine_oracle=fold`` takes the fold's own).

Fernandes, Cruz & Cardoso, "Deep image segmentation by quality inference", IJCNN 2018.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segscope.data.dataset import SegmentationDataset
from segscope.errors import UserError

ORACLES = "oracles"
FOLD_ORACLE = "fold"
"""``refine_oracle=fold``: refine with the bench's own oracle of the cell's fold (needs ``--oracle``)."""


class OracleLeakError(RuntimeError):
    """A fold's oracle was trained on one of the fold's test images: a bug in the bench, not bad input."""


def fold_oracle_dir(out: Path, fold: str) -> Path:
    """Where the bench in ``out`` keeps the oracle of ``fold``."""
    return Path(out) / ORACLES / fold


def train_fold_oracles(
    plan: Any,
    out: Path,
    folds: Sequence[tuple[Any, SegmentationDataset, SegmentationDataset]],
    *,
    ndim: int = 2,
) -> dict[str, dict[str, Any]]:
    """Train the oracle of every fold whose ``oracle.json`` is missing (a resume keeps the others) and
    check each against its fold's images (run it under :func:`segscope.bench.cell.torch_threads`).

    Returns ``{fold: {dir, kind, train_images, quality, classes}}`` for ``bench.json``; raises
    :class:`OracleLeakError` if an oracle's metadata names a test image of its fold.
    """
    from segscope.oracle.quality import fit_oracle, load_any_oracle

    if ndim == 3:
        raise UserError(f"--oracle: {plan.data} holds volumes; the quality oracles score 2-D images")
    records = {}
    for split, train, test in folds:
        run_dir = fold_oracle_dir(out, split.name)
        if not (run_dir / "oracle.json").is_file():
            try:
                fit_oracle(
                    train,
                    run_dir,
                    kind=plan.oracle,
                    time_budget_s=plan.oracle_budget_s,
                    seed=plan.seed,
                    progress=False,
                    **plan.oracle_options,
                )
            except TypeError as exc:
                if "unexpected keyword argument" not in str(exc):
                    raise
                raise UserError(
                    f"--oracle-option: not an option of the {plan.oracle} oracle ({exc})"
                ) from None
        oracle = load_any_oracle(run_dir)
        seen = check_fold_oracle(run_dir, split.name, train.stems, test.stems, disjoint=plan.split is None)
        records[split.name] = {
            "dir": str(run_dir),
            "kind": plan.oracle,
            "train_images": len(seen),
            "quality": str(getattr(oracle, "quality", "dice")),
            "classes": [int(c) for c in oracle.classes],
        }
    return records


def check_fold_oracle(
    run_dir: Path, fold: str, train_stems: Sequence[str], test_stems: Sequence[str], *, disjoint: bool = True
) -> list[str]:
    """The images the oracle of ``run_dir`` learned from, checked to be the fold's training images and
    (``disjoint``: the folds of one dataset, whose stems are unique) none of its test images."""
    from segscope.oracle.quality import oracle_train_images

    seen = oracle_train_images(run_dir)
    leaked = sorted(set(seen) & set(test_stems)) if disjoint else []
    outside = sorted(set(seen) - set(train_stems))
    if leaked or outside:
        raise OracleLeakError(
            f"internal error: the oracle {run_dir} of fold {fold} was trained on {len(leaked)} test "
            f"image(s) ({', '.join(leaked[:3])}) and {len(outside)} image(s) outside the fold's training part"
        )
    return seen


def resolve_refine_oracle(
    options: dict[str, Any], fold: str, oracle_dir: Path | None, test_stems: Sequence[str], guard: bool
) -> dict[str, Any]:
    """``options`` with ``refine_oracle=fold`` replaced by the fold's oracle directory, and (``guard``:
    a cross-validation bench) any refinement oracle checked by :func:`check_refine_oracle`."""
    value = options.get("refine_oracle")
    if value is None:
        return options
    if value == FOLD_ORACLE:
        if oracle_dir is None:
            raise UserError("refine_oracle=fold refines with the bench's per-fold oracle: add --oracle")
        return {**options, "refine_oracle": str(oracle_dir)}
    if guard:
        check_refine_oracle(value, fold, test_stems)
    return options


def check_refine_oracle(run_dir: str | Path, fold: str, test_stems: Sequence[str]) -> None:
    """Raise :class:`UserError` if the oracle of ``run_dir`` was trained on a test image of ``fold``."""
    from segscope.oracle.quality import oracle_train_images

    seen = set(oracle_train_images(run_dir)) & set(test_stems)
    if seen:
        raise UserError(
            f"refine_oracle={run_dir} was trained on {len(seen)} test images of fold {fold}: use --oracle "
            "for a per-fold oracle or an oracle trained on other data"
        )


class QualityRecorder:
    """The ``on_prediction`` hook of :func:`segscope.evaluation.evaluate_segmenter`: the fold oracle's
    predicted quality of each prediction (of an instance map, of its foreground), by image stem."""

    def __init__(self, oracle_dir: Path, *, instance: bool = False) -> None:
        from segscope.oracle.quality import load_any_oracle

        self.oracle = load_any_oracle(oracle_dir)
        self.instance = instance
        self.qualities: dict[str, float] = {}

    def __call__(self, stem: str, image: np.ndarray, prediction: np.ndarray) -> None:
        from segscope.oracle.quality import predicted_quality

        labels = (prediction > 0).astype(np.int64) if self.instance else prediction
        self.qualities[stem] = predicted_quality(self.oracle, image, labels)

    def annotate(self, per_image: list[dict[str, Any]]) -> None:
        """Add ``predicted_quality`` to each per-image record (matched by its ``name``)."""
        for row in per_image:
            row["predicted_quality"] = self.qualities.get(row["name"])
