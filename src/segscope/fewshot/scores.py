"""Few-shot scores, as PANet (Wang et al., ICCV 2019, Sec. 5.1) and OSLSM (Shaban et al., BMVC 2017)
report them on PASCAL-5i:

* **mIoU**: for each unseen class, true positives, false positives and false negatives of its foreground
  are summed over every test episode that targets it; IoU = TP / (TP + FP + FN) per class, then the mean
  over the fold's classes (classes never drawn are left out and listed).
* **FB-IoU**: foreground (any way) against background, its two IoUs accumulated over all episodes the
  same way and averaged.

Pixels labelled 255 (the dataset's ignore label) count for neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segscope.metrics import ConfusionMatrix

IGNORE = 255


@dataclass
class EpisodeScores:
    """Accumulates, over episodes, one binary :class:`~segscope.metrics.ConfusionMatrix` per targeted
    class (that class against the rest) and one foreground-against-background matrix."""

    classes: tuple[str, ...]
    per_class: dict[int, ConfusionMatrix] = field(default_factory=dict)
    fb: ConfusionMatrix = field(default_factory=lambda: ConfusionMatrix(2, IGNORE))
    episodes: int = 0

    def update(self, pred: np.ndarray, target: np.ndarray, episode_classes: tuple[int, ...]) -> None:
        """One query: ``pred``/``target`` ``(H, W)`` with 0 background, ``k + 1`` way ``k``."""
        pred, target = np.asarray(pred), np.asarray(target)
        ignored = target == IGNORE
        for k, c in enumerate(episode_classes):
            t = np.where(ignored, IGNORE, target == k + 1)
            self.per_class.setdefault(c, ConfusionMatrix(2, IGNORE)).update(pred == k + 1, t)
        self.fb.update(pred > 0, np.where(ignored, IGNORE, target > 0))
        self.episodes += 1

    def per_class_iou(self) -> dict[str, float]:
        return {self.classes[c]: float(self.per_class[c].iou()[1]) for c in sorted(self.per_class)}

    def mean_iou(self) -> float:
        values = [v for v in self.per_class_iou().values() if v == v]
        return float(np.mean(values)) if values else float("nan")

    def fb_iou(self) -> float:
        return float(np.nanmean(self.fb.iou()))

    def summary(self) -> dict:
        return {
            "episodes": self.episodes,
            "mean_iou": self.mean_iou(),
            "fb_iou": self.fb_iou(),
            "per_class_iou": self.per_class_iou(),
        }
