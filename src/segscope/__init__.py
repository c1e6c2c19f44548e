"""segscope: image segmentation, classical and deep, behind one interface, one CLI and one report.

Quick use::

    import segscope
    ds = segscope.open_dataset("path/to/data")              # folder, CamVid, VOC or ISBI layout
    seg = segscope.create_segmenter("unet_small", num_classes=ds.num_classes, in_channels=1, epochs=5)
    seg.fit(ds)
    labels = seg.predict(ds[0][0])                          # (H, W) class indices
"""

from segscope.bench import BenchPlan, run_bench
from segscope.data import MaskCodec, SegmentationDataset, open_dataset, read_image
from segscope.data.samplers import build_sampler
from segscope.engine import TrainConfig, Trainer
from segscope.engine.validation import make_splits
from segscope.errors import DataError, TrainingDiverged, UserError
from segscope.evaluation import evaluate_segmenter
from segscope.imbalance import OneClassSegmenter
from segscope.imbalance.decision import DecisionRule
from segscope.loading import load
from segscope.losses import build_loss, class_weights
from segscope.methods import create_model, create_segmenter, list_models
from segscope.oracle import (
    QualityOracle,
    RefinedSegmenter,
    degrade_mask,
    load_oracle,
    refine_mask,
    segment_from_scratch,
    train_oracle,
)
from segscope.registry import REGISTRY, register
from segscope.segmenter import Segmenter

__version__ = "0.1.0"

__all__ = [
    "REGISTRY",
    "BenchPlan",
    "DataError",
    "DecisionRule",
    "MaskCodec",
    "OneClassSegmenter",
    "QualityOracle",
    "RefinedSegmenter",
    "SegmentationDataset",
    "Segmenter",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "UserError",
    "__version__",
    "build_loss",
    "build_sampler",
    "class_weights",
    "create_model",
    "create_segmenter",
    "degrade_mask",
    "evaluate_segmenter",
    "list_models",
    "load",
    "load_oracle",
    "make_splits",
    "open_dataset",
    "read_image",
    "refine_mask",
    "register",
    "run_bench",
    "segment_from_scratch",
    "train_oracle",
]
