"""Datasets (2-D images and 3-D volumes), mask formats, joint transforms and samplers."""

from segscope.data.dataset import Sample, SegmentationDataset, default_palette, read_image
from segscope.data.formats import FORMATS, available_splits, detect_format, open_dataset
from segscope.data.masks import MaskCodec
from segscope.data.samplers import build_sampler, class_presence, repeat_factors
from segscope.data.transforms import MaxRatioCrop
from segscope.data.volume_dataset import SliceDataset, VolumeBlock, VolumeDataset
from segscope.data.volumes import Volume, read_label_volume, read_volume, write_volume

__all__ = [
    "FORMATS",
    "MaskCodec",
    "MaxRatioCrop",
    "Sample",
    "SegmentationDataset",
    "SliceDataset",
    "Volume",
    "VolumeBlock",
    "VolumeDataset",
    "available_splits",
    "build_sampler",
    "class_presence",
    "default_palette",
    "detect_format",
    "open_dataset",
    "read_image",
    "read_label_volume",
    "read_volume",
    "repeat_factors",
    "write_volume",
]
