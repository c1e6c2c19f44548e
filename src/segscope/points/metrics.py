"""Part IoU as PointNet reports it on ShapeNet-Part (Qi et al., CVPR 2017, Table 2; the released
``part_seg/test.py``).

Per shape: the IoU of each part of the shape's category, a part absent from both the prediction and the
truth counting IoU 1, averaged over the category's parts (the shape's mIoU). Then

* **instance mIoU** -- the mean of the shape mIoUs over all shapes (the paper's 83.7 on the test set);
* **category mIoU** -- the mean of the shape mIoUs of one category (the paper's per-category columns);
* **class mIoU** -- the mean of the category mIoUs over the categories present.

Labels are 1..P within the category, as in ``.seg`` files.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from segscope.points.io import NUM_PARTS, PART_NAMES


def part_ious(pred: np.ndarray, true: np.ndarray, num_parts: int) -> np.ndarray:
    """(num_parts,) IoU of parts 1..num_parts of one shape; 1.0 where a part is in neither labelling."""
    pred, true = np.asarray(pred).ravel(), np.asarray(true).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"prediction has {pred.size} labels, truth {true.size}")
    out = np.ones(num_parts)
    for k in range(1, num_parts + 1):
        p, t = pred == k, true == k
        union = np.count_nonzero(p | t)
        if union:
            out[k - 1] = np.count_nonzero(p & t) / union
    return out


def shape_miou(pred: np.ndarray, true: np.ndarray, num_parts: int) -> float:
    """The shape's mIoU: :func:`part_ious` averaged over the category's parts."""
    return float(part_ious(pred, true, num_parts).mean())


class PartIoU:
    """Accumulates shapes; :meth:`summary` gives instance, class, per-category and per-part IoU."""

    def __init__(self) -> None:
        self.shape_mious: dict[str, list[float]] = defaultdict(list)
        self.part_sums: dict[str, np.ndarray] = {}

    def add(self, category: str, pred: np.ndarray, true: np.ndarray) -> float:
        """Score one shape of ``category``; returns its mIoU."""
        ious = part_ious(pred, true, NUM_PARTS[category])
        self.shape_mious[category].append(float(ious.mean()))
        self.part_sums[category] = self.part_sums.get(category, np.zeros_like(ious)) + ious
        return float(ious.mean())

    def summary(self) -> dict:
        """``instance_miou`` (mean over shapes), ``class_miou`` (mean over categories), ``n_shapes``, and
        per category its ``miou``, ``n_shapes`` and ``part_iou`` (each part's IoU averaged over its shapes,
        the absent-part rule included)."""
        if not self.shape_mious:
            raise ValueError("no shape scored")
        per_category = {}
        for category in sorted(self.shape_mious):
            values = self.shape_mious[category]
            mean_parts = self.part_sums[category] / len(values)
            per_category[category] = {
                "miou": float(np.mean(values)),
                "n_shapes": len(values),
                "part_iou": dict(zip(PART_NAMES[category], map(float, mean_parts))),
            }
        every = [v for values in self.shape_mious.values() for v in values]
        return {
            "instance_miou": float(np.mean(every)),
            "class_miou": float(np.mean([c["miou"] for c in per_category.values()])),
            "n_shapes": len(every),
            "per_category": per_category,
        }
