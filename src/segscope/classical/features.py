"""Per-pixel and per-region features, and a small classifier whose fitted state is plain JSON.

The superpixel-labelling and alpha-expansion methods learn "which class is this pixel / region?" from
the training split. Features: CIE Lab colour (raw and blurred), scikit-image's multiscale intensity,
edge and texture features of the lightness, and the normalised position. The classifier is
scikit-learn's ``MLPClassifier`` behind a ``StandardScaler``; its weights are stored as lists so a run
directory's ``segmenter.json`` holds everything (no pickle), and prediction is the network's forward
pass in NumPy (the only hand-written part: ReLU layers and a softmax/logistic output, as scikit-learn
computes them).

References
----------
.. [1] scikit-image ``feature.multiscale_basic_features`` (the features of ilastik's pixel classifier:
   C. Sommer et al., "ilastik: interactive learning and segmentation toolkit", ISBI 2011).
.. [2] scikit-learn ``neural_network.MLPClassifier``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from skimage import color, feature, filters


def pixel_features(image: np.ndarray, *, sigma_max: float = 8.0) -> np.ndarray:
    """``(H, W, C)`` uint8 image -> ``(H, W, F)`` float32 features (colour, texture, position)."""
    rgb = np.repeat(image, 3, axis=2) if image.ndim == 3 and image.shape[2] == 1 else image
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=2)
    lab = color.rgb2lab(rgb[..., :3])
    blurred = filters.gaussian(lab, sigma=4, channel_axis=-1)
    texture = feature.multiscale_basic_features(
        lab[..., 0] / 100.0,
        intensity=True,
        edges=True,
        texture=True,
        sigma_min=1,
        sigma_max=sigma_max,
        workers=1,
    )
    h, w = image.shape[:2]
    rows, cols = np.mgrid[:h, :w]
    position = np.stack([rows / max(h - 1, 1), cols / max(w - 1, 1)], axis=2)
    return np.concatenate([lab / 100.0, blurred / 100.0, texture, position], axis=2).astype(np.float32)


def region_features(pixel_feats: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of each pixel feature over each region, plus the region's relative
    area: ``(H, W, F)``, ``(H, W)`` labels ``0..n-1`` -> ``(n, 2F + 1)``."""
    n = int(regions.max()) + 1
    flat = regions.ravel()
    f = pixel_feats.reshape(-1, pixel_feats.shape[2]).astype(np.float64)
    count = np.bincount(flat, minlength=n).astype(np.float64)
    safe = np.maximum(count, 1)[:, None]
    mean = np.stack([np.bincount(flat, f[:, j], n) for j in range(f.shape[1])], axis=1) / safe
    sq = np.stack([np.bincount(flat, f[:, j] ** 2, n) for j in range(f.shape[1])], axis=1) / safe
    std = np.sqrt(np.maximum(sq - mean**2, 0))
    return np.concatenate([mean, std, (count / flat.size)[:, None]], axis=1).astype(np.float32)


def majority_labels(regions: np.ndarray, mask: np.ndarray, num_classes: int, *, min_fraction: float = 0.5):
    """``(labels, keep)``: each region's most frequent valid class, and whether valid pixels (classes
    ``0..num_classes-1``) make up at least ``min_fraction`` of it."""
    n = int(regions.max()) + 1
    valid = (mask >= 0) & (mask < num_classes)
    counts = np.bincount(regions[valid] * num_classes + mask[valid], minlength=n * num_classes).reshape(
        n, num_classes
    )
    sizes = np.bincount(regions.ravel(), minlength=n)
    return counts.argmax(axis=1), counts.sum(axis=1) >= min_fraction * np.maximum(sizes, 1)


def balanced_subsample(y: np.ndarray, max_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``max_samples`` samples, at most ``max_samples / classes`` per class (rare
    classes keep all theirs), so frequent classes do not drown rare ones."""
    classes = np.unique(y)
    cap = max(1, max_samples // max(len(classes), 1))
    picks = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        picks.append(rng.choice(idx, cap, replace=False) if len(idx) > cap else idx)
    return np.sort(np.concatenate(picks))


def train_classifier(
    x: np.ndarray, y: np.ndarray, *, hidden: int = 64, max_samples: int = 60_000, seed: int = 0
) -> dict[str, Any]:
    """Fit ``StandardScaler`` + ``MLPClassifier`` on ``(n, F)`` features and ``(n,)`` int labels;
    return its JSON-able state (see :func:`classifier_proba`)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    if len(y) == 0:
        raise ValueError("no labelled training samples to fit the classifier on")
    rng = np.random.default_rng(seed)
    keep = balanced_subsample(y, max_samples, rng)
    x, y = x[keep].astype(np.float64), y[keep]
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    classes = np.unique(y)
    state: dict[str, Any] = {"mean": mean.tolist(), "scale": scale.tolist(), "classes": classes.tolist()}
    if len(classes) == 1:
        return {**state, "weights": [], "biases": []}
    mlp = MLPClassifier(
        hidden_layer_sizes=(hidden,), early_stopping=len(y) >= 200, max_iter=300, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit((x - mean) / scale, y)
    return {
        **state,
        "weights": [w.tolist() for w in mlp.coefs_],
        "biases": [b.tolist() for b in mlp.intercepts_],
    }


def classifier_proba(state: dict[str, Any], x: np.ndarray, num_classes: int) -> np.ndarray:
    """``(n, F)`` features -> ``(n, num_classes)`` class probabilities (0 for classes never seen)."""
    classes = np.asarray(state["classes"], np.int64)
    out = np.zeros((len(x), num_classes), np.float64)
    if not state["weights"]:
        out[:, classes[0]] = 1.0
        return out
    a = (np.asarray(x, np.float64) - np.asarray(state["mean"])) / np.asarray(state["scale"])
    layers = list(zip(state["weights"], state["biases"]))
    for w, b in layers[:-1]:
        a = np.maximum(a @ np.asarray(w) + np.asarray(b), 0.0)
    z = a @ np.asarray(layers[-1][0]) + np.asarray(layers[-1][1])
    if z.shape[1] == 1:  # two classes: one logistic output for the second
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        probs = np.stack([1.0 - p1, p1], axis=1)
    else:
        z = z - z.max(axis=1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    out[:, classes] = probs
    return out
