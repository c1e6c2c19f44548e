"""Deep segmentation models. Importing this package registers every model by name."""

from segscope.models import semantic, volumetric  # noqa: F401  (registration)
from segscope.models.registration import register_model
from segscope.models.segmenter import DeepSegmenter
from segscope.models.summary import count_parameters

__all__ = ["DeepSegmenter", "count_parameters", "register_model"]
