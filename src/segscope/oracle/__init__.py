"""Quality-inference segmentation (Fernandes, Cruz & Cardoso, IJCNN 2018).

An oracle network learns q(image, soft mask) -> Dice/IoU with the unseen true mask from synthetically
degraded masks (:mod:`~segscope.oracle.degrade`, :mod:`~segscope.oracle.train`); any mask is then
improved by gradient ascent on q (:mod:`~segscope.oracle.refine`), or built from an empty one.
"""

from segscope.oracle.degrade import (
    DEGRADATIONS,
    DegradedMask,
    degrade_mask,
    mask_quality,
    soft_dice,
    soft_iou,
)
from segscope.oracle.evaluate import evaluate_oracle
from segscope.oracle.network import QualityOracle, load_oracle, save_oracle
from segscope.oracle.refine import (
    Refinement,
    refine_classes,
    refine_mask,
    refine_proba,
    segment_from_scratch,
)
from segscope.oracle.samples import build_samples
from segscope.oracle.stage import OracleStage, RefinedSegmenter
from segscope.oracle.train import OracleRun, train_oracle

__all__ = [
    "DEGRADATIONS",
    "DegradedMask",
    "OracleRun",
    "OracleStage",
    "QualityOracle",
    "RefinedSegmenter",
    "Refinement",
    "build_samples",
    "degrade_mask",
    "evaluate_oracle",
    "load_oracle",
    "mask_quality",
    "refine_classes",
    "refine_mask",
    "refine_proba",
    "save_oracle",
    "segment_from_scratch",
    "soft_dice",
    "soft_iou",
    "train_oracle",
]
