"""Training engine: configuration, the training loop, checkpoints and validation splits."""

from segscope.engine.config import TrainConfig
from segscope.engine.trainer import Trainer

__all__ = ["TrainConfig", "Trainer"]
