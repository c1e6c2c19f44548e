"""How well a trained quality oracle ranks masks: its predictions against the true quality of fresh
degradations (Pearson and Spearman correlation, mean absolute error)."""

from __future__ import annotations

import numpy as np
import torch

from segscope.data.dataset import SegmentationDataset
from segscope.oracle.network import QualityOracle
from segscope.oracle.samples import OracleSamples, build_samples


def predict_samples(oracle: QualityOracle, samples: OracleSamples, *, batch_size: int = 32) -> np.ndarray:
    """The oracle's predicted quality for every sample of the pool (no augmentation), ``(N,)``."""
    augment, samples.augment = samples.augment, False
    was_training = oracle.training
    oracle.eval()
    device = next(oracle.parameters()).device
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(samples), batch_size):
                x = torch.stack([samples[i][0] for i in range(start, min(start + batch_size, len(samples)))])
                out.append(oracle(x.to(device)).float().cpu())
    finally:
        samples.augment = augment
        oracle.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def agreement(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation, MAE and RMSE between predicted and true quality."""
    from scipy import stats

    p, t = np.asarray(predicted, np.float64), np.asarray(true, np.float64)
    if p.shape != t.shape:
        raise ValueError(f"{p.shape} predictions for {t.shape} true values")
    flat = len(p) < 2 or np.ptp(p) == 0 or np.ptp(t) == 0
    return {
        "pearson": float("nan") if flat else float(stats.pearsonr(p, t)[0]),
        "spearman": float("nan") if flat else float(stats.spearmanr(p, t)[0]),
        "mae": float(np.abs(p - t).mean()) if len(p) else float("nan"),
        "rmse": float(np.sqrt(((p - t) ** 2).mean())) if len(p) else float("nan"),
        "n": len(p),
    }


def evaluate_oracle(
    oracle: QualityOracle,
    dataset: SegmentationDataset,
    *,
    samples_per_image: int = 16,
    seed: int = 1,
    progress: bool = False,
) -> dict[str, float]:
    """:func:`agreement` of the oracle on fresh degradations of ``dataset`` (e.g. held-out images)."""
    samples = build_samples(
        dataset,
        classes=oracle.classes,
        size=oracle.size,
        samples_per_image=samples_per_image,
        quality=oracle.quality,
        seed=seed,
        augment=False,
        progress=progress,
    )
    result = agreement(predict_samples(oracle, samples), samples.quality.numpy())
    result["true_quality_min"] = float(samples.quality.min())
    result["true_quality_max"] = float(samples.quality.max())
    return result
