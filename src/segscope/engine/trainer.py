"""One readable training loop for every deep model in segscope.

The loop is task-agnostic: it takes a model, a loss ``loss_fn(output, target)`` and an optional
``evaluate_fn(model) -> {metric: value}`` run after each epoch. It handles AdamW/SGD, poly / one-cycle
schedules driven by training progress (steps or time budget), bf16 autocast on CPU / AMP on CUDA,
gradient accumulation, early stopping, best/last checkpoints, NaN detection and bit-for-bit resume.
For transfer learning it freezes the model's ``encoder`` for the first epochs (its BatchNorm layers kept
in eval mode, so their running statistics stay those of the pretraining) and gives the encoder its own
learning rate (discriminative fine-tuning, Howard & Ruder, "Universal language model fine-tuning", 2018).

Determinism: every epoch reseeds torch from ``(seed, epoch)`` before shuffling and augmenting, and
checkpoints are taken at epoch boundaries, so ``2 epochs + resume 2 epochs`` equals ``4 epochs`` exactly
on CPU (``tests/engine/test_trainer.py``). Under ``torchrun`` the same loop runs data-parallel
(:mod:`segscope.engine.distributed`: the batch size stays the global batch, rank 0 writes the checkpoints).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from segscope.engine import distributed
from segscope.engine.checkpoint import load_trainer_state, load_weights, save_checkpoint
from segscope.engine.config import TrainConfig
from segscope.engine.overfitting import divergence_message
from segscope.errors import TrainingDiverged, UserError
from segscope.io import write_text_atomic
from segscope.metrics.specs import higher_is_better


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def lr_factor(progress: float, config: TrainConfig) -> float:
    """Learning-rate multiplier at training progress ``p`` in [0, 1]."""
    p = min(max(progress, 0.0), 1.0)
    warm = config.warmup_fraction if config.schedule != "onecycle" else max(config.warmup_fraction, 0.1)
    if warm > 0 and p < warm:
        return max(p / warm, 1e-3)
    if config.schedule == "constant":
        return 1.0
    q = (p - warm) / max(1.0 - warm, 1e-8)
    if config.schedule == "poly":
        return (1.0 - q) ** config.poly_power
    return 0.5 * (1.0 + math.cos(math.pi * q))  # one-cycle's cosine annealing phase


class Trainer:
    """Train ``model`` with ``config``; checkpoints and logs go to ``run_dir`` when given.

    Parameters
    ----------
    model : the network; moved to the configured device.
    config : :class:`TrainConfig`.
    loss_fn : ``loss_fn(output, target) -> scalar tensor``.
    evaluate_fn : ``evaluate_fn(model) -> dict`` of validation metrics (prefixed ``val_`` in the log).
    run_dir : where ``last.*``, ``best.*``, ``log.jsonl`` and ``log.csv`` are written.
    info : extra JSON saved in every checkpoint (resolved config, class names, model options...).
    param_groups : optional optimizer parameter groups; by default one group, or two (encoder and the
        rest) when ``config.encoder_lr_scale != 1``.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        *,
        loss_fn: Callable[[Any, torch.Tensor], torch.Tensor],
        evaluate_fn: Callable[[nn.Module], dict[str, float]] | None = None,
        run_dir: str | Path | None = None,
        info: dict[str, Any] | None = None,
        param_groups: list[dict[str, Any]] | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.device = distributed.setup(resolve_device(config.device))
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss_fn = loss_fn
        self.evaluate_fn = evaluate_fn
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.info = info or {}
        self.progress = progress
        self.encoder = getattr(self.model, "encoder", None)
        if (config.freeze_encoder_epochs or config.encoder_lr_scale != 1.0) and not isinstance(
            self.encoder, nn.Module
        ):
            raise UserError(
                f"{type(model).__name__} has no .encoder: freeze_encoder_epochs and encoder_lr_scale "
                "need an encoder-decoder model"
            )
        groups = param_groups or self._param_groups()
        if config.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(
                groups,
                lr=config.lr,
                momentum=config.momentum,
                weight_decay=config.weight_decay,
                nesterov=True,
            )
        for g in self.optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.step = 0
        self.elapsed = 0.0
        self.best_value: float | None = None
        self.bad_epochs = 0
        self.stop_reason = ""
        self.overfitting_warned = False
        self._net: nn.Module | None = None  # what the batches go through: the model, or DDP around it
        self._net_frozen: bool | None = None

    # -- public ---------------------------------------------------------------------------------
    def fit(
        self,
        train_dataset: torch.utils.data.Dataset,
        *,
        resume: bool = False,
        sampler_factory: Callable[[int, torch.Generator], torch.utils.data.Sampler] | None = None,
    ) -> list[dict[str, Any]]:
        """Train until the epochs, the time budget or early stopping end it; return the history.

        ``sampler_factory(num_samples, generator)`` replaces uniform shuffling (e.g. repeat-factor
        sampling of rare-class images; ``None`` from it keeps uniform shuffling); it must draw from
        ``generator``, which is reseeded every epoch.
        """
        cfg = self.config
        if resume:
            self._restore()
        generator = torch.Generator()
        num_samples = cfg.samples_per_epoch or len(train_dataset)
        sampler = sampler_factory(num_samples, generator) if sampler_factory is not None else None
        if sampler is None:
            sampler = torch.utils.data.RandomSampler(
                train_dataset, num_samples=cfg.samples_per_epoch, generator=generator
            )
        world = distributed.world_size()
        if world > 1:
            sampler = distributed.GlobalBatchShard(sampler, cfg.batch_size, distributed.rank(), world)
        loader = torch.utils.data.DataLoader(
            train_dataset,
            batch_size=cfg.batch_size // world,
            sampler=sampler,
            drop_last=num_samples >= cfg.batch_size,
            num_workers=cfg.num_workers,
            persistent_workers=False,
        )
        steps_per_epoch = max(1, len(loader) // cfg.accumulate)
        total_steps = cfg.epochs * steps_per_epoch
        autocast = self._autocast()
        main = distributed.is_main()
        clock_sync = world > 1 and cfg.time_budget_s is not None
        while self.epoch < cfg.epochs and not self.stop_reason:
            generator.manual_seed(cfg.seed * 100_003 + self.epoch)
            torch.manual_seed(cfg.seed * 1_000_003 + self.epoch + 7_919 * distributed.rank())
            if hasattr(train_dataset, "set_epoch"):  # datasets drawing new samples each epoch (3-D patches)
                train_dataset.set_epoch(self.epoch)
            t_epoch = time.perf_counter()
            net = self._train_mode()
            running, seen = 0.0, 0
            bar = tqdm(
                loader,
                desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                leave=False,
                disable=not (self.progress and main),
            )
            self.optimizer.zero_grad(set_to_none=True)
            for i, (x, y) in enumerate(bar):
                x, y = self._to_device(x), y.to(self.device, non_blocking=True)
                boundary = (i + 1) % cfg.accumulate == 0
                no_sync = net.no_sync() if world > 1 and not boundary else contextlib.nullcontext()
                with no_sync:
                    with autocast:
                        loss = self.loss_fn(net(x), y)
                    if world == 1 and not torch.isfinite(loss):  # under DDP: the all-reduced gradient norm
                        self._diverged(loss)
                    (loss / cfg.accumulate).backward()
                running += loss.item() * len(x)
                seen += len(x)
                elapsed = self._elapsed(t_epoch)
                if clock_sync:  # the slowest rank's clock, so every rank changes lr and stops together
                    elapsed = distributed.all_reduce([elapsed], "max")[0]
                if boundary:
                    progress = max(self.step / total_steps, elapsed / (cfg.time_budget_s or math.inf))
                    self._set_lr(progress)
                    if cfg.grad_clip:
                        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                    else:  # one fused norm over the gradients: a finite loss can still give inf/NaN ones
                        grad_norm = nn.utils.get_total_norm(
                            [p.grad for p in self.model.parameters() if p.grad is not None]
                        )
                    if not torch.isfinite(grad_norm):
                        self._diverged(grad_norm, "gradient norm", " with a finite loss")
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.step += 1
                    bar.set_postfix(loss=f"{loss.item():.4f}")
                if cfg.time_budget_s is not None and elapsed >= cfg.time_budget_s:
                    self.stop_reason = "time budget"
                    break
            bar.close()
            self.elapsed += time.perf_counter() - t_epoch
            self.epoch += 1
            running, seen = distributed.all_reduce([running, seen])
            self._end_epoch(running / max(seen, 1))
        if not self.stop_reason:
            self.stop_reason = "epochs"
        distributed.barrier()  # rank 0's checkpoints are complete before any rank reads them
        return self.history

    # -- internals ------------------------------------------------------------------------------
    def _param_groups(self) -> list[dict[str, Any]]:
        """One group, or the encoder's parameters at ``lr * encoder_lr_scale`` and the rest at ``lr``."""
        params = list(self.model.parameters())
        if self.config.encoder_lr_scale == 1.0:
            return [{"params": params}]
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        return [
            {
                "params": [p for p in params if id(p) in encoder_ids],
                "lr": self.config.lr * self.config.encoder_lr_scale,
            },
            {"params": [p for p in params if id(p) not in encoder_ids]},
        ]

    def _train_mode(self) -> nn.Module:
        """``model.train()``, with the encoder frozen (no gradients, BatchNorm in eval) while configured;
        return the module to run batches through (DDP is rebuilt when the trainable set changes)."""
        self.model.train()
        frozen = False
        if self.encoder is not None and self.config.freeze_encoder_epochs:
            frozen = self.epoch < self.config.freeze_encoder_epochs
            self.encoder.requires_grad_(not frozen)
            if frozen:
                self.encoder.eval()
        if self._net is None or frozen != self._net_frozen:
            self._net, self._net_frozen = distributed.wrap(self.model), frozen
        return self._net

    def _elapsed(self, t_epoch: float) -> float:
        return self.elapsed + time.perf_counter() - t_epoch

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return (
            x.contiguous(memory_format=torch.channels_last)
            if self.config.channels_last and x.ndim == 4
            else x
        )

    def _autocast(self):
        if not self.config.amp:
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _set_lr(self, progress: float) -> None:
        f = lr_factor(progress, self.config)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f

    def _diverged(self, value: torch.Tensor, what: str = "loss", note: str = "") -> None:
        where = f"epoch {self.epoch + 1}, step {self.step + 1}"
        kept = f"; last good checkpoint kept in {self.run_dir}" if self.run_dir and self.epoch else ""
        raise TrainingDiverged(
            f"{what} became {value.item()} at {where}{note} (try a lower --lr or --amp off){kept}"
        )

    def _end_epoch(self, train_loss: float) -> None:
        cfg = self.config
        row: dict[str, Any] = {
            "epoch": self.epoch,
            "step": self.step,
            "train_loss": round(train_loss, 6),
            "lr": self.optimizer.param_groups[-1]["lr"],  # the base lr (the encoder group comes first)
            "time_s": round(self.elapsed, 2),
        }
        if self.encoder is not None and self.config.freeze_encoder_epochs:
            row["encoder_frozen"] = self.epoch <= self.config.freeze_encoder_epochs
        last = self.epoch >= cfg.epochs or bool(self.stop_reason)
        improved = False
        if self.evaluate_fn is not None and (self.epoch % cfg.val_every == 0 or last):
            t0 = time.perf_counter()
            metrics = self.evaluate_fn(self.model)
            row.update({f"val_{k}": v for k, v in metrics.items()})
            row["val_time_s"] = round(time.perf_counter() - t0, 2)
            key = cfg.monitor if cfg.monitor.startswith("val_") else f"val_{cfg.monitor}"
            value = row.get(key)
            if value is not None and not math.isnan(value):
                better = self.best_value is None or (
                    value > self.best_value if higher_is_better(key) else value < self.best_value
                )
                if better:
                    self.best_value, self.bad_epochs, improved = float(value), 0, True
                else:
                    self.bad_epochs += 1
        if distributed.active():  # rank 0's row and decisions, so every rank stops at the same epoch
            row, self.best_value, self.bad_epochs, improved = distributed.broadcast(
                (row, self.best_value, self.bad_epochs, improved)
            )
        self.history.append(row)
        warning = divergence_message(self.history)
        if warning and not self.overfitting_warned:
            self.overfitting_warned = True
            if self.progress and distributed.is_main():
                tqdm.write(f"warning: {warning}")
        if cfg.early_stopping_patience is not None and self.bad_epochs >= cfg.early_stopping_patience:
            self.stop_reason = (
                f"early stopping ({cfg.monitor} did not improve for {self.bad_epochs} validations)"
            )
        if self.run_dir is not None and distributed.is_main():
            self._save(improved)

    def _save(self, improved: bool) -> None:
        info = {
            **self.info,
            "config": self.config.to_dict(),
            "history": self.history,
            "best_value": self.best_value,
        }
        state = {
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "elapsed": self.elapsed,
            "best_value": self.best_value,
            "bad_epochs": self.bad_epochs,
            "history_json": json.dumps(self.history),
        }
        save_checkpoint(self.run_dir, "last", self.model, info, epoch=self.epoch, trainer_state=state)
        if improved or self.evaluate_fn is None:
            save_checkpoint(self.run_dir, "best", self.model, info, epoch=self.epoch)
        self._write_logs()

    def _write_logs(self) -> None:
        write_text_atomic(self.run_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in self.history))
        keys: list[str] = []
        for r in self.history:
            keys += [k for k in r if k not in keys and not isinstance(r[k], (dict, list))]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.history)
        write_text_atomic(self.run_dir / "log.csv", buf.getvalue())

    def _restore(self) -> None:
        if self.run_dir is None:
            raise ValueError("resume needs a run_dir")
        state = load_trainer_state(self.run_dir, "last")
        epoch = load_weights(self.run_dir / "last.safetensors", self.model)
        if epoch != state["epoch"]:
            raise UserError(f"{self.run_dir}: last.safetensors (epoch {epoch}) and last_state.pt disagree")
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step, self.elapsed = state["epoch"], state["step"], state["elapsed"]
        self.best_value, self.bad_epochs = state["best_value"], state["bad_epochs"]
        self.history = json.loads(state["history_json"])
