"""Per-class loss weights from class pixel frequencies (for ``weight=`` of ce, focal, ohem, boundary_ce)."""

from __future__ import annotations

import numpy as np
import torch

from segscope.errors import UserError

WEIGHT_SCHEMES = ("inverse", "median_freq", "enet")


def class_weights(pixel_counts: np.ndarray, scheme: str) -> torch.Tensor:
    """Per-class loss weights ``(C,)`` float32 from per-class pixel counts ``(C,)``; ``f_c`` = frequency.

    ``inverse``: ``1 / f_c`` normalised to mean 1 over the present classes; ``median_freq``:
    ``median(f) / f_c``; ``enet``: ``1 / ln(1.02 + f_c)``, at most ``1 / ln 1.02 ≈ 50.5``. Classes with
    no pixel get 0.
    Departure: Eigen & Fergus count ``f_c`` over the images where ``c`` is present; here it is over all
    pixels (only totals are known).

    References: Eigen & Fergus, "Predicting depth, surface normals and semantic labels with a common
    multi-scale convolutional architecture", ICCV 2015 (median frequency balancing, used by SegNet,
    Badrinarayanan et al., TPAMI 2017); Paszke et al., "ENet", arXiv 2016.
    """
    counts = np.asarray(pixel_counts, dtype=np.float64)
    present = counts > 0
    if counts.ndim != 1 or not present.any() or (counts < 0).any() or not np.isfinite(counts).all():
        raise UserError("class weighting needs non-negative per-class pixel counts with at least one pixel")
    freq = counts / max(counts.sum(), 1.0)
    w = np.zeros_like(freq)
    if scheme == "inverse":
        w[present] = 1.0 / freq[present]
        w /= w[present].mean()
    elif scheme == "median_freq":
        w[present] = np.median(freq[present]) / freq[present]
    elif scheme == "enet":
        w[present] = 1.0 / np.log(1.02 + freq[present])
    else:
        raise UserError(f"unknown class weighting {scheme!r}; choose from {', '.join(WEIGHT_SCHEMES)}")
    return torch.tensor(w, dtype=torch.float32)
