"""Graph cuts: binary max-flow/min-cut (PyMaxflow), multi-label alpha-expansion (gco-wrapper) and GrabCut
(OpenCV).

Energies are ``E(L) = sum_p U_p(L_p) + smoothness * sum_{pq} w_pq [L_p != L_q]`` on the 4- or 8-connected
pixel grid, with the contrast-sensitive weights of Boykov & Jolly,
``w_pq = exp(-beta ||I_p - I_q||^2) / dist(p, q)``, ``beta = 1 / (2 <||I_p - I_q||^2>)``.
Unaries are negative log-probabilities: from colour histograms learned on the training split (binary
``graphcut``; from the image's own Otsu split when unfitted) or from a per-pixel classifier
(``alpha_expansion``).

Interactive use (``predict(image, prompt=Prompt(...))``, :mod:`segscope.prompts`): ``graphcut`` takes
seeds as hard constraints with colour histograms from the seeds, as in [1]_ (:func:`seeded_graph_cut`);
``grabcut`` takes a box as its rectangle and points as hard labels [3]_.

References
----------
.. [1] Y. Boykov and M.-P. Jolly, "Interactive graph cuts for optimal boundary & region segmentation of
   objects in N-D images", ICCV 2001.
.. [2] Y. Boykov, O. Veksler and R. Zabih, "Fast approximate energy minimization via graph cuts", IEEE
   TPAMI 23(11), 2001 (alpha-expansion).
.. [3] C. Rother, V. Kolmogorov and A. Blake, "GrabCut: interactive foreground extraction using iterated
   graph cuts", SIGGRAPH 2004.
"""

from __future__ import annotations

import cv2
import maxflow
import numpy as np
from scipy import ndimage
from skimage import filters

from segscope.classical.features import classifier_proba, pixel_features, train_classifier
from segscope.classical.preprocess import to_grey
from segscope.classical.segmenter import BinarySegmenter, SemanticSegmenter
from segscope.errors import UserError
from segscope.prompts import SEED_BACKGROUND, SEED_FOREGROUND
from segscope.registry import register

OFFSETS = {4: [(0, 1), (1, 0)], 8: [(0, 1), (1, 0), (1, 1), (1, -1)]}


def edge_weights(image: np.ndarray, *, connectivity: int = 8) -> dict[tuple[int, int], np.ndarray]:
    """Contrast-sensitive weights [1]_: offset ``(dy, dx)`` -> ``(H, W)`` weight of the edge from each
    pixel to the pixel at that offset (0 where the neighbour is outside the image)."""
    if connectivity not in OFFSETS:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    feat = image.astype(np.float64).reshape(image.shape[0], image.shape[1], -1)
    h, w = feat.shape[:2]
    diffs = {}
    for dy, dx in OFFSETS[connectivity]:
        src = feat[: h - dy, max(0, -dx) : w - max(0, dx)]
        dst = feat[dy:, max(0, dx) : w - max(0, -dx)]
        diffs[(dy, dx)] = ((src - dst) ** 2).sum(axis=2)
    mean_sq = np.mean(np.concatenate([d.ravel() for d in diffs.values()]))
    beta = 1.0 / (2.0 * mean_sq) if mean_sq > 0 else 0.0
    out = {}
    for (dy, dx), d2 in diffs.items():
        full = np.zeros((h, w))
        full[: h - dy, max(0, -dx) : w - max(0, dx)] = np.exp(-beta * d2) / np.hypot(dy, dx)
        out[(dy, dx)] = full
    return out


