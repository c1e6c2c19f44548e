"""Image-level over-sampling of rare classes: repeat-factor and class-balanced samplers.

A sampler decides which training images an epoch draws. Both samplers here draw with replacement with
probability proportional to a per-image weight computed once from the masks:

=================  =====================================================================================
spec               image weight ``w_i``
=================  =====================================================================================
``uniform``        1 (``build_sampler`` returns ``None``: keep the trainer's own ``RandomSampler``)
``repeat_factor``  LVIS repeat factor [1]_: ``f_c`` = fraction of images containing class ``c``,
                   ``r_c = max(1, sqrt(t / f_c))``, ``r_i = max_{c in image i} r_c`` (``t=0.1`` default)
``class_balanced`` mean over the classes present in image ``i`` of ``1 / f_c``
=================  =====================================================================================

Class presence ignores the ignore index and values outside ``0..K-1``; an image with no labelled pixel
gets weight 1. The samplers take a ``torch.Generator`` so the trainer's per-epoch reseeding keeps runs
reproducible.

References
----------
.. [1] A. Gupta, P. Dollár, R. Girshick, "LVIS: A Dataset for Large Vocabulary Instance Segmentation",
   CVPR 2019, Sec. 4.2 (repeat factor sampling). Here an image "contains" a class when at least one of
   its mask pixels has that label, instead of an annotated instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler, WeightedRandomSampler

from segscope.errors import UserError

SAMPLERS = ("uniform", "repeat_factor", "class_balanced")
DEFAULT_REPEAT_THRESHOLD = 0.1


def class_presence(
    dataset: Any, *, num_classes: int | None = None, ignore_index: int | None = None
) -> np.ndarray:
    """Which classes each image's mask contains: ``(n_images, K)`` bool, reading every mask once.

    Parameters
    ----------
    dataset : a :class:`~segscope.data.SegmentationDataset` (masks are read with ``load_mask``, images
        are not decoded), a :class:`~segscope.data.torch_dataset.TorchSegmentationDataset` (its
        underlying dataset is used), a ``torch.utils.data.Subset`` of either, or any sequence of masks
        or ``(image, mask)`` pairs.
    num_classes, ignore_index : default to the dataset's own; ``num_classes`` is required for a plain
        sequence. Pixels equal to ``ignore_index`` or outside ``0..K-1`` are not counted.
    """
    if isinstance(dataset, torch.utils.data.Subset):
        full = class_presence(dataset.dataset, num_classes=num_classes, ignore_index=ignore_index)
        return full[np.asarray(dataset.indices, np.int64)]
    base = dataset if hasattr(dataset, "load_mask") else getattr(dataset, "dataset", dataset)
    k = num_classes if num_classes is not None else getattr(base, "num_classes", None)
    if k is None:
        raise ValueError("class_presence needs num_classes for a dataset without a num_classes attribute")
    ignore = ignore_index if ignore_index is not None else getattr(base, "ignore_index", None)
    load = base.load_mask if hasattr(base, "load_mask") else lambda i: _mask_of(base[i])
    out = np.zeros((len(base), int(k)), bool)
    for i in range(len(base)):
        m = np.asarray(load(i)).ravel()
        valid = (m >= 0) & (m < k)
        if ignore is not None:
            valid &= m != ignore
        out[i] = np.bincount(m[valid].astype(np.int64), minlength=int(k))[: int(k)] > 0
    return out


def _mask_of(item: Any) -> Any:
    if isinstance(item, tuple | list):
        item = item[1]
    return item.numpy() if isinstance(item, torch.Tensor) else item


def _presence(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray) and data.ndim == 2 and data.dtype == bool:
        return data
    return class_presence(data)


def image_class_frequency(presence: np.ndarray) -> np.ndarray:
    """``f_c``: the fraction of images whose mask contains class ``c``, ``(K,)`` float64."""
    presence = np.asarray(presence, bool)
    if presence.ndim != 2 or len(presence) == 0:
        raise ValueError(f"presence must be a non-empty (n_images, K) array, got shape {presence.shape}")
    return presence.mean(axis=0)


def repeat_factors(data: Any, *, threshold: float = DEFAULT_REPEAT_THRESHOLD) -> np.ndarray:
    """LVIS repeat factors ``r_i = max_{c in i} max(1, sqrt(t / f_c))``, ``(n_images,)`` float64.

    Parameters
    ----------
    data : a ``(n_images, K)`` bool class-presence array (see :func:`class_presence`) or a dataset.
    threshold : ``t``; classes in fewer than a fraction ``t`` of the images are over-sampled, a class
        in a fraction ``f_c < t`` by ``sqrt(t / f_c)``. Images with no labelled pixel get 1.

    References
    ----------
    .. [1] Gupta, Dollár & Girshick, "LVIS", CVPR 2019, Sec. 4.2.
    """
    if not threshold > 0:
        raise UserError(f"repeat-factor threshold t must be > 0, got {threshold}")
    presence = _presence(data)
    f = image_class_frequency(presence)
    r_class = np.maximum(1.0, np.sqrt(threshold / np.where(f > 0, f, np.inf)))  # absent classes: 1
    return np.where(presence, r_class[None, :], 1.0).max(axis=1, initial=1.0)


def class_balanced_weights(data: Any) -> np.ndarray:
    """``w_i`` = mean over the classes present in image ``i`` of ``1 / f_c``; 1 for unlabelled images."""
    presence = _presence(data)
    f = image_class_frequency(presence)
    inv = 1.0 / np.where(f > 0, f, 1.0)
    count = presence.sum(axis=1)
    total = (presence * inv[None, :]).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 1.0)


def expected_class_frequency(presence: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Expected fraction of drawn images containing each class when image ``i`` is drawn with
    probability ``w_i / sum(w)`` (uniform when ``weights`` is None): ``(K,)``. A sampler's summary."""
    presence = np.asarray(presence, bool)
    w = np.ones(len(presence)) if weights is None else np.asarray(weights, np.float64)
    return (w @ presence) / w.sum()


