"""Classical segmentation: plain functions in scikit-image style plus a tuned Segmenter for each method.

Importing this package registers every classical method (``otsu``, ``multiotsu``, ``adaptive_threshold``,
``watershed``, ``chan_vese``, ``morph_chan_vese``, ``morph_geodesic``, ``snake``, ``slic``,
``felzenszwalb``, ``quickshift``, ``graphcut``, ``alpha_expansion``, ``grabcut``, ``random_walker``,
``one_class``; instance: ``watershed_instances``).
"""

from segscope.classical import (  # noqa: F401  (registration)
    active_contour,
    graph_cut,
    instances,
    one_class,
    random_walker,
    superpixels,
    threshold,
    watershed,
)
from segscope.classical.active_contour import (
    chan_vese_mask,
    morph_chan_vese_mask,
    morph_geodesic_mask,
    snake_mask,
)
from segscope.classical.graph_cut import alpha_expansion, binary_graph_cut, grabcut_mask
from segscope.classical.instances import WatershedInstances, distance_watershed
from segscope.classical.morphology import postprocess
from segscope.classical.one_class import OneClassSegmenter, normality_score
from segscope.classical.preprocess import preprocess
from segscope.classical.random_walker import intensity_seeds, random_walker_mask
from segscope.classical.segmenter import BinarySegmenter, ClassicalSegmenter, SemanticSegmenter
from segscope.classical.superpixels import (
    felzenszwalb_superpixels,
    label_superpixels,
    quickshift_superpixels,
    slic_superpixels,
)
from segscope.classical.threshold import adaptive_mask, multiotsu_regions, otsu_mask
from segscope.classical.watershed import watershed_instances

__all__ = [
    "BinarySegmenter",
    "ClassicalSegmenter",
    "OneClassSegmenter",
    "SemanticSegmenter",
    "WatershedInstances",
    "adaptive_mask",
    "alpha_expansion",
    "binary_graph_cut",
    "chan_vese_mask",
    "distance_watershed",
    "felzenszwalb_superpixels",
    "grabcut_mask",
    "intensity_seeds",
    "label_superpixels",
    "morph_chan_vese_mask",
    "morph_geodesic_mask",
    "multiotsu_regions",
    "normality_score",
    "otsu_mask",
    "postprocess",
    "preprocess",
    "quickshift_superpixels",
    "random_walker_mask",
    "slic_superpixels",
    "snake_mask",
    "watershed_instances",
]
