"""Datasets, mask formats, joint transforms and samplers."""

from segscope.data.dataset import Sample, SegmentationDataset, default_palette, read_image
from segscope.data.formats import FORMATS, available_splits, detect_format, open_dataset
from segscope.data.masks import MaskCodec
from segscope.data.samplers import build_sampler, class_presence, repeat_factors
from segscope.data.transforms import MaxRatioCrop

__all__ = [
    "FORMATS",
    "MaskCodec",
    "MaxRatioCrop",
    "Sample",
    "SegmentationDataset",
    "available_splits",
    "build_sampler",
    "class_presence",
    "default_palette",
    "detect_format",
    "open_dataset",
    "read_image",
    "repeat_factors",
]
