"""Volumetric deep models as Segmenters: 3-D patches in training, a blended sliding window in inference.

:class:`VolumeSegmenter` is the ``ndim = 3`` sibling of :class:`~segscope.models.segmenter.DeepSegmenter`
(same run-directory sections, trainer, losses and decision rule); only the data path differs:

* **training** draws random ``patch_size`` patches from the training volumes, a ``foreground_fraction`` of
  them centred on a foreground voxel (nnU-Net's oversampling, :mod:`segscope.data.volume_patches`), with
  3-D joint augmentation (:mod:`segscope.data.volume_transforms`) in the volume's voxel spacing;
* **validation** (checkpoint selection) and **inference** run the model over the whole volume in
  overlapping windows blended with a Gaussian (:func:`segscope.inference.sliding_window.sliding_window`).

A volume is ``(D, H, W, C)`` uint8 in, a ``(D, H, W)`` int64 label map out. The 2-D augmentation presets
map onto 3-D ones (:data:`AUGMENT_PRESETS`); any other ``augment`` value is a 3-D spec such as
``"flip,rot90,elastic"``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from segscope.errors import UserError
from segscope.losses import build_loss, class_weights
from segscope.models.segmenter import FILL_INDEX, DeepSegmenter

AUGMENT_PRESETS = {"none": "none", "light": "flip,rot90", "strong": "flip,rot90,elastic,intensity"}
DEFAULT_PATCH = (32, 64, 64)


class VolumeSegmenter(DeepSegmenter):
    """A registered 3-D network (``(N, C, D, H, W)`` -> ``(N, K, D, H, W)`` logits) on volume datasets."""

    ndim: ClassVar[int] = 3

    def __init__(self, model_name: str, num_classes: int = 2, **kwargs: Any) -> None:
        train = kwargs.get("train")
        if isinstance(
            train, dict
        ):  # a 5-D tensor has no channels_last layout (channels_last_3d is slower on CPU)
            kwargs["train"] = {"channels_last": False, **train}
        elif train is None:
            kwargs["train"] = {"channels_last": False}
        super().__init__(model_name, num_classes, **kwargs)
        if self.config.channels_last:
            self.config = self.config.replace(channels_last=False)
        self.spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)

    # -- training -------------------------------------------------------------------------------
    def fit(
        self,
        train,
        val=None,
        *,
        time_budget_s: float | None = None,
        out_dir: str | Path | None = None,
        progress: bool = True,
        resume: bool = False,
    ) -> VolumeSegmenter:
        from segscope.data.volume_patches import VolumePatchDataset
        from segscope.data.volume_transforms import VolumeAugment

        _require_volumes(self.name, train)
        cfg = self.config if time_budget_s is None else self.config.replace(time_budget_s=time_budget_s)
        if train.num_classes != self.num_classes:
            raise UserError(
                f"{train.root}: dataset has {train.num_classes} classes, model {self.num_classes}"
            )
        self.classes = list(train.classes)
        self.spacing = tuple(float(s) for s in train.spacing)
        volumes = [self._channels(train.load_image(i)) for i in range(len(train))]
        masks = [_fill_ignore(train.load_mask(i), train.ignore_index) for i in range(len(train))]
        patch = self.patch_size(volumes)
        weight = None
        if cfg.class_weights:
            weight = class_weights(train.class_pixel_counts(), cfg.class_weights)
        loss_fn = build_loss(cfg.loss, ignore_index=FILL_INDEX, weight=weight, cost_matrix=self.cost_matrix)
        # elastic settings in in-plane voxels (the paper's): spacing relative to its finest axis
        relative = tuple(s / min(self.spacing) for s in self.spacing)
        augment = VolumeAugment(AUGMENT_PRESETS.get(cfg.augment, cfg.augment), spacing=relative)
        patches = VolumePatchDataset(
            volumes,
            masks,
            patch_size=patch,
            samples_per_epoch=cfg.samples_per_epoch or max(cfg.batch_size, 8 * len(volumes)),
            foreground_fraction=cfg.foreground_fraction,
            augment=augment,
            mean=self.mean,
            std=self.std,
            fill_index=FILL_INDEX,
            seed=cfg.seed,
        )
        evaluate_fn = None
        if val is not None and len(val):
            _require_volumes(self.name, val)
            val_pairs = [
                (self._channels(val.load_image(i)), _fill_ignore(val.load_mask(i), val.ignore_index))
                for i in range(len(val))
            ]
            evaluate_fn = self._validation(val_pairs, loss_fn, bf16=cfg.amp and self.model_device() == "cpu")
        self.run_trainer(
            patches,
            cfg.replace(samples_per_epoch=None),  # the patch dataset already has the epoch's length
            loss_fn,
            evaluate_fn,
            out_dir=out_dir,
            progress=progress,
            resume=resume,
        )
        return self

    def patch_size(self, volumes: list[np.ndarray] | None = None) -> tuple[int, int, int]:
        """The training / inference window: ``patch_size`` from the training options, else
        :data:`DEFAULT_PATCH` shrunk to the smallest training volume (rounded down to a multiple of 8)."""
        if self.config.patch_size is not None:
            return tuple(self.config.patch_size)
        if not volumes:
            return DEFAULT_PATCH
        smallest = np.min([v.shape[:3] for v in volumes], axis=0)
        return tuple(int(max(8, min(p, s // 8 * 8))) for p, s in zip(DEFAULT_PATCH, smallest))

    def inference_window(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """The sliding window: the training patch, twice as wide and high (fewer, larger windows cost
        less on a CPU than many overlapping small ones; the network is fully convolutional), at most the
        volume's size rounded up to a multiple of 8."""
        return tuple(
            int(min(p * k, -(-s // 8) * 8)) for p, k, s in zip(self.patch_size(), (1, 2, 2), shape[:3])
        )

    def _validation(self, pairs: list[tuple[np.ndarray, np.ndarray]], loss_fn, bf16: bool):
        from segscope.metrics import ConfusionMatrix

        def evaluate(model: torch.nn.Module) -> dict[str, float]:
            model.eval()
            cm = ConfusionMatrix(self.num_classes, ignore_index=FILL_INDEX)
            total, t0 = 0.0, time.perf_counter()
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                for volume, mask in pairs:
                    out = self._window_logits(model, volume)
                    target = torch.from_numpy(mask)[None]
                    total += float(loss_fn(out, target))
                    cm.update(out.argmax(1)[0], target[0])
            model.train()
            return {
                "loss": round(total / max(len(pairs), 1), 6),
                "mean_iou": round(float(cm.mean_iou()), 6),
                "pixel_accuracy": round(float(cm.pixel_accuracy()), 6),
                "time_s": round(time.perf_counter() - t0, 2),
            }

        return evaluate

    # -- inference ------------------------------------------------------------------------------
    def _channels(self, volume: np.ndarray) -> np.ndarray:
        """``(D, H, W[, C])`` -> ``(D, H, W, in_channels)``; grey replicated for a colour model."""
        if volume.ndim == 3:
            volume = volume[..., None]
        if volume.ndim != 4:
            raise UserError(f"{self.name}: expected a (D, H, W, C) volume, got shape {volume.shape}")
        if volume.shape[-1] == 1 and self.in_channels == 3:
            volume = np.repeat(volume, 3, axis=-1)
        if volume.shape[-1] != self.in_channels:
            raise UserError(
                f"volume has {volume.shape[-1]} channels, model {self.name} expects {self.in_channels}"
            )
        return volume

    def _window_logits(self, model: torch.nn.Module, volume: np.ndarray) -> torch.Tensor:
        """``(1, K, D, H, W)`` float32 logits of a ``(D, H, W, C)`` volume by the blended sliding window."""
        from segscope.inference.sliding_window import sliding_window

        device = next(self.model.parameters()).device
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(volume, -1, 0))).float().div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1, 1)
        x = ((x - mean) / std).unsqueeze(0).to(device)
        margin = int(getattr(self.model, "output_margin", 0))
        window = self.inference_window(volume.shape)
        out = sliding_window(model, x, window, overlap=0.25, blend="gaussian", margin=margin)
        if out.shape[-3:] != x.shape[-3:]:
            out = F.interpolate(out, size=x.shape[-3:], mode="trilinear", align_corners=False)
        return out.float().cpu()

    @torch.inference_mode()
    def logits(self, image: np.ndarray) -> torch.Tensor:
        """``(D, H, W, C)`` uint8 volume -> ``(num_classes, D, H, W)`` float32 logits."""
        return self._window_logits(self.inference_model(), self._channels(image))[0]

    def inference_model(self) -> torch.nn.Module:
        """A copy of the trained model in the channels-last 3-D layout, run in ``inference_dtype``
        (bfloat16 autocast on the CPU: about 4x faster than float32 for 3-D convolutions here)."""
        if self._fast_model is None:
            self._fast_model = _VolumeInference(self.model, bf16=self.inference_dtype == "bfloat16")
        return self._fast_model

    def model_device(self) -> str:
        return next(self.model.parameters()).device.type

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        logits = self.logits(image)
        if self.decision.bias is not None:
            logits = logits + torch.as_tensor(self.decision.bias, dtype=logits.dtype).view(-1, 1, 1, 1)
        return logits.softmax(0).numpy()

    def use_onnxruntime(self, path: str | Path) -> VolumeSegmenter:
        raise UserError(f"{self.name}: ONNX Runtime inference is for 2-D models")

    def run_config(self):
        config = super().run_config()
        config.model["input"]["spacing"] = list(self.spacing)
        config.model["input"]["patch_size"] = list(self.patch_size())
        return config

    @classmethod
    def from_config(cls, config, run_dir: str | Path) -> VolumeSegmenter:
        seg = super().from_config(config, run_dir)
        seg.spacing = tuple(config.model["input"].get("spacing", (1.0, 1.0, 1.0)))
        if seg.config.patch_size is None and "patch_size" in config.model["input"]:
            seg.config = seg.config.replace(patch_size=tuple(config.model["input"]["patch_size"]))
        return seg


def _require_volumes(name: str, dataset) -> None:
    if getattr(dataset, "ndim", 2) != 3:
        where = getattr(dataset, "root", None) or getattr(dataset, "name", "dataset")
        raise UserError(f"{name} is a 3-D model; {where} is a 2-D dataset (open a volume: --format volume)")


def _fill_ignore(mask: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """The mask with its ignore index replaced by the value the loss ignores."""
    if ignore_index is None or ignore_index == FILL_INDEX:
        return mask
    return np.where(mask == ignore_index, FILL_INDEX, mask)


class _VolumeInference(torch.nn.Module):
    """``model`` (copied, eval, channels-last 3-D) giving float32 logits; bfloat16 autocast if asked."""

    def __init__(self, model: torch.nn.Module, *, bf16: bool) -> None:
        import copy

        super().__init__()
        self.model = copy.deepcopy(model).eval().to(memory_format=torch.channels_last_3d)
        self.bf16 = bf16
        self.output_margin = int(getattr(model, "output_margin", 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        with torch.autocast(device, dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(x.contiguous(memory_format=torch.channels_last_3d)).float()