def binary_graph_cut(
    image: np.ndarray,
    cost_fg: np.ndarray,
    cost_bg: np.ndarray,
    *,
    smoothness: float = 1.0,
    connectivity: int = 8,
) -> np.ndarray:
    """Exact minimiser of the two-label energy [1]_ by max-flow/min-cut (PyMaxflow).

    Parameters
    ----------
    image : (H, W) or (H, W, C) array
        Drives the contrast-sensitive pairwise weights.
    cost_fg, cost_bg : (H, W) float arrays
        Cost of labelling each pixel foreground / background.
    smoothness : float
        Weight of the pairwise term (0: pixelwise decision).

    Returns
    -------
    (H, W) bool array, True = foreground.
    """
    if cost_fg.shape != image.shape[:2] or cost_bg.shape != image.shape[:2]:
        raise ValueError(f"costs {cost_fg.shape}, {cost_bg.shape} do not match the image {image.shape[:2]}")
    if smoothness < 0:
        raise ValueError(f"smoothness must be >= 0, got {smoothness}")
    graph = maxflow.Graph[float]()
    nodes = graph.add_grid_nodes(image.shape[:2])
    for (dy, dx), weights in edge_weights(image, connectivity=connectivity).items():
        structure = np.zeros((3, 3))
        structure[1 + dy, 1 + dx] = 1
        graph.add_grid_edges(nodes, weights=smoothness * weights, structure=structure, symmetric=True)
    # a node ending on the sink side (segment True) has its source edge cut: it pays cost_fg
    graph.add_grid_tedges(nodes, cost_fg, cost_bg)
    graph.maxflow()
    return graph.get_grid_segments(nodes)


def alpha_expansion(
    image: np.ndarray,
    unary: np.ndarray,
    *,
    smoothness: float = 1.0,
    connectivity: int = 8,
    scale: float = 100.0,
) -> np.ndarray:
    """Multi-label Potts energy minimised by alpha-expansion [2]_ (gco-wrapper, the authors' GCO).

    ``unary`` is ``(H, W, K)`` float costs; GCO works in integers, so costs are multiplied by ``scale``
    and rounded. Returns ``(H, W)`` int64 labels ``0..K-1``.
    """
    try:
        import gco
    except ImportError:
        raise UserError("alpha_expansion needs the gco-wrapper package: pip install gco-wrapper") from None
    if unary.ndim != 3 or unary.shape[:2] != image.shape[:2]:
        raise ValueError(f"unary must be (H, W, K) matching the image {image.shape[:2]}, got {unary.shape}")
    k = unary.shape[2]
    if k == 1:
        return np.zeros(image.shape[:2], np.int64)
    w = edge_weights(image, connectivity=connectivity)
    edge = {key: np.round(scale * smoothness * v).astype(np.int32) for key, v in w.items()}
    extra = {}
    if connectivity == 8:
        extra = {"cost_dr": edge[(1, 1)][:-1, :-1], "cost_dl": edge[(1, -1)][:-1, 1:]}
    labels = gco.cut_grid_graph(
        np.round(scale * unary).astype(np.int32),
        (1 - np.eye(k)).astype(np.int32),
        np.ascontiguousarray(edge[(1, 0)][:-1, :]),
        np.ascontiguousarray(edge[(0, 1)][:, :-1]),
        **{key: np.ascontiguousarray(v) for key, v in extra.items()},
        n_iter=-1,
        algorithm="expansion",
    )
    return labels.reshape(image.shape[:2]).astype(np.int64)


def quantise(image: np.ndarray, bins: int) -> np.ndarray:
    """uint8 ``(H, W, C)`` -> ``(H, W)`` histogram bin: ``bins`` levels for grey, ``bins**3`` for colour."""
    q = image.astype(np.int64) * bins // 256
    if q.ndim == 2 or q.shape[2] == 1:
        return q.reshape(image.shape[:2])
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


