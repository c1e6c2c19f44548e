"""Training engine: configuration, the training loop, checkpoints and per-epoch validation."""

from segscope.engine.config import TrainConfig
from segscope.engine.trainer import Trainer

__all__ = ["TrainConfig", "Trainer"]
