"""Metrics: confusion-matrix scores (IoU, Dice, accuracies), boundary F, pixel and adapted Rand error,
surface distances (Hausdorff, HD95, ASSD), the BSDS boundary benchmark (ODS/OIS/AP), COCO mask AP and the
CVPPP instance scores, the :class:`Evaluator` and :class:`InstanceEvaluator` that bundle them, and
:mod:`~segscope.metrics.specs`, the one table of every metric."""

from segscope.metrics.boundary import boundary_f1, class_boundaries
from segscope.metrics.boundary_benchmark import boundary_counts, human_counts, match_boundaries, ods_ois_ap
from segscope.metrics.confusion import ConfusionMatrix
from segscope.metrics.evaluator import Evaluator
from segscope.metrics.instance import (
    abs_diff_in_count,
    best_dice,
    instance_masks,
    mask_ap,
    symmetric_best_dice,
)
from segscope.metrics.instance_evaluator import InstanceEvaluator
from segscope.metrics.rand import adapted_rand_error, foreground_rand_error, pixel_error
from segscope.metrics.surface import (
    hausdorff95,
    hausdorff_distance,
    mean_surface_distance,
    surface_distances,
    surface_scores,
)

__all__ = [
    "ConfusionMatrix",
    "Evaluator",
    "InstanceEvaluator",
    "abs_diff_in_count",
    "adapted_rand_error",
    "best_dice",
    "boundary_counts",
    "boundary_f1",
    "class_boundaries",
    "foreground_rand_error",
    "hausdorff95",
    "human_counts",
    "hausdorff_distance",
    "instance_masks",
    "mask_ap",
    "match_boundaries",
    "mean_surface_distance",
    "ods_ois_ap",
    "pixel_error",
    "surface_distances",
    "surface_scores",
    "symmetric_best_dice",
]
