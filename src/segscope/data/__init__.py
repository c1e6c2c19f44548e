"""Datasets, mask formats, joint transforms and samplers."""

from segscope.data.dataset import Sample, SegmentationDataset, default_palette, read_image
from segscope.data.formats import FORMATS, available_splits, detect_format, open_dataset
from segscope.data.masks import MaskCodec

__all__ = [
    "FORMATS",
    "MaskCodec",
    "Sample",
    "SegmentationDataset",
    "available_splits",
    "default_palette",
    "detect_format",
    "open_dataset",
    "read_image",
]
