"""Metrics: confusion-matrix scores, boundary F, pixel and Rand error, instance mask AP."""

from segscope.metrics.boundary import boundary_f1
from segscope.metrics.confusion import ConfusionMatrix
from segscope.metrics.evaluator import Evaluator
from segscope.metrics.rand import adapted_rand_error, foreground_rand_error, pixel_error

__all__ = [
    "ConfusionMatrix",
    "Evaluator",
    "adapted_rand_error",
    "boundary_f1",
    "foreground_rand_error",
    "pixel_error",
]
