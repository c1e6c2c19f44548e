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

IGNORE = 255


@dataclass
class EpisodeScores:
    """Accumulates per-class and foreground/background counts over episodes."""

    classes: tuple[str, ...]
    tp: dict[int, int] = field(default_factory=dict)
    fp: dict[int, int] = field(default_factory=dict)
    fn: dict[int, int] = field(default_factory=dict)
    fb: np.ndarray = field(default_factory=lambda: np.zeros((2, 3), np.int64))  # (bg, fg) x (tp, fp, fn)
    episodes: int = 0

    def update(self, pred: np.ndarray, target: np.ndarray, episode_classes: tuple[int, ...]) -> None:
        """One query: ``pred``/``target`` ``(H, W)`` with 0 background, ``k + 1`` way ``k``."""
        pred, target = np.asarray(pred), np.asarray(target)
        valid = target != IGNORE
        for k, c in enumerate(episode_classes):
            p, t = (pred == k + 1) & valid, (target == k + 1) & valid
            self.tp[c] = self.tp.get(c, 0) + int((p & t).sum())
            self.fp[c] = self.fp.get(c, 0) + int((p & ~t).sum())
            self.fn[c] = self.fn.get(c, 0) + int((~p & t).sum())
        for j, (p, t) in enumerate((((pred == 0), (target == 0)), ((pred > 0), (target > 0)))):
            p, t = p & valid, t & valid
            self.fb[j] += [int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())]
        self.episodes += 1

    def per_class_iou(self) -> dict[str, float]:
        out = {}
        for c in sorted(self.tp):
            denom = self.tp[c] + self.fp[c] + self.fn[c]
            out[self.classes[c]] = self.tp[c] / denom if denom else float("nan")
        return out

    def mean_iou(self) -> float:
        values = [v for v in self.per_class_iou().values() if v == v]
        return float(np.mean(values)) if values else float("nan")

    def fb_iou(self) -> float:
        ious = [tp / (tp + fp + fn) if tp + fp + fn else float("nan") for tp, fp, fn in self.fb]
        return float(np.nanmean(ious))

    def summary(self) -> dict:
        return {
            "episodes": self.episodes,
            "mean_iou": self.mean_iou(),
            "fb_iou": self.fb_iou(),
            "per_class_iou": self.per_class_iou(),
        }
