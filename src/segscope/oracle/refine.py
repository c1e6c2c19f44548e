"""Segmentation by gradient ascent on the oracle's predicted quality.

``m <- m + alpha * g / max|g|`` with ``g = dq/dm``, where the oracle sees the image and the mask resized to
its input size: the mask stays at the image's full resolution and autograd carries the gradient back
through the (antialiased, bilinear) resize, so only what the oracle can see is changed and the rest of the
mask keeps its detail. The mask is kept in [0, 1] by clipping after each step (``"clip"``, as in the
authors' code) or by ascending on logits ``z`` with ``m = sigmoid(z)`` (``"logit"``). Ascent stops after
``iterations`` steps, or when q has not improved by ``min_delta`` for ``patience`` steps; the mask with
the highest q seen is returned, so q never ends below where it started.

References
----------
K. Fernandes, R. Cruz and J. S. Cardoso, "Deep image segmentation by quality inference", IJCNN 2018.
As in the authors' code: normalised gradient, step 0.1, clipping to [0, 1], start from another
method's mask or from an empty one. Departures: the normalisation is by the largest absolute gradient
(each step moves the most sensitive pixel by ``alpha``), the count of iterations is capped and ended
early rather than chosen on held-out data, and a multi-class map is refined one class at a time
(one-vs-rest) and recombined by argmax.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from segscope.errors import UserError
from segscope.oracle.network import QualityOracle, resize_to

PARAMETRIZATIONS = ("clip", "logit")
DEFAULT_STEP = {"clip": 0.1, "logit": 0.5}
_EPS = 1e-4


@dataclass(frozen=True)
class Refinement:
    """Result of :func:`refine_mask`: the best ``mask`` ``(H, W)`` float32 in [0, 1], the predicted
    quality after every step (``quality[0]`` is the starting mask's), the step that gave the best
    mask and why the ascent stopped."""

    mask: np.ndarray
    quality: list[float] = field(repr=False)
    best_iteration: int
    stop_reason: str

    @property
    def initial_quality(self) -> float:
        return self.quality[0]

    @property
    def final_quality(self) -> float:
        return self.quality[self.best_iteration]


def refine_mask(
    oracle: QualityOracle,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    class_index: int | None = None,
    step: float | None = None,
    iterations: int = 50,
    parametrization: str = "clip",
    patience: int = 10,
    min_delta: float = 1e-4,
    progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> Refinement:
    """Improve ``mask`` for ``image`` by gradient ascent on ``oracle``'s predicted quality.

    Parameters
    ----------
    oracle : a trained :class:`QualityOracle`.
    image : ``(H, W[, C])`` uint8.
    mask : ``(H, W)`` soft or hard mask of ``class_index`` (values are clipped to [0, 1]).
    class_index : the dataset class the mask is for (``None`` for an oracle of a single class).
    step : ``alpha``, the largest per-pixel change per step (default 0.1 for ``"clip"``, 0.5 logits
        for ``"logit"``).
    iterations : maximum number of steps (0 returns the mask and its quality).
    parametrization : ``"clip"`` (project onto [0, 1]) or ``"logit"`` (ascend on logits).
    patience, min_delta : stop when q has not risen by ``min_delta`` over the best for ``patience`` steps.
    progress : show a tqdm bar.
    on_step : called as ``on_step(i, q)`` after step ``i`` of ``iterations``; an exception it raises
        (a cancelled job of ``segscope serve``) ends the ascent and propagates.

    Returns
    -------
    :class:`Refinement`.
    """
    if parametrization not in PARAMETRIZATIONS:
        raise UserError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    step = DEFAULT_STEP[parametrization] if step is None else float(step)
    if step <= 0 or iterations < 0 or patience < 1:
        raise UserError("step must be positive, iterations >= 0 and patience >= 1")
    m0 = np.asarray(mask, np.float32)
    if m0.ndim != 2 or m0.shape != image.shape[:2]:
        raise UserError(f"mask shape {m0.shape} does not match image shape {image.shape[:2]}")
    oracle.eval()
    device = next(oracle.parameters()).device
    fixed = torch.cat(
        [oracle.prepare_image(image), oracle.class_planes(oracle.target_index(class_index))], 0
    ).to(device)[None]  # (1, C [+ T], S, S)
    c = oracle.in_channels

    def as_mask(v: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(v) if parametrization == "logit" else v

    def quality_and_grad(v: torch.Tensor) -> tuple[float, torch.Tensor]:
        v = v.detach().requires_grad_(True)
        small = resize_to(as_mask(v)[None, None], oracle.size)  # (1, 1, S, S), in [0, 1]
        q = oracle(torch.cat([fixed[:, :c], small, fixed[:, c:]], 1))[0]
        (grad,) = torch.autograd.grad(q, v)
        return float(q.detach()), grad

    m = torch.from_numpy(np.clip(m0, 0, 1)).to(device)
    v = torch.logit(m.clamp(_EPS, 1 - _EPS)) if parametrization == "logit" else m
    q, grad = quality_and_grad(v)
    history, best_q, best_v, best_i, stale, reason = [q], q, v, 0, 0, "iterations"
    for i in tqdm(range(1, iterations + 1), desc="refine", disable=not progress, leave=False):
        peak = float(grad.abs().max())
        if peak == 0.0:
            reason = "zero gradient"
            break
        v = v + step * grad / peak
        if parametrization == "clip":
            v = v.clamp(0.0, 1.0)
        q, grad = quality_and_grad(v)
        history.append(q)
        if on_step is not None:
            on_step(i, q)
        if q > best_q + min_delta:
            best_q, best_v, best_i, stale = q, v, i, 0
        else:
            if q > best_q:
                best_q, best_v, best_i = q, v, i
            stale += 1
            if stale >= patience:
                reason = f"no improvement for {patience} steps"
                break
    out = as_mask(best_v).clamp(0.0, 1.0).cpu().numpy().astype(np.float32)
    return Refinement(out, history, best_i, reason)


def initial_mask(shape: tuple[int, int], init: str | float = "empty", *, seed: int = 0) -> np.ndarray:
    """An uninformed starting mask: ``"empty"`` (0, the authors' start), ``"half"`` (0.5 everywhere),
    ``"noise"`` (uniform in [0, 1], seeded) or a constant in [0, 1]."""
    if init == "empty":
        return np.zeros(shape, np.float32)
    if init == "half":
        return np.full(shape, 0.5, np.float32)
    if init == "noise":
        return np.random.default_rng(seed).random(shape, dtype=np.float32)
    try:
        value = float(init)
    except (TypeError, ValueError):
        raise UserError(f"init must be empty, half, noise or a number in [0, 1], got {init!r}") from None
    if not 0 <= value <= 1:
        raise UserError(f"init must be in [0, 1], got {value}")
    return np.full(shape, value, np.float32)


def segment_from_scratch(
    oracle: QualityOracle,
    image: np.ndarray,
    *,
    init: str | float = "empty",
    class_index: int | None = None,
    iterations: int = 200,
    **options: Any,
) -> Refinement:
    """Segment ``image`` with the oracle alone: :func:`refine_mask` from an :func:`initial_mask`."""
    start = initial_mask(image.shape[:2], init)
    return refine_mask(oracle, image, start, class_index=class_index, iterations=iterations, **options)


def refine_classes(
    oracle: QualityOracle, image: np.ndarray, proba: np.ndarray, **options: Any
) -> tuple[np.ndarray, dict[int, Refinement]]:
    """Refine a ``(K, H, W)`` class-probability map one class at a time (one-vs-rest).

    Every class the oracle scores is refined with :func:`refine_mask` (``options`` go there); for a
    binary task with a one-class oracle the other class becomes ``1 - p``. The map is renormalised to
    sum to 1 per pixel, so its argmax is the refined label map. Returns it with each class's
    :class:`Refinement`.
    """
    proba = np.asarray(proba, np.float32)
    if proba.ndim != 3 or proba.shape[1:] != image.shape[:2]:
        raise UserError(f"probabilities of shape {proba.shape} do not fit an image of {image.shape[:2]}")
    if proba.shape[0] != oracle.num_classes:
        raise UserError(
            f"the oracle was trained on {oracle.num_classes} classes, the map has {proba.shape[0]}"
        )
    out, details = proba.copy(), {}
    for cls in oracle.classes:
        details[cls] = refine_mask(oracle, image, proba[cls], class_index=cls, **options)
        out[cls] = details[cls].mask
    if out.shape[0] == 2 and len(oracle.classes) == 1:
        out[1 - oracle.classes[0]] = 1.0 - out[oracle.classes[0]]
    return out / np.maximum(out.sum(0, keepdims=True), 1e-6), details


def refine_proba(oracle: QualityOracle, image: np.ndarray, proba: np.ndarray, **options: Any) -> np.ndarray:
    """The refined ``(K, H, W)`` probability map of :func:`refine_classes`."""
    return refine_classes(oracle, image, proba, **options)[0]
