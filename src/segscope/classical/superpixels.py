"""Superpixels (SLIC, Felzenszwalb, Quickshift from scikit-image) and superpixel labelling.

Superpixels alone are an over-segmentation, not a class map. Superpixel *labelling* makes them one:
each superpixel is described by the mean and spread of its pixel features
(:func:`segscope.classical.features.pixel_features`) and classified by a small classifier trained on the
training split, where a superpixel's target is the majority class of its pixels.

References
----------
.. [1] R. Achanta et al., "SLIC superpixels compared to state-of-the-art superpixel methods", IEEE
   TPAMI 34(11), 2012.
.. [2] P. F. Felzenszwalb and D. P. Huttenlocher, "Efficient graph-based image segmentation", IJCV
   59(2), 2004.
.. [3] A. Vedaldi and S. Soatto, "Quick shift and kernel methods for mode seeking", ECCV 2008.
.. [4] B. Fulkerson, A. Vedaldi and S. Soatto, "Class segmentation and object localization with
   superpixel neighborhoods", ICCV 2009 (classifying superpixels).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from skimage import segmentation

from segscope.classical.features import (
    classifier_proba,
    majority_labels,
    pixel_features,
    region_features,
    train_classifier,
)
from segscope.classical.segmenter import SemanticSegmenter
from segscope.registry import register


def _rgb(image: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` -> ``(H, W, 3)`` (grey replicated)."""
    if image.ndim == 2:
        image = image[..., None]
    if image.dtype != np.uint8 or image.shape[2] not in (1, 3):
        raise ValueError(f"expected an (H, W[, 1 or 3]) uint8 image, got {image.dtype} {image.shape}")
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def slic_superpixels(
    image: np.ndarray, *, n_segments: int = 400, compactness: float = 10.0, sigma: float = 1.0
) -> np.ndarray:
    """SLIC [1]_ in CIE Lab (grey images too): ``(H, W)`` int64 superpixel ids ``0..n-1``."""
    if n_segments < 1 or compactness <= 0:
        raise ValueError(f"need n_segments >= 1 and compactness > 0, got {n_segments}, {compactness}")
    seg = segmentation.slic(
        _rgb(image),
        n_segments=n_segments,
        compactness=compactness,
        sigma=sigma,
        start_label=0,
        channel_axis=-1,
    )
    return seg.astype(np.int64)


def felzenszwalb_superpixels(
    image: np.ndarray, *, scale: float = 100.0, sigma: float = 0.8, min_size: int = 50
) -> np.ndarray:
    """Felzenszwalb–Huttenlocher graph-based segmentation [2]_: ``(H, W)`` int64 ids ``0..n-1``."""
    if scale <= 0 or min_size < 1:
        raise ValueError(f"need scale > 0 and min_size >= 1, got {scale}, {min_size}")
    seg = segmentation.felzenszwalb(_rgb(image), scale=scale, sigma=sigma, min_size=min_size, channel_axis=-1)
    return seg.astype(np.int64)


def quickshift_superpixels(
    image: np.ndarray,
    *,
    ratio: float = 1.0,
    kernel_size: float = 5.0,
    max_dist: float = 10.0,
    sigma: float = 0.0,
) -> np.ndarray:
    """Quickshift mode seeking [3]_ in CIE Lab: ``(H, W)`` int64 ids ``0..n-1``."""
    if not 0 <= ratio <= 1 or kernel_size <= 0:
        raise ValueError(f"need 0 <= ratio <= 1 and kernel_size > 0, got {ratio}, {kernel_size}")
    seg = segmentation.quickshift(
        _rgb(image), ratio=ratio, kernel_size=kernel_size, max_dist=max_dist, sigma=sigma, channel_axis=-1
    )
    return segmentation.relabel_sequential(seg)[0].astype(np.int64)


def label_superpixels(superpixels: np.ndarray, superpixel_classes: np.ndarray) -> np.ndarray:
    """Paint each superpixel with its class: ``(H, W)`` ids, ``(n,)`` classes -> ``(H, W)`` labels."""
    return np.asarray(superpixel_classes, np.int64)[superpixels]


class SuperpixelLabelling(SemanticSegmenter):
    """Superpixels + a per-superpixel classifier learned on the training split (tuned: the superpixel
    parameters, each with its own classifier). Options ``hidden`` (classifier width, default 64)."""

    learns = True
    needs_training = True
    extra_options = ("hidden",)
    superpixels: Callable[..., np.ndarray]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.model_keys = tuple(cls.param_grid)

    def learn(self, train, indices, params):
        xs, ys = [], []
        for i in indices:
            image, mask = self.training_pair(train, i)
            regions = type(self).superpixels(image, **params)
            classes, keep = majority_labels(regions, mask, self.num_classes)
            xs.append(region_features(pixel_features(image), regions)[keep])
            ys.append(classes[keep])
        return train_classifier(
            np.concatenate(xs),
            np.concatenate(ys),
            hidden=int(self.options.get("hidden", 64)),
            seed=int(self.options.get("seed", 0)),
        )

    def segment_labels(self, image, params, model):
        regions = type(self).superpixels(image, **params)
        probs = classifier_proba(model, region_features(pixel_features(image), regions), self.num_classes)
        return label_superpixels(regions, probs.argmax(axis=1))


@register("slic", paper="Achanta et al., TPAMI 2012")
class Slic(SuperpixelLabelling):
    """SLIC superpixels labelled by a classifier trained on the training split."""

    name = "slic"
    param_grid = {"n_segments": [400, 200, 800], "compactness": [10.0, 20.0]}
    superpixels = staticmethod(slic_superpixels)


@register("felzenszwalb", paper="Felzenszwalb & Huttenlocher, IJCV 2004")
class Felzenszwalb(SuperpixelLabelling):
    """Felzenszwalb superpixels labelled by a classifier trained on the training split."""

    name = "felzenszwalb"
    param_grid = {"scale": [100.0, 50.0, 200.0], "min_size": [50, 20]}
    superpixels = staticmethod(felzenszwalb_superpixels)


@register("quickshift", paper="Vedaldi & Soatto, ECCV 2008")
class Quickshift(SuperpixelLabelling):
    """Quickshift superpixels labelled by a classifier trained on the training split."""

    name = "quickshift"
    param_grid = {"kernel_size": [5.0, 3.0, 8.0], "ratio": [0.5, 1.0]}
    superpixels = staticmethod(quickshift_superpixels)
