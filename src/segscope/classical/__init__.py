"""Classical segmentation: plain functions in scikit-image style plus a tuned Segmenter for each."""

from segscope.classical import threshold, watershed  # noqa: F401  (registration)
from segscope.classical.segmenter import ClassicalSegmenter
from segscope.classical.threshold import adaptive_foreground, otsu_foreground
from segscope.classical.watershed import watershed_foreground, watershed_instances

__all__ = [
    "ClassicalSegmenter",
    "adaptive_foreground",
    "otsu_foreground",
    "watershed_foreground",
    "watershed_instances",
]
