"""Quality-inference segmentation (Fernandes, Cruz & Cardoso, IJCNN 2018).

An oracle network learns the quality of a mask for an image with the unseen true mask, from masks of
known quality (:mod:`~segscope.oracle.degrade`). Two kinds: the *global* oracle scores a mask seen at
128x128 (:mod:`~segscope.oracle.network`, :mod:`~segscope.oracle.train`, refined by gradient ascent in
:mod:`~segscope.oracle.refine`); the *local* oracle works at full resolution and gives a per-pixel
quality map whose counts make the score (:mod:`~segscope.oracle.local`, :mod:`~segscope.oracle.local_train`,
refined inside a trust region with settings tuned on held-out images in :mod:`~segscope.oracle.local_refine`).
Either one also scores masks without refining (:mod:`~segscope.oracle.quality`): label-free quality,
per-image method choice, flagging.
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
from segscope.oracle.local import LocalQualityOracle, load_local_oracle, save_local_oracle
from segscope.oracle.local_refine import LocalRefinement, refine_local, tune_refinement
from segscope.oracle.local_train import LocalOracleRun, train_local_oracle
from segscope.oracle.network import QualityOracle, load_oracle, save_oracle
from segscope.oracle.quality import (
    choose_per_image,
    fit_oracle,
    flag_images,
    load_any_oracle,
    predicted_quality,
)
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
    "LocalOracleRun",
    "LocalQualityOracle",
    "LocalRefinement",
    "OracleRun",
    "OracleStage",
    "QualityOracle",
    "RefinedSegmenter",
    "Refinement",
    "build_samples",
    "choose_per_image",
    "degrade_mask",
    "evaluate_oracle",
    "fit_oracle",
    "flag_images",
    "load_any_oracle",
    "load_local_oracle",
    "load_oracle",
    "mask_quality",
    "predicted_quality",
    "refine_classes",
    "refine_local",
    "refine_mask",
    "refine_proba",
    "save_local_oracle",
    "save_oracle",
    "segment_from_scratch",
    "soft_dice",
    "soft_iou",
    "train_local_oracle",
    "train_oracle",
    "tune_refinement",
]
