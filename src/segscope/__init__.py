"""segscope: image segmentation, classical and deep, behind one interface, one CLI and one report.

Quick use::

    import segscope
    ds = segscope.open_dataset("path/to/data")              # folder, CamVid, VOC or ISBI layout
    seg = segscope.create_segmenter("unet_small", num_classes=ds.num_classes, in_channels=1, epochs=5)
    seg.fit(ds)
    labels = seg.predict(ds[0][0])                          # (H, W) class indices

Volumes (``open_dataset(root, format="volume")``) go through the same calls: 3-D methods (``unet3d``)
predict ``(D, H, W)`` label maps, 2-D methods run slice by slice (:class:`SliceWiseSegmenter`). Point
clouds have their own small API (:mod:`segscope.points`: PointNet part segmentation).
"""

from segscope.bench import BenchPlan, run_bench
from segscope.classical import OneClassSegmenter
from segscope.crf import CRFStage, dense_crf
from segscope.data import (
    MaskCodec,
    SegmentationDataset,
    VolumeDataset,
    open_dataset,
    read_image,
    read_label_volume,
    read_volume,
    write_volume,
)
from segscope.data.samplers import build_sampler
from segscope.data.splits import holdout_split, make_splits
from segscope.engine import TrainConfig, Trainer
from segscope.errors import DataError, TrainingDiverged, UserError
from segscope.evaluation import evaluate_segmenter
from segscope.factory import create_model, create_segmenter, list_models, load
from segscope.fewshot import EpisodeSampler, FewShotPredictor, evaluate_fewshot, train_fewshot
from segscope.imbalance.decision import DecisionRule
from segscope.losses import build_loss, class_weights
from segscope.metrics.specs import METRICS, MetricSpec
from segscope.metrics.surface import hausdorff95, mean_surface_distance
from segscope.models import DeepSegmenter, register_model
from segscope.models.volumetric import VolumeSegmenter
from segscope.oracle import (
    LocalQualityOracle,
    QualityOracle,
    RefinedSegmenter,
    degrade_mask,
    load_any_oracle,
    load_oracle,
    predicted_quality,
    refine_local,
    refine_mask,
    segment_from_scratch,
    train_local_oracle,
    train_oracle,
    tune_refinement,
)
from segscope.points import PartSegmenter, PointNetPartSeg, load_shapenet_part, train_part_segmenter
from segscope.prompts import Prompt
from segscope.registry import REGISTRY, register
from segscope.report import render_bench_report, render_run_report
from segscope.run_config import RunConfig
from segscope.segmenter import Segmenter
from segscope.slice_wise import SliceWiseSegmenter
from segscope.stages import Stage, StagedSegmenter, register_stage
from segscope.types import Instances, LabelMap

__version__ = "0.1.0"

__all__ = [
    "METRICS",
    "REGISTRY",
    "BenchPlan",
    "CRFStage",
    "DataError",
    "DecisionRule",
    "DeepSegmenter",
    "EpisodeSampler",
    "FewShotPredictor",
    "Instances",
    "LabelMap",
    "MaskCodec",
    "MetricSpec",
    "OneClassSegmenter",
    "PartSegmenter",
    "PointNetPartSeg",
    "Prompt",
    "LocalQualityOracle",
    "QualityOracle",
    "RefinedSegmenter",
    "RunConfig",
    "SegmentationDataset",
    "Segmenter",
    "SliceWiseSegmenter",
    "Stage",
    "StagedSegmenter",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "UserError",
    "VolumeDataset",
    "VolumeSegmenter",
    "build_loss",
    "build_sampler",
    "class_weights",
    "create_model",
    "create_segmenter",
    "degrade_mask",
    "dense_crf",
    "evaluate_fewshot",
    "evaluate_segmenter",
    "hausdorff95",
    "holdout_split",
    "list_models",
    "load",
    "load_any_oracle",
    "load_oracle",
    "load_shapenet_part",
    "make_splits",
    "mean_surface_distance",
    "open_dataset",
    "read_image",
    "read_label_volume",
    "read_volume",
    "predicted_quality",
    "refine_local",
    "refine_mask",
    "register",
    "register_model",
    "register_stage",
    "render_bench_report",
    "render_run_report",
    "run_bench",
    "segment_from_scratch",
    "train_fewshot",
    "train_local_oracle",
    "train_oracle",
    "tune_refinement",
    "train_part_segmenter",
    "write_volume",
    "__version__",
]
