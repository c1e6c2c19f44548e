"""Deep models as Segmenters: training through :class:`~segscope.engine.Trainer`, inference on arrays."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from segscope.data.dataset import SegmentationDataset
from segscope.data.samplers import build_sampler, class_presence
from segscope.data.torch_dataset import (
    TorchSegmentationDataset,
    default_normalization,
    image_to_tensor,
    resize_pair,
)
from segscope.data.transforms import build_transforms
from segscope.engine.checkpoint import load_weights, save_weights
from segscope.engine.config import TrainConfig
from segscope.engine.trainer import Trainer, resolve_device
from segscope.errors import UserError
from segscope.imbalance.decision import DecisionRule
from segscope.io import write_json_atomic
from segscope.losses import build_loss, class_weights
from segscope.segmenter import Segmenter

FILL_INDEX = 255  # mask value the loss ignores: the dataset's ignore index and augmentation padding


class DeepSegmenter(Segmenter):
    """A registered deep model (``model_name``) with its training configuration.

    Options that :class:`TrainConfig` knows (``epochs``, ``lr``, ``batch_size``, ``crop_size``,
    ``resize``, ``augment``, ``loss``, ...) configure training; ``inference_dtype`` ("float32" or
    "bfloat16") selects the precision of :meth:`predict` (see :mod:`segscope.inference`); ``decision``
    (``argmax``, ``prior``, ``bias``, ``threshold``, ``cost`` with ``cost_matrix``) the rule that turns
    logits into labels (see :mod:`segscope.imbalance.decision`); every other option goes to the model
    builder (e.g. ``base_channels`` for U-Net, ``pretrained`` for an encoder's weights).
    """

    family = "deep"

    def __init__(
        self, model_name: str, num_classes: int = 2, *, in_channels: int = 3, **options: Any
    ) -> None:
        from segscope.methods import create_model

        super().__init__(num_classes, **options)
        self.name = model_name
        self.inference_dtype = str(options.pop("inference_dtype", "float32"))
        if self.inference_dtype not in ("float32", "bfloat16"):
            raise UserError(f"inference_dtype must be float32 or bfloat16, got {self.inference_dtype!r}")
        self._fast_model: torch.nn.Module | None = None
        self.in_channels = in_channels
        decision_state = {k: options.pop(k, None) for k in ("decision_bias", "decision_threshold")}
        self.cost_matrix = options.pop("cost_matrix", None)  # for a `cost` loss term and decision
        if isinstance(self.cost_matrix, str):
            from segscope.imbalance import load_cost_matrix

            self.cost_matrix = load_cost_matrix(self.cost_matrix, num_classes).tolist()
        self.decision = DecisionRule(
            options.pop("decision", "argmax"), num_classes=num_classes, cost_matrix=self.cost_matrix
        )
        self.decision.load_state(decision_state)
        train_keys = TrainConfig.field_names()
        self.config = TrainConfig.from_dict(
            {k: v for k, v in options.items() if k in train_keys}, source=f"options of {model_name}"
        )
        self.model_options = {k: v for k, v in options.items() if k not in train_keys}
        torch.manual_seed(self.config.seed)
        try:
            self.model = create_model(
                model_name, num_classes=num_classes, in_channels=in_channels, **self.model_options
            )
        except TypeError as exc:
            raise UserError(f"model {model_name!r}: bad option ({exc})") from None
        self.mean, self.std = default_normalization(in_channels)
        self.classes: list[str] = [f"class{i}" for i in range(num_classes)]
        self.stop_reason = ""

    # -- training -------------------------------------------------------------------------------
    def fit(
        self,
        train: SegmentationDataset,
        val: SegmentationDataset | None = None,
        *,
        time_budget_s: float | None = None,
        out_dir: str | Path | None = None,
        progress: bool = True,
        resume: bool = False,
    ) -> DeepSegmenter:
        cfg = self.config if time_budget_s is None else self.config.replace(time_budget_s=time_budget_s)
        if train.num_classes != self.num_classes:
            raise UserError(
                f"{train.root}: dataset has {train.num_classes} classes, model {self.num_classes}"
            )
        self.classes = list(train.classes)
        counts = train.class_pixel_counts() if cfg.class_weights or self.decision.rule != "argmax" else None
        weight = class_weights(counts, cfg.class_weights) if cfg.class_weights else None
        loss_fn = build_loss(cfg.loss, ignore_index=FILL_INDEX, weight=weight, cost_matrix=self.cost_matrix)
        transform = build_transforms(
            cfg.augment, crop_size=cfg.crop_size, fill_index=FILL_INDEX, crop_max_ratio=cfg.crop_max_ratio
        )
        train_t = TorchSegmentationDataset(
            train, transform=transform, resize=cfg.resize, fill_index=FILL_INDEX
        )
        self.mean, self.std = train_t.mean, train_t.std
        evaluate_fn = None
        if val is not None and len(val):
            val_t = TorchSegmentationDataset(
                val, resize=cfg.resize, fill_index=FILL_INDEX, mean=self.mean, std=self.std
            )
            evaluate_fn = _validation(val_t, self.num_classes, loss_fn, cfg, self)
        with tempfile.TemporaryDirectory(prefix="segscope-") as tmp:
            run_dir = Path(out_dir) if out_dir is not None else Path(tmp)
            trainer = Trainer(
                self.model,
                cfg,
                loss_fn=loss_fn,
                evaluate_fn=evaluate_fn,
                run_dir=run_dir,
                info={"segmenter": self.state()},
                progress=progress,
            )
            self._fast_model = None
            sampler_factory = None
            if cfg.sampler is not None:
                presence = class_presence(train)

                def sampler_factory(num_samples: int, generator: torch.Generator):
                    return build_sampler(
                        cfg.sampler, train, num_samples=num_samples, generator=generator, presence=presence
                    )

            self.history = trainer.fit(train_t, resume=resume, sampler_factory=sampler_factory)
            self.stop_reason = trainer.stop_reason
            load_weights(
                run_dir
                / ("best.safetensors" if (run_dir / "best.safetensors").exists() else "last.safetensors"),
                self.model,
            )
            self.model.eval()
            if self.decision.rule != "argmax":
                self._fit_decision(counts, val)
            if out_dir is not None:
                self.save(run_dir)
        self.model.eval()
        return self

    def _fit_decision(self, counts: np.ndarray, val: SegmentationDataset | None) -> None:
        """Fit the decision rule: prior from the training counts, biases/threshold on ``val``."""
        logits, targets = [], []
        if self.decision.needs_validation and val is not None:
            stride = max(1, int(np.sqrt(len(val) * np.prod(val.load_mask(0).shape) / 2e6)))
            for i in range(len(val)):
                image, mask = val[i]
                logits.append(self.logits(image)[:, ::stride, ::stride].contiguous())
                targets.append(mask[::stride, ::stride])
        self.decision.fit(counts, logits, targets, ignore_index=val.ignore_index if val is not None else None)

    # -- inference ------------------------------------------------------------------------------
    @torch.inference_mode()
    def logits(self, image: np.ndarray) -> torch.Tensor:
        """``(H, W, C)`` uint8 image -> ``(num_classes, H, W)`` float32 logits at the image's size."""
        if image.ndim == 2:
            image = image[..., None]
        if image.shape[2] != self.in_channels:
            raise UserError(f"image has {image.shape[2]} channels, model expects {self.in_channels}")
        model = self.inference_model()
        device = next(self.model.parameters()).device
        h, w = image.shape[:2]
        work = resize_pair(image, None, self.config.resize)[0] if self.config.resize else image
        x = image_to_tensor(work, self.mean, self.std).unsqueeze(0).to(device)
        margin = int(getattr(self.model, "output_margin", 0))
        out = _overlap_tile(model, x, margin) if margin else model(x)
        if out.shape[-2:] != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out[0].float().cpu()

    def inference_model(self) -> torch.nn.Module:
        """The trained model with BatchNorm folded, channels-last and ``inference_dtype`` (cached)."""
        if self._fast_model is None:
            from segscope.inference import InferenceModel

            dtype = torch.bfloat16 if self.inference_dtype == "bfloat16" else torch.float32
            self._fast_model = InferenceModel(self.model.eval(), dtype=dtype)
        return self._fast_model

    def predict(self, image: np.ndarray) -> np.ndarray:
        return self.decision(self.logits(image))

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Class posteriors; under the ``prior``/``bias`` decisions, those of the corrected logits."""
        logits = self.logits(image)
        if self.decision.bias is not None:
            logits = logits + torch.as_tensor(self.decision.bias, dtype=logits.dtype).view(-1, 1, 1)
        return logits.softmax(0).numpy()

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    # -- persistence ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "options": {
                **self.model_options,
                **_json_safe(self.config.to_dict()),
                "inference_dtype": self.inference_dtype,
                **{k: v for k, v in self.decision.state().items() if v is not None},
                **({"cost_matrix": self.cost_matrix} if self.cost_matrix is not None else {}),
            },
            "classes": self.classes,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def save(self, run_dir: str | Path) -> Path:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_weights(run_dir / "model.safetensors", self.model, epoch=len(self.history))
        write_json_atomic(
            run_dir / "segmenter.json", {"family": self.family, **self.state(), "history": self.history}
        )
        return run_dir

    @classmethod
    def from_run(cls, run_dir: str | Path) -> DeepSegmenter:
        run_dir = Path(run_dir)
        meta = json.loads((run_dir / "segmenter.json").read_text())
        options = dict(meta["options"])
        options["device"] = "cpu" if not torch.cuda.is_available() else options.get("device", "auto")
        seg = cls(meta["name"], meta["num_classes"], in_channels=meta["in_channels"], **options)
        load_weights(run_dir / "model.safetensors", seg.model)
        seg.model.to(resolve_device(seg.config.device)).eval()
        seg.classes, seg.mean, seg.std = meta["classes"], tuple(meta["mean"]), tuple(meta["std"])
        seg.history = meta.get("history", [])
        return seg


def _json_safe(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "extra" or v}


def _overlap_tile(model: torch.nn.Module, x: torch.Tensor, margin: int, tile: int = 388) -> torch.Tensor:
    """The U-Net paper's overlap-tile strategy: mirror-pad by ``margin`` and predict output tiles."""
    n, _, h, w = x.shape
    th, tw = min(tile, _round_up(h, 4)), min(tile, _round_up(w, 4))
    while not (model.valid_input_size(th + 2 * margin) and model.valid_input_size(tw + 2 * margin)):
        th, tw = (
            th + (not model.valid_input_size(th + 2 * margin)),
            tw + (not model.valid_input_size(tw + 2 * margin)),
        )
    ph, pw = _round_up(h, th) - h, _round_up(w, tw) - w
    padded = F.pad(x, (margin, margin + pw, margin, margin + ph), mode="reflect")
    out = None
    for top in range(0, h + ph, th):
        for left in range(0, w + pw, tw):
            y = model(padded[..., top : top + th + 2 * margin, left : left + tw + 2 * margin])
            if out is None:
                out = y.new_zeros((n, y.shape[1], h + ph, w + pw))
            out[..., top : top + th, left : left + tw] = y
    return out[..., :h, :w]


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def _validation(
    val_t: TorchSegmentationDataset, num_classes: int, loss_fn, cfg: TrainConfig, seg: DeepSegmenter
):
    """``evaluate_fn`` for the trainer: val loss, mean IoU and pixel accuracy at the training resolution."""
    from segscope.metrics import ConfusionMatrix

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        model.eval()
        device = next(model.parameters()).device
        cm = ConfusionMatrix(num_classes, ignore_index=FILL_INDEX)
        total, count = 0.0, 0
        margin = int(getattr(model, "output_margin", 0))
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(len(val_t)):
                x, y = val_t[i]
                x = x.unsqueeze(0).to(device).contiguous(memory_format=torch.channels_last)
                out = _overlap_tile(model, x, margin) if margin else model(x)
                total += float(loss_fn(out, y.unsqueeze(0).to(device)))
                count += 1
                cm.update(out.argmax(1)[0].cpu(), y)
        model.train()
        return {
            "loss": round(total / max(count, 1), 6),
            "mean_iou": round(float(cm.mean_iou()), 6),
            "pixel_accuracy": round(float(cm.pixel_accuracy()), 6),
            "time_s": round(time.perf_counter() - t0, 2),
        }

    return evaluate