def histogram_costs(image: np.ndarray, counts: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``(cost_fg, cost_bg)`` = negative log posterior of each pixel's colour bin from ``counts`` (rows:
    bins; columns: background, foreground pixel counts), with add-one smoothing."""
    c = np.asarray(counts, np.float64) + 1.0
    post = c / c.sum(axis=1, keepdims=True)
    idx = quantise(image, bins)
    return -np.log(post[idx, 1]), -np.log(post[idx, 0])


def colour_histograms(image: np.ndarray, foreground: np.ndarray, bins: int) -> np.ndarray:
    """``(nbins, 2)`` background / foreground pixel counts of ``image`` split by the bool ``foreground``
    (pixels in neither, e.g. ignored, may be excluded by passing a masked pair)."""
    nbins = bins if image.ndim == 2 or image.shape[2] == 1 else bins**3
    idx = quantise(image, bins)
    return np.stack(
        [np.bincount(idx[~foreground], minlength=nbins), np.bincount(idx[foreground], minlength=nbins)],
        axis=1,
    )


def seeded_graph_cut(
    image: np.ndarray,
    fg_seeds: np.ndarray,
    bg_seeds: np.ndarray,
    *,
    fg_sample: np.ndarray | None = None,
    bins: int = 32,
    smoothness: float = 1.0,
    connectivity: int = 8,
) -> np.ndarray:
    """Interactive graph cut [1]_: the ``(H, W)`` bool ``fg_seeds`` / ``bg_seeds`` are hard constraints
    (t-links of cost ``K = 1 + smoothness * max_p sum_q w_pq``, more than any cut around a pixel saves);
    the other pixels pay ``-log Pr(colour | object)`` / ``-log Pr(colour | background)`` under the
    histograms of ``fg_sample`` (default ``fg_seeds``; e.g. a box's interior) and ``bg_seeds`` (blurred by
    one bin, 1% uniform mixed in, each normalised: the seeds' sizes set no prior), plus contrast-sensitive
    smoothness. Returns ``(H, W)`` bool, True = object."""
    fg_seeds, bg_seeds = np.asarray(fg_seeds, bool), np.asarray(bg_seeds, bool)
    if fg_seeds.shape != image.shape[:2] or bg_seeds.shape != image.shape[:2] or (fg_seeds & bg_seeds).any():
        raise ValueError(
            f"need disjoint object / background seed masks of the image's shape {image.shape[:2]}"
        )
    fg_sample = fg_seeds if fg_sample is None else np.asarray(fg_sample, bool) & ~bg_seeds
    if not fg_sample.any() or not bg_seeds.any():
        raise ValueError("needs object and background seeds")
    sel = fg_sample | bg_seeds
    samples = image[sel].reshape(-1, 1, *image.shape[2:])
    counts = colour_histograms(samples, fg_sample[sel][:, None], bins).T.astype(np.float64)
    axes = 1 if counts.shape[1] == bins else 3  # grey or colour bins
    grid = counts.reshape(2, *[bins] * axes)  # blurred by one bin: a sparse sample's colours spread
    blurred = ndimage.gaussian_filter(grid, (0,) + (1.0,) * axes, mode="constant").reshape(2, -1)
    likelihood = (0.99 * blurred / blurred.sum(axis=1, keepdims=True) + 0.01 / counts.shape[1]).T
    idx = quantise(image, bins)
    cost_fg, cost_bg = -np.log(likelihood[idx, 1]), -np.log(likelihood[idx, 0])
    hard = 1.0 + smoothness * (4.0 + 4.0 / np.sqrt(2.0))  # weights are <= 1 / dist(p, q)
    cost_fg[fg_seeds], cost_bg[fg_seeds] = 0.0, hard
    cost_fg[bg_seeds], cost_bg[bg_seeds] = hard, 0.0
    return binary_graph_cut(image, cost_fg, cost_bg, smoothness=smoothness, connectivity=connectivity)


def grabcut_mask(
    image: np.ndarray,
    *,
    margin: float = 0.05,
    iterations: int = 5,
    box: tuple[int, int, int, int] | None = None,
    seeds: np.ndarray | None = None,
) -> np.ndarray:
    """GrabCut [3]_ (OpenCV) initialised with a box: ``box = (row0, col0, row1, col1)`` in pixels, or
    the image inset by ``margin`` x each side. Returns the (probable) foreground as bool.

    ``seeds`` (``(H, W)`` int: 0 unknown, 1 background, 2 object, e.g. ``Prompt.seed_map(shape,
    box_background=False)``) are hard labels: the mask starts background outside the box, probable
    object inside, with the seeds painted as sure background / object (``GC_INIT_WITH_MASK``)."""
    rgb = np.repeat(image, 3, axis=2) if image.ndim == 3 and image.shape[2] == 1 else image
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=2)
    h, w = rgb.shape[:2]
    if box is None:
        if not 0 <= margin < 0.5:
            raise ValueError(f"margin must be in [0, 0.5), got {margin}")
        box = (round(margin * h), round(margin * w), h - round(margin * h), w - round(margin * w))
    r0, c0, r1, c1 = (int(v) for v in box)
    if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
        raise ValueError(f"box {box} is not inside the {h}x{w} image")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    mask[r0:r1, c0:c1] = cv2.GC_PR_FGD
    if seeds is not None:
        seeds = np.asarray(seeds)
        if seeds.shape != (h, w):
            raise ValueError(f"seeds {seeds.shape} do not match the {h}x{w} image")
        mask[seeds == SEED_FOREGROUND] = cv2.GC_FGD
        mask[seeds == SEED_BACKGROUND] = cv2.GC_BGD
    if not (mask == cv2.GC_BGD).any():
        raise ValueError("no background to model: use a box smaller than the image or background seeds")
    if not ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).any():
        raise ValueError("no object to model: background seeds cover the whole box")
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:  # the mask built here is what GC_INIT_WITH_RECT would build from the box
        cv2.grabCut(
            np.ascontiguousarray(rgb[..., :3]), mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK
        )
    except cv2.error as exc:  # e.g. fewer background pixels than the colour model's components
        raise ValueError(f"OpenCV grabCut failed: {str(exc).strip().splitlines()[-1]}") from None
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


@register("graphcut", paper="Boykov & Jolly, ICCV 2001")
class GraphCut(BinarySegmenter):
    """Binary graph cut: colour-histogram unaries learned on the training split (the image's own Otsu
    split before fitting) and contrast-sensitive smoothness (tuned: smoothness, histogram bins).

    With a prompt, Boykov & Jolly's interactive form (:func:`seeded_graph_cut`): point discs are hard
    seeds, outside the box is background seed, the colour models come from the seeds (the box
    interior models the object when no object point is given); the learned histograms are not used."""

    name = "graphcut"
    prompts = ("box", "points")
    tune_polarity = False
    learns = True
    param_grid = {"smoothness": [1.0, 0.3, 3.0, 10.0], "bins": [32, 16]}
    model_keys = ("bins",)
    extra_options = ("connectivity",)

    def learn(self, train, indices, params):
        counts = None
        for i in indices:
            image, mask = self.training_pair(train, i)
            valid = (mask >= 0) & (mask < self.num_classes)
            c = colour_histograms(
                image[valid][:, None, :], (mask[valid] == self.foreground)[:, None], params["bins"]
            )
            counts = c if counts is None else counts + c
        return {"bins": params["bins"], "counts": counts.tolist()}

    def segment_mask(self, image, params, model):
        bins = params["bins"]
        if model is not None and model["bins"] == bins:
            counts = np.asarray(model["counts"])
        else:  # unfitted: colour models from the image's own Otsu split (object = bright)
            grey = filters.gaussian(to_grey(image), sigma=1)
            counts = colour_histograms(image, grey > filters.threshold_otsu(grey), bins)
        cost_fg, cost_bg = histogram_costs(image, counts, bins)
        return binary_graph_cut(
            image,
            cost_fg,
            cost_bg,
            smoothness=params["smoothness"],
            connectivity=int(self.options.get("connectivity", 8)),
        )

    def segment_mask_prompted(self, image, params, model, prompt):
        seeds = prompt.seed_map(image.shape)
        fg_seeds, bg_seeds = seeds == SEED_FOREGROUND, seeds == SEED_BACKGROUND
        fg_sample = fg_seeds
        if not fg_seeds.any() and prompt.box is not None:  # the box interior models the object
            fg_sample = np.zeros(seeds.shape, bool)
            fg_sample[prompt.box[1] : prompt.box[3], prompt.box[0] : prompt.box[2]] = True
        if not (fg_sample & ~bg_seeds).any() or not bg_seeds.any():
            raise UserError(
                f"{self.name} needs object and background seeds: a box smaller than the image, or "
                "foreground and background points"
            )
        connectivity = int(self.options.get("connectivity", 8))
        return seeded_graph_cut(
            image, fg_seeds, bg_seeds, fg_sample=fg_sample, connectivity=connectivity, **params
        )


@register("alpha_expansion", paper="Boykov, Veksler & Zabih, TPAMI 2001")
class AlphaExpansion(SemanticSegmenter):
    """Multi-label graph cut: unaries from a per-pixel classifier trained on the training split,
    contrast-sensitive Potts smoothness (tuned: smoothness). Options ``pixels_per_image`` (classifier
    samples per training image, default 4000), ``hidden``, ``connectivity``."""

    name = "alpha_expansion"
    learns = True
    needs_training = True
    param_grid = {"smoothness": [1.0, 0.3, 3.0, 10.0, 0.0]}
    extra_options = ("pixels_per_image", "hidden", "connectivity")

    def learn(self, train, indices, params):
        rng = np.random.default_rng(int(self.options.get("seed", 0)))
        per_image = int(self.options.get("pixels_per_image", 4000))
        xs, ys = [], []
        for i in indices:
            image, mask = self.training_pair(train, i)
            valid = np.flatnonzero(((mask >= 0) & (mask < self.num_classes)).ravel())
            pick = rng.choice(valid, min(per_image, len(valid)), replace=False)
            feats = pixel_features(image)
            xs.append(feats.reshape(-1, feats.shape[2])[pick])
            ys.append(mask.ravel()[pick])
        return train_classifier(
            np.concatenate(xs),
            np.concatenate(ys),
            hidden=int(self.options.get("hidden", 64)),
            seed=int(self.options.get("seed", 0)),
        )

    def unary(self, image: np.ndarray, model: dict) -> np.ndarray:
        """``(H, W, K)`` costs: negative log class probabilities of the pixel classifier."""
        feats = pixel_features(image)
        probs = classifier_proba(model, feats.reshape(-1, feats.shape[2]), self.num_classes)
        return -np.log(np.clip(probs, 1e-4, 1.0)).reshape(image.shape[0], image.shape[1], -1)

    def segment_labels(self, image, params, model):
        unary = self.unary(image, model)
        if params["smoothness"] == 0:
            return unary.argmin(axis=2).astype(np.int64)
        lab_like = image.astype(np.float64)
        return alpha_expansion(
            lab_like,
            unary,
            smoothness=params["smoothness"],
            connectivity=int(self.options.get("connectivity", 8)),
        )


@register("grabcut", paper="Rother, Kolmogorov & Blake, SIGGRAPH 2004")
class GrabCut(BinarySegmenter):
    """Box-initialised GrabCut (tuned: box margin, iterations, polarity: object inside or outside).

    With a prompt: its box replaces the margin box, its points are hard object / background labels
    (with points and no box, the margin box still bounds the probable object)."""

    name = "grabcut"
    prompts = ("box", "points")
    polarity = "mask"
    default_tune_images = 3
    default_max_trials = 8
    param_grid = {"margin": [0.05, 0.15, 0.25], "iterations": [5, 2]}

    def segment_mask(self, image, params, model):
        return grabcut_mask(image, **params)

    def segment_mask_prompted(self, image, params, model, prompt):
        box = None
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            box = (y0, x0, y1, x1)  # grabcut_mask takes (row0, col0, row1, col1)
        points = prompt.fg_points or prompt.bg_points
        seeds = prompt.seed_map(image.shape, box_background=False) if points else None
        try:
            return grabcut_mask(image, **params, box=box, seeds=seeds)
        except ValueError as exc:
            raise UserError(f"{self.name}: {exc}") from None
