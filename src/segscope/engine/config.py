"""Training configuration: one frozen dataclass, YAML in and out, saved beside every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segscope.errors import UserError

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("poly", "onecycle", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a deep model is trained (model options live elsewhere).

    ``epochs`` and ``time_budget_s`` both bound training; whichever ends first wins. The learning-rate
    schedule runs on training progress = max(step / total steps, elapsed / time budget), so a time
    budget gets a full poly/one-cycle decay too.
    """

    epochs: int = 50
    time_budget_s: float | None = None
    batch_size: int = 8
    samples_per_epoch: int | None = None  # draw this many (augmented) samples per epoch; default: the dataset
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "poly"
    poly_power: float = 0.9
    warmup_fraction: float = 0.0
    amp: bool = False  # bf16 autocast on CPU, fp16 AMP on CUDA
    accumulate: int = 1
    grad_clip: float | None = None
    loss: str = "ce"
    class_weights: str | None = None  # None | "inverse" | "median_freq" | "enet"
    sampler: str | None = None  # None | "repeat_factor[:t=0.3]" | ... (segscope.data.samplers)
    augment: str = "light"
    crop_size: tuple[int, int] | None = None
    crop_max_ratio: float | None = None  # re-draw crops whose largest class exceeds this share
    resize: tuple[int, int] | None = None
    patch_size: tuple[int, int, int] | None = None  # volume models: training patch (D, H, W)
    foreground_fraction: float = 0.33  # volume models: share of patches centred on a foreground voxel
    early_stopping_patience: int | None = None
    freeze_encoder_epochs: int = 0  # transfer learning: encoder frozen (BatchNorm in eval) this long
    encoder_lr_scale: float = 1.0  # discriminative learning rate: encoder lr = lr * this
    monitor: str = "mean_iou"
    val_every: int = 1
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    channels_last: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.epochs < 1:
            raise UserError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1 or self.accumulate < 1:
            raise UserError("batch_size and accumulate must be >= 1")
        if self.lr <= 0:
            raise UserError(f"lr must be positive, got {self.lr}")
        if self.freeze_encoder_epochs < 0 or self.encoder_lr_scale < 0:
            raise UserError("freeze_encoder_epochs and encoder_lr_scale must be >= 0")
        if self.crop_max_ratio is not None and not 0 < self.crop_max_ratio <= 1:
            raise UserError(f"crop_max_ratio must be in (0, 1], got {self.crop_max_ratio}")
        for name in ("crop_size", "resize"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _pair(value, name))
        if self.patch_size is not None:
            object.__setattr__(self, "patch_size", _triple(self.patch_size, "patch_size"))
        if not 0 <= self.foreground_fraction <= 1:
            raise UserError(f"foreground_fraction must be in [0, 1], got {self.foreground_fraction}")

    # -- dict / YAML ----------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("crop_size", "resize", "patch_size"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> TrainConfig:
        unknown = set(data) - cls.field_names()
        if unknown:
            raise UserError(f"{source}: unknown training options {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise UserError(f"{source}: {exc}") from None

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        from segscope.io import read_yaml_mapping

        data = read_yaml_mapping(path, what="training options")
        return cls.from_dict(data.get("train", data), source=str(path))


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, str):
        value = value.lower().replace("x", ",").split(",")
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be an int or a pair HxW, got {value!r}") from None
    if h < 1 or w < 1:
        raise UserError(f"{name} must be positive, got {h}x{w}")
    return (h, w)


def _triple(value: Any, name: str) -> tuple[int, int, int]:
    """``32``, ``"16x64x64"`` or ``[16, 64, 64]`` -> ``(D, H, W)``."""
    if isinstance(value, int):
        return (value, value, value)
    if isinstance(value, str):
        value = value.lower().replace("x", ",").split(",")
    try:
        d, h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be an int or a triple DxHxW, got {value!r}") from None
    if min(d, h, w) < 1:
        raise UserError(f"{name} must be positive, got {d}x{h}x{w}")
    return (d, h, w)
