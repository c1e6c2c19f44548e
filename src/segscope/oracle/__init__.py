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
from segscope.oracle.network import QualityOracle, load_oracle, save_oracle
from segscope.oracle.refine import (
    RefinedSegmenter,
    Refinement,
    refine_classes,
    refine_mask,
    refine_proba,
    segment_from_scratch,
)
from segscope.oracle.train import OracleRun, build_samples, evaluate_oracle, train_oracle

__all__ = [
    "DEGRADATIONS",
    "DegradedMask",
    "OracleRun",
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
