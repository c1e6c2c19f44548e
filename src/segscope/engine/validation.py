"""Per-epoch validation for the trainer: loss, mean IoU and pixel accuracy on a held-out set.

:func:`semantic_validation` builds the ``evaluate_fn(model) -> {metric: value}`` that
:class:`~segscope.engine.Trainer` calls after each epoch (its keys are logged as ``val_<key>`` and
``TrainConfig.monitor`` picks the one that selects the best checkpoint). It scores at the training
resolution, through overlap-tile inference for models with an output margin. Under torchrun each rank scores
every N-th image and the sums are all-reduced, so every rank holds the metrics of the whole set.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from segscope.engine import distributed
from segscope.inference.tiling import predict_logits


def semantic_validation(
    val_set: torch.utils.data.Dataset, num_classes: int, loss_fn: Callable, *, ignore_index: int
) -> Callable[[nn.Module], dict[str, float]]:
    """``evaluate_fn`` over ``val_set`` (``(image tensor, mask tensor)`` pairs): validation loss, mean IoU
    and pixel accuracy (pooled confusion matrix, ``ignore_index`` left out) and the seconds it took."""
    from segscope.metrics import ConfusionMatrix

    def evaluate(model: nn.Module) -> dict[str, float]:
        model.eval()
        device = next(model.parameters()).device
        cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
        total, count = 0.0, 0
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(distributed.rank(), len(val_set), distributed.world_size()):
                x, y = val_set[i]
                x = x.unsqueeze(0).to(device).contiguous(memory_format=torch.channels_last)
                out = predict_logits(model, x)
                total += float(loss_fn(out, y.unsqueeze(0).to(device)))
                count += 1
                cm.update(out.argmax(1)[0].cpu(), y)
        model.train()
        cm.all_reduce()
        total, count = distributed.all_reduce([total, count])
        return {
            "loss": round(total / max(count, 1), 6),
            "mean_iou": round(float(cm.mean_iou()), 6),
            "pixel_accuracy": round(float(cm.pixel_accuracy()), 6),
            "time_s": round(time.perf_counter() - t0, 2),
        }

    return evaluate
