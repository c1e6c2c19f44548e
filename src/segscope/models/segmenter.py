"""Deep models as Segmenters: training through :class:`~segscope.engine.Trainer`, inference on arrays.

:class:`DeepSegmenter` adapts any registered ``nn.Module`` builder that maps ``(N, C_in, H, W)`` images to
``(N, K, H, W)`` logits to the Segmenter interface. It takes its configuration in the run directory's
sections (:mod:`segscope.run_config`): ``model`` (builder options), ``train`` (a
:class:`~segscope.engine.TrainConfig`), ``decision`` (:class:`~segscope.imbalance.decision.DecisionRule`)
and ``inference`` (``dtype``: ``"float32"`` or ``"bfloat16"``, see :mod:`segscope.inference`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from segscope.data.dataset import SegmentationDataset
from segscope.data.samplers import build_sampler, class_presence
from segscope.data.torch_dataset import (
    TorchSegmentationDataset,
    image_to_tensor,
    model_normalization,
    resize_pair,
)
from segscope.data.transforms import build_transforms
from segscope.engine import distributed
from segscope.engine.checkpoint import load_weights, save_weights
from segscope.engine.config import TrainConfig
from segscope.engine.trainer import Trainer, resolve_device
from segscope.engine.validation import semantic_validation
from segscope.errors import UserError
from segscope.imbalance.decision import DecisionRule
from segscope.inference.tiling import predict_logits
from segscope.losses import build_loss, class_weights
from segscope.registry import REGISTRY
from segscope.run_config import RunConfig
from segscope.segmenter import Segmenter

FILL_INDEX = 255  # mask value the loss ignores: the dataset's ignore index and augmentation padding
DTYPES = ("float32", "bfloat16")


class DeepSegmenter(Segmenter):
    """A registered deep model ``model_name`` with its training, decision and inference configuration."""

    family = "deep"
    task: ClassVar[str] = "semantic"
    ndim: ClassVar[int] = 2

    def __init__(
        self,
        model_name: str,
        num_classes: int = 2,
        *,
        in_channels: int = 3,
        model: dict[str, Any] | None = None,
        train: TrainConfig | dict[str, Any] | None = None,
        decision: dict[str, Any] | None = None,
        inference: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(num_classes)
        self.name = model_name
        self.in_channels = int(in_channels)
        self.model_options = dict(model or {})
        self.config = (
            train
            if isinstance(train, TrainConfig)
            else TrainConfig.from_dict(dict(train or {}), source=f"options of {model_name}")
        )
        self.inference_dtype = str((inference or {}).get("dtype", "float32"))
        self.inference_compile = _flag((inference or {}).get("compile", False), "inference_compile")
        if self.inference_dtype not in DTYPES:
            raise UserError(f"inference_dtype must be float32 or bfloat16, got {self.inference_dtype!r}")
        decision = dict(decision or {})
        self.cost_matrix = decision.get("cost_matrix")  # for a `cost` loss term and decision
        if isinstance(self.cost_matrix, str):
            from segscope.imbalance.cost import load_cost_matrix

            self.cost_matrix = load_cost_matrix(self.cost_matrix, num_classes).tolist()
        self.decision = DecisionRule(
            decision.get("decision", "argmax"), num_classes=num_classes, cost_matrix=self.cost_matrix
        )
        self.decision.load_state(decision)
        torch.manual_seed(self.config.seed)
        self.model = build_network(model_name, num_classes, in_channels, self.model_options)
        self.mean, self.std = model_normalization(self.model, in_channels)  # what its weights expect
        self.classes: list[str] = [f"class{i}" for i in range(num_classes)]
        self.stop_reason = ""
        self.weights_file: Path | None = None  # the checkpoint file holding the current weights
        self._fast_model: torch.nn.Module | None = None

    @classmethod
    def create(cls, entry, num_classes: int, in_channels: int, sections) -> DeepSegmenter:
        """The factory's constructor: the sections of :func:`segscope.factory.split_options`."""
        return cls(
            entry.name,
            num_classes,
            in_channels=in_channels,
            model=sections.model,
            train=sections.train,
            decision=sections.decision,
            inference=sections.inference,
        )

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
            train, transform=transform, resize=cfg.resize, fill_index=FILL_INDEX, mean=self.mean, std=self.std
        )
        evaluate_fn = None
        if val is not None and len(val):
            val_t = TorchSegmentationDataset(
                val, resize=cfg.resize, fill_index=FILL_INDEX, mean=self.mean, std=self.std
            )
            evaluate_fn = semantic_validation(val_t, self.num_classes, loss_fn, ignore_index=FILL_INDEX)
        after_fit = (lambda: self._fit_decision(counts, val)) if self.decision.rule != "argmax" else None
        self.run_trainer(
            train_t,
            cfg,
            loss_fn,
            evaluate_fn,
            out_dir=out_dir,
            progress=progress,
            resume=resume,
            sampler_factory=_sampler_factory(cfg, train),
            after_fit=after_fit,
        )
        self.model.eval()
        return self

    def run_trainer(
        self,
        dataset: torch.utils.data.Dataset,
        cfg: TrainConfig,
        loss_fn,
        evaluate_fn,
        *,
        out_dir: str | Path | None,
        progress: bool,
        resume: bool = False,
        sampler_factory=None,
        after_fit=None,
    ) -> None:
        """Train ``self.model`` on ``dataset`` (``(x, y)`` tensor pairs) through the :class:`Trainer`, keep
        the best checkpoint (else the last), run ``after_fit()`` and save into ``out_dir`` (a temporary
        folder when ``None``). Shared by the 2-D and the volumetric adapters, which differ only in data."""
        with tempfile.TemporaryDirectory(prefix="segscope-") as tmp:
            run_dir = Path(out_dir) if out_dir is not None else Path(tmp)
            trainer = Trainer(
                self.model,
                cfg,
                loss_fn=training_loss(self.model, loss_fn),
                evaluate_fn=evaluate_fn,
                run_dir=run_dir,
                info={"segmenter": self.state()},
                progress=progress,
            )
            self._fast_model = None
            self.history = trainer.fit(dataset, resume=resume, sampler_factory=sampler_factory)
            self.stop_reason = trainer.stop_reason
            best = run_dir / "best.safetensors"
            chosen = best if best.exists() else run_dir / "last.safetensors"
            load_weights(chosen, self.model)
            self.weights_file = chosen if out_dir is not None else None
            self.model.eval()
            if not distributed.is_main():  # under torchrun rank 0 alone finishes and saves the run
                return
            if after_fit is not None:
                after_fit()
            if out_dir is not None:
                self.save(run_dir)

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
        """``(H, W, C)`` uint8 image -> ``(num_classes, H, W)`` float32 logits at the image's size.

        A grey image given to a colour model is replicated to 3 channels; any other channel mismatch is
        refused with one line."""
        if image.ndim == 2:
            image = image[..., None]
        if image.shape[2] == 1 and self.in_channels == 3:
            image = np.repeat(image, 3, axis=2)
        if image.shape[2] != self.in_channels:
            raise UserError(
                f"image has {image.shape[2]} channels, model {self.name} expects {self.in_channels}"
            )
        model = self.inference_model()
        device = next(self.model.parameters()).device
        h, w = image.shape[:2]
        work = resize_pair(image, None, self.config.resize)[0] if self.config.resize else image
        x = image_to_tensor(work, self.mean, self.std).unsqueeze(0).to(device)
        out = predict_logits(model, x, margin=int(getattr(self.model, "output_margin", 0)))
        if out.shape[-2:] != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out[0].float().cpu()

    def use_onnxruntime(self, path: str | Path) -> DeepSegmenter:
        """Run inference on the ONNX export at ``path`` in ONNX Runtime (same preprocessing, tiling and
        decision; see :mod:`segscope.inference.onnx_export`)."""
        from segscope.inference.onnx_export import OnnxRuntimeModel

        self._fast_model = OnnxRuntimeModel(path, like=self.model)
        return self

    def set_inference_dtype(self, dtype: str) -> DeepSegmenter:
        """Predict in ``"float32"`` or ``"bfloat16"`` from now on (the fast model is rebuilt)."""
        if dtype not in DTYPES:
            raise UserError(f"inference_dtype must be float32 or bfloat16, got {dtype!r}")
        self.inference_dtype, self._fast_model = dtype, None
        return self

    def inference_model(self) -> torch.nn.Module:
        """The trained model with BatchNorm folded, channels-last and ``inference_dtype`` (cached)."""
        if self._fast_model is None:
            from segscope.inference import InferenceModel

            dtype = torch.bfloat16 if self.inference_dtype == "bfloat16" else torch.float32
            self._fast_model = InferenceModel(self.model.eval(), dtype=dtype, compile=self.inference_compile)
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
    def run_config(self) -> RunConfig:
        weights = self.weights_file.name if self.weights_file is not None else "model.safetensors"
        return RunConfig(
            method={"name": self.name, "family": self.family, "task": self.task, "ndim": self.ndim},
            model={
                "num_classes": self.num_classes,
                "in_channels": self.in_channels,
                "options": self.model_options,
                "weights": weights,
                "input": {
                    "mean": list(self.mean),
                    "std": list(self.std),
                    "resize": self.config.to_dict()["resize"],
                },
                "dtype": self.inference_dtype,
                **({"compile": True} if self.inference_compile else {}),
            },
            train={k: v for k, v in self.config.to_dict().items() if k != "extra" or v},
            decision={k: v for k, v in self.decision.state().items() if v is not None},
            classes=self.classes,
            history=self.history,
        )

    def save(self, run_dir: str | Path) -> Path:
        """Write ``segmenter.json`` and, unless ``run_dir`` already holds the checkpoint these weights were
        loaded from, ``model.safetensors`` (one weights file per checkpoint, never a copy)."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if self.weights_file is None or self.weights_file.parent.resolve() != run_dir.resolve():
            self.weights_file = run_dir / "model.safetensors"
            save_weights(self.weights_file, self.model, epoch=len(self.history))
        self.run_config().write(run_dir)
        return run_dir

    @classmethod
    def from_config(cls, config: RunConfig, run_dir: str | Path) -> DeepSegmenter:
        """Rebuild the trained predictor from its run directory (``method``, ``model``, ``decision``)."""
        run_dir = Path(run_dir)
        m = config.model
        train = dict(config.train)
        train["device"] = "cpu" if not torch.cuda.is_available() else train.get("device", "auto")
        seg = cls(
            config.name,
            m["num_classes"],
            in_channels=m["in_channels"],
            model=m.get("options", {}),
            train=train,
            decision=config.decision,
            inference={"dtype": m.get("dtype", "float32"), "compile": m.get("compile", False)},
        )
        seg.weights_file = run_dir / m["weights"]
        load_weights(seg.weights_file, seg.model)
        seg.model.to(resolve_device(seg.config.device)).eval()
        seg.mean, seg.std = tuple(m["input"]["mean"]), tuple(m["input"]["std"])
        seg.classes, seg.history = list(config.classes), list(config.history)
        return seg


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if isinstance(value, bool | int):
        return bool(value)
    raise UserError(f"{name} must be true or false, got {value!r}")


def build_network(name: str, num_classes: int, in_channels: int, options: dict[str, Any]) -> torch.nn.Module:
    """The registered builder ``name``'s network; a builder's ``TypeError``/``ValueError`` (a bad option,
    e.g. ``depth=0``) becomes one line naming the model."""
    entry = REGISTRY.get(name)
    try:
        return entry.builder(
            num_classes=num_classes, in_channels=in_channels, **{**entry.defaults, **options}
        )
    except UserError:
        raise  # already one line naming the problem (e.g. missing ImageNet weights)
    except (TypeError, ValueError) as exc:
        raise UserError(
            f"model {name!r}: bad option ({str(exc).splitlines()[0] if str(exc) else exc})"
        ) from None


def training_loss(model: torch.nn.Module, loss_fn):
    """``loss_fn``, or the model's own ``training_loss(loss_fn, logits, target)`` when it defines one (deep
    supervision such as ICNet's cascade label guidance: auxiliary outputs kept by the last forward)."""
    hook = getattr(model, "training_loss", None)
    if not callable(hook):
        return loss_fn
    return lambda logits, target: hook(loss_fn, logits, target)


def _sampler_factory(cfg: TrainConfig, train: SegmentationDataset):
    """The trainer's ``sampler_factory`` for ``cfg.sampler`` (``None``: uniform shuffling)."""
    if cfg.sampler is None:
        return None
    presence = class_presence(train)

    def factory(num_samples: int, generator: torch.Generator):
        return build_sampler(
            cfg.sampler, train, num_samples=num_samples, generator=generator, presence=presence
        )

    return factory
