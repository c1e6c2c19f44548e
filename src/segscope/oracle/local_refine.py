"""Refine a class map with the local oracle inside a trust region, settings chosen on held-out images.

Two updates, both on the ``(K, H, W)`` class probabilities ``m`` at full resolution:

* ``"ascent"`` (the paper's): gradient ascent on the oracle's estimated quality ``Q(m)`` (mean Dice of the
  scored classes, :func:`~segscope.oracle.local.estimated_quality`, differentiated through the oracle)
  as mirror (exponentiated-gradient) ascent on the simplex: ``z <- z + step * g / max|g|`` with
  ``m = softmax(z)`` and ``g = dQ/dm - sum_c m_c dQ/dm_c`` (the gradient centred per pixel, so pixels
  already saturated the way the gradient points do not set the step size); a trust region
  ``- prior_weight * mean((m - m0)^2)`` keeps the map near the start ``m0`` (the base method's output).
* ``"fixed_point"``: ``m <- (1 - step) m + step * p(image, m)``, moving the map towards the oracle's
  true-class probabilities; ``step < 1`` and few iterations are the trust region.

The ascent can still find maps the oracle over-rates, so the step and the number of iterations are not
fixed here but chosen by :func:`tune_refinement` on images carved from the training data, with 0
iterations (leave the map alone) always a candidate.

References
----------
K. Fernandes, R. Cruz and J. S. Cardoso, "Deep image segmentation by quality inference", IJCNN 2018
(normalised-gradient ascent on the oracle's score; the authors' code picks the step count on held-out
images).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from segscope.errors import UserError
from segscope.oracle.degrade import true_quality
from segscope.oracle.local import LocalQualityOracle, check_proba, class_counts, overlap_from_counts

UPDATES = ("ascent", "fixed_point")


@dataclass(frozen=True)
class LocalRefinement:
    """The refined ``(K, H, W)`` map and the oracle's estimated quality before each step and after the
    last."""

    proba: np.ndarray
    estimates: list[float] = field(repr=False)

    @property
    def labels(self) -> np.ndarray:
        return self.proba.argmax(0)


def refine_local(
    oracle: LocalQualityOracle,
    image: np.ndarray,
    proba: np.ndarray,
    *,
    iterations: int = 5,
    step: float = 0.5,
    update: str = "fixed_point",
    prior_weight: float = 0.0,
) -> LocalRefinement:
    """Refine the ``(K, H, W)`` map ``proba`` of ``image`` for ``iterations`` steps (see the module)."""
    if update not in UPDATES:
        raise UserError(f"update must be one of {UPDATES}, got {update!r}")
    if iterations < 0 or step <= 0 or prior_weight < 0:
        raise UserError("iterations must be >= 0, step positive and prior_weight >= 0")
    oracle.eval()
    device = next(oracle.parameters()).device
    x = oracle.prepare_image(image).to(device)
    m0 = torch.as_tensor(check_proba(proba, image, oracle.num_classes)).to(device)
    m0 = m0 / m0.sum(0, keepdim=True).clamp_min(1e-6)
    classes = oracle.classes

    def estimate(m: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return overlap_from_counts(*class_counts(m, p), oracle.quality)[classes].mean()

    estimates: list[float] = []
    m = m0
    if update == "fixed_point":
        with torch.no_grad():
            for _ in range(iterations):
                p = oracle.truth_proba_t(x, m)
                estimates.append(float(estimate(m, p)))
                m = (1 - min(step, 1.0)) * m + min(step, 1.0) * p
            estimates.append(float(estimate(m, oracle.truth_proba_t(x, m))))
        return LocalRefinement(m.cpu().numpy().astype(np.float32), estimates)
    z = torch.log(m0.clamp_min(1e-4))
    for _ in range(iterations + 1):
        m = torch.softmax(z, 0).detach().requires_grad_(True)
        q = estimate(m, oracle.truth_proba_t(x, m))
        estimates.append(float(q.detach()))
        if len(estimates) > iterations:
            break
        objective = q - prior_weight * ((m - m0) ** 2).mean() if prior_weight else q
        (grad,) = torch.autograd.grad(objective, m)  # mirror ascent: the mask-space gradient moves logits
        grad = grad - (m.detach() * grad).sum(0, keepdim=True)  # centred: a saturated pixel that agrees is 0
        peak = float(grad.abs().max())
        if peak == 0.0:
            break
        z = z + step * grad / peak
    return LocalRefinement(torch.softmax(z.detach(), 0).cpu().numpy().astype(np.float32), estimates)


def default_grid() -> list[dict[str, Any]]:
    """The settings :func:`tune_refinement` tries: no refinement, fixed-point and ascent variants."""
    grid: list[dict[str, Any]] = [{"iterations": 0}]
    grid += [{"update": "fixed_point", "step": s, "iterations": n} for s in (0.5, 1.0) for n in (1, 2, 4)]
    grid += [
        {"update": "ascent", "step": s, "iterations": n, "prior_weight": w}
        for s in (0.5, 2.0)
        for n in (5, 20)
        for w in (0.0, 1.0)
    ]
    return grid


def tune_refinement(
    oracle: LocalQualityOracle,
    cases: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    grid: Sequence[dict[str, Any]] | None = None,
    ignore_index: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pick the refinement settings that give the best mean true quality on held-out ``cases``.

    ``cases`` are ``(image, base method's (K, H, W) map, truth)`` of images carved from the training data
    (never the images a figure is reported on). Returns the best settings (ties: the earlier, simpler
    entry of ``grid``, which starts with no refinement) and one row per setting with its mean quality."""
    cases = list(cases)
    if not cases:
        raise UserError("tune_refinement needs at least one held-out image")
    rows = []
    for settings in grid or default_grid():
        scores = []
        for image, proba, truth in cases:
            if settings.get("iterations", 0) == 0:
                labels = np.asarray(proba).argmax(0)
            else:
                labels = refine_local(oracle, image, proba, **settings).labels
            scores.append(true_quality(labels, truth, oracle.classes, oracle.quality, ignore_index))
        rows.append({**settings, "quality": float(np.mean(scores))})
    best = max(range(len(rows)), key=lambda i: (rows[i]["quality"], -i))
    settings = {k: v for k, v in rows[best].items() if k != "quality"}
    return settings, rows
