"""Volumetric (3-D) segmentation networks and their Segmenter (importing registers them)."""

from segscope.models.volumetric.segmenter import VolumeSegmenter
from segscope.models.volumetric.unet3d import UNet3D, unet3d

__all__ = ["UNet3D", "VolumeSegmenter", "unet3d"]
