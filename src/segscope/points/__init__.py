"""Point-cloud part segmentation: PointNet (Qi et al., CVPR 2017) on ShapeNet-Part-style data.

Readers and writers for the ShapeNet-Part layout, ``.ply`` and ``.npy`` (:mod:`~segscope.points.io`), a
generated (procedural) part-segmentation set in ShapeNet-Part's categories (:mod:`~segscope.points.shapes`),
the network and its T-Net regulariser (:mod:`~segscope.points.pointnet`), PointNet's part IoU
(:mod:`~segscope.points.metrics`), training and prediction (:mod:`~segscope.points.train`) and the
evaluation report (:mod:`~segscope.points.report`).
"""

from __future__ import annotations

from segscope.points.io import (
    CATEGORIES,
    CATEGORY_NAMES,
    NUM_PARTS,
    PART_NAMES,
    LabelledCloud,
    category_from_path,
    category_name,
    load_shapenet_part,
    normalize_unit_sphere,
    read_npy,
    read_ply,
    read_point_cloud,
    read_pts,
    read_seg,
    write_npy,
    write_ply,
    write_seg,
    write_shapenet_part,
)
from segscope.points.metrics import PartIoU, part_ious, shape_miou
from segscope.points.pointnet import PAPER_PARAMETERS, PointNetPartSeg, TNet, orthogonality_loss
from segscope.points.report import evaluate_run
from segscope.points.shapes import GENERATED_CATEGORIES, generate_set, generate_shape
from segscope.points.train import PartSegmenter, TrainConfig, augment, split_holdout, train_part_segmenter

__all__ = [
    "CATEGORIES",
    "CATEGORY_NAMES",
    "GENERATED_CATEGORIES",
    "NUM_PARTS",
    "PAPER_PARAMETERS",
    "PART_NAMES",
    "LabelledCloud",
    "PartIoU",
    "PartSegmenter",
    "PointNetPartSeg",
    "TNet",
    "TrainConfig",
    "augment",
    "category_from_path",
    "category_name",
    "evaluate_run",
    "generate_set",
    "generate_shape",
    "load_shapenet_part",
    "normalize_unit_sphere",
    "orthogonality_loss",
    "part_ious",
    "read_npy",
    "read_ply",
    "read_point_cloud",
    "read_pts",
    "read_seg",
    "shape_miou",
    "split_holdout",
    "train_part_segmenter",
    "write_npy",
    "write_ply",
    "write_seg",
    "write_shapenet_part",
]