def weighted_sampler(
    weights: np.ndarray | Sequence[float], *, num_samples: int, generator: torch.Generator | None
) -> WeightedRandomSampler:
    """Draw ``num_samples`` indices with replacement, index ``i`` with probability ``w_i / sum(w)``."""
    w = torch.as_tensor(np.asarray(weights, np.float64))
    if w.ndim != 1 or len(w) == 0 or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("sampler weights must be a non-empty 1-D array of finite non-negative numbers")
    if num_samples < 1:
        raise UserError(f"sampler: num_samples must be >= 1, got {num_samples}")
    return WeightedRandomSampler(w, int(num_samples), replacement=True, generator=generator)


def parse_sampler_spec(spec: str | None) -> tuple[str, dict[str, float]]:
    """``"repeat_factor:t=0.3"`` -> ``("repeat_factor", {"t": 0.3})``; ``None`` -> ``("uniform", {})``."""
    if spec is None or not str(spec).strip():
        return "uniform", {}
    name, _, rest = str(spec).strip().partition(":")
    name = name.strip().replace("-", "_")
    if name == "none":
        name = "uniform"
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler {spec!r}; choose from {', '.join(SAMPLERS)}")
    allowed = {"repeat_factor": {"t"}}.get(name, set())
    options: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip()
        if key == "threshold":
            key = "t"
        if not eq or key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise UserError(f"sampler {spec!r}: bad option {part!r} (options of {name}: {known})")
        try:
            options[key] = float(value)
        except ValueError:
            raise UserError(f"sampler {spec!r}: option {key} must be a number, got {value!r}") from None
    return name, options


def build_sampler(
    spec: str | None,
    dataset: Any,
    *,
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
    presence: np.ndarray | None = None,
) -> Sampler | None:
    """The training sampler that ``spec`` names, or ``None`` for uniform sampling.

    Parameters
    ----------
    spec : ``None`` / ``"uniform"`` (returns ``None``: keep the trainer's ``RandomSampler``),
        ``"repeat_factor"`` or ``"repeat_factor:t=0.3"`` (:func:`repeat_factors`), ``"class_balanced"``
        (:func:`class_balanced_weights`).
    dataset : what :func:`class_presence` reads (a segmentation dataset or its torch wrapper).
    num_samples : indices per epoch; ``len(dataset)`` when ``None`` (an epoch as long as a uniform one).
    generator : the ``torch.Generator`` the draws use; reseed it each epoch for reproducible runs.
    presence : a precomputed :func:`class_presence` array (skips reading the masks).

    Returns
    -------
    A ``torch.utils.data.WeightedRandomSampler`` drawing with replacement, or ``None``.
    """
    name, options = parse_sampler_spec(spec)
    if name == "uniform":
        return None
    presence = class_presence(dataset) if presence is None else np.asarray(presence, bool)
    if name == "repeat_factor":
        weights = repeat_factors(presence, threshold=options.get("t", DEFAULT_REPEAT_THRESHOLD))
    else:
        weights = class_balanced_weights(presence)
    n = len(presence) if num_samples is None else num_samples
    return weighted_sampler(weights, num_samples=n, generator=generator)


__all__ = [
    "SAMPLERS",
    "build_sampler",
    "class_balanced_weights",
    "class_presence",
    "expected_class_frequency",
    "image_class_frequency",
    "parse_sampler_spec",
    "repeat_factors",
    "weighted_sampler",
]
