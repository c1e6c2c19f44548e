"""Active contours: the Kass snake, Chan–Vese, and the morphological Chan–Vese and geodesic variants.

All four come from scikit-image; this module adds initial contours (a centred circle or a box inset
from the border), turns every result into a boolean object mask and, for the region-based models,
calls the brighter phase the object (the Segmenter's tuned ``invert`` flips it).

References
----------
.. [1] M. Kass, A. Witkin and D. Terzopoulos, "Snakes: active contour models", IJCV 1(4), 1988.
.. [2] T. F. Chan and L. A. Vese, "Active contours without edges", IEEE Trans. Image Proc. 10(2), 2001.
.. [3] P. Márquez-Neila, L. Baumela and L. Álvarez, "A morphological approach to curvature-based
   evolution of curves and surfaces", IEEE TPAMI 36(1), 2014.
.. [4] V. Caselles, R. Kimmel and G. Sapiro, "Geodesic active contours", IJCV 22(1), 1997.
"""

from __future__ import annotations

import numpy as np
from skimage import draw, filters, segmentation

from segscope.classical.preprocess import to_grey
from segscope.classical.segmenter import BinarySegmenter
from segscope.registry import register

INITS = ("circle", "box", "checkerboard")


def initial_contour(
    shape: tuple[int, int],
    *,
    init: str = "circle",
    radius: float = 0.4,
    margin: float = 0.05,
    num_points: int = 200,
) -> np.ndarray:
    """``(num_points, 2)`` (row, col) points of a centred circle (``radius`` x the shorter side) or of a
    box inset by ``margin`` x each side."""
    if init not in ("circle", "box"):
        raise ValueError(f"a snake starts from a 'circle' or a 'box', got {init!r}")
    if not 0 < radius <= 0.5 or not 0 <= margin < 0.5:
        raise ValueError(f"need 0 < radius <= 0.5 and 0 <= margin < 0.5, got {radius}, {margin}")
    h, w = shape
    t = np.linspace(0, 2 * np.pi, num_points, endpoint=False)
    if init == "circle":
        r = radius * min(h, w)
        return np.stack([(h - 1) / 2 + r * np.sin(t), (w - 1) / 2 + r * np.cos(t)], axis=1)
    top, left, bottom, right = margin * h, margin * w, (1 - margin) * (h - 1), (1 - margin) * (w - 1)
    corners = np.array([[top, left], [top, right], [bottom, right], [bottom, left], [top, left]])
    s = np.linspace(0, 4, num_points, endpoint=False)
    i = s.astype(int)
    return corners[i] + (s - i)[:, None] * (corners[i + 1] - corners[i])


def initial_level_set(
    shape: tuple[int, int], *, init: str = "checkerboard", radius: float = 0.4, margin: float = 0.05
):
    """A level-set start: scikit-image's ``"checkerboard"``, or the filled circle / box of
    :func:`initial_contour` as a bool mask."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "checkerboard":
        return "checkerboard"
    return draw.polygon2mask(shape, initial_contour(shape, init=init, radius=radius, margin=margin))


def _bright_phase(mask: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """The phase with the higher mean intensity is the object."""
    mask = mask.astype(bool)
    if mask.all() or not mask.any():
        return mask
    return mask if grey[mask].mean() >= grey[~mask].mean() else ~mask


def chan_vese_mask(
    grey: np.ndarray,
    *,
    mu: float = 0.25,
    lambda1: float = 1.0,
    lambda2: float = 1.0,
    max_num_iter: int = 100,
    init: str = "checkerboard",
) -> np.ndarray:
    """Chan–Vese two-phase segmentation [2]_ (scikit-image ``chan_vese``); brighter phase = object.

    ``mu`` weighs the contour length; ``lambda1``/``lambda2`` the fit inside/outside.
    """
    if mu < 0:
        raise ValueError(f"mu must be >= 0, got {mu}")
    start = initial_level_set(grey.shape, init=init)
    if not isinstance(start, str):
        start = np.where(start, 1.0, -1.0)
    seg = segmentation.chan_vese(
        grey, mu=mu, lambda1=lambda1, lambda2=lambda2, max_num_iter=max_num_iter, init_level_set=start
    )
    return _bright_phase(seg, grey)


def morph_chan_vese_mask(
    grey: np.ndarray,
    *,
    num_iter: int = 50,
    smoothing: int = 1,
    lambda1: float = 1.0,
    lambda2: float = 1.0,
    init: str = "checkerboard",
) -> np.ndarray:
    """Morphological Chan–Vese (MorphACWE) [3]_ (scikit-image); brighter phase = object."""
    if num_iter < 1 or smoothing < 0:
        raise ValueError(f"need num_iter >= 1 and smoothing >= 0, got {num_iter}, {smoothing}")
    seg = segmentation.morphological_chan_vese(
        grey,
        num_iter,
        init_level_set=initial_level_set(grey.shape, init=init),
        smoothing=smoothing,
        lambda1=lambda1,
        lambda2=lambda2,
    )
    return _bright_phase(seg, grey)


def morph_geodesic_mask(
    grey: np.ndarray,
    *,
    num_iter: int = 100,
    sigma: float = 2.0,
    alpha: float = 100.0,
    smoothing: int = 1,
    balloon: float = -1.0,
    init: str = "box",
) -> np.ndarray:
    """Morphological geodesic active contour (MorphGAC) [3]_ [4]_ on scikit-image's inverse Gaussian
    gradient; a negative ``balloon`` shrinks the contour from ``init``, a positive one inflates it.
    Returns the inside of the final contour."""
    if num_iter < 1 or sigma <= 0 or alpha <= 0:
        raise ValueError(f"need num_iter >= 1, sigma > 0 and alpha > 0, got {num_iter}, {sigma}, {alpha}")
    if init == "checkerboard":
        raise ValueError("the geodesic contour starts from a 'circle' or a 'box'")
    edges = segmentation.inverse_gaussian_gradient(grey, alpha=alpha, sigma=sigma)
    start = initial_level_set(grey.shape, init=init)
    return segmentation.morphological_geodesic_active_contour(
        edges, num_iter, init_level_set=start, smoothing=smoothing, balloon=balloon
    ).astype(bool)


def snake_mask(
    grey: np.ndarray,
    *,
    init: str = "circle",
    radius: float = 0.4,
    margin: float = 0.05,
    sigma: float = 3.0,
    alpha: float = 0.015,
    beta: float = 10.0,
    gamma: float = 0.001,
    w_line: float = 0.0,
    w_edge: float = 1.0,
    num_points: int = 200,
    max_num_iter: int = 500,
) -> np.ndarray:
    """The Kass snake [1]_ (scikit-image ``active_contour`` on the Gaussian-smoothed image) from a circle
    or box, rasterised to the mask of its inside.

    ``alpha``/``beta``: elasticity and rigidity; ``gamma``: time step; ``w_line`` > 0 attracts the
    snake to bright lines, < 0 to dark ones; ``w_edge``: attraction to edges.
    """
    start = initial_contour(grey.shape, init=init, radius=radius, margin=margin, num_points=num_points)
    smooth = filters.gaussian(grey, sigma=sigma) if sigma > 0 else grey
    contour = segmentation.active_contour(
        smooth,
        start,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        w_line=w_line,
        w_edge=w_edge,
        max_num_iter=max_num_iter,
    )
    return draw.polygon2mask(grey.shape, contour)


@register("chan_vese", paper="Chan & Vese, IEEE TIP 2001")
class ChanVese(BinarySegmenter):
    """Chan–Vese active contour without edges (tuned: mu, lambda2, polarity)."""

    name = "chan_vese"
    polarity = "mask"
    default_tune_images = 3
    default_max_trials = 9
    param_grid = {"mu": [0.25, 0.1, 0.5], "lambda2": [1.0, 0.5, 2.0]}
    extra_options = ("max_num_iter",)

    def segment_mask(self, image, params, model):
        return chan_vese_mask(
            to_grey(image), max_num_iter=int(self.options.get("max_num_iter", 100)), **params
        )


@register("morph_chan_vese", paper="Marquez-Neila et al., TPAMI 2014")
class MorphChanVese(BinarySegmenter):
    """Morphological Chan–Vese (tuned: iterations, smoothing, lambda2, polarity)."""

    name = "morph_chan_vese"
    polarity = "mask"
    default_tune_images = 3
    default_max_trials = 12
    param_grid = {"num_iter": [50, 25, 100], "smoothing": [1, 2, 3], "lambda2": [1.0, 0.5, 2.0]}

    def segment_mask(self, image, params, model):
        return morph_chan_vese_mask(to_grey(image), **params)


@register("morph_geodesic", paper="Marquez-Neila et al., TPAMI 2014")
class MorphGeodesic(BinarySegmenter):
    """Morphological geodesic active contour (tuned: start shape and balloon, edge scale, polarity)."""

    name = "morph_geodesic"
    polarity = "mask"
    default_tune_images = 2
    default_max_trials = 8
    param_grid = {
        "init": ["box", "circle"],
        "balloon": [-1.0, 1.0],
        "sigma": [2.0, 1.0, 4.0],
        "num_iter": [100, 200],
    }

    def segment_mask(self, image, params, model):
        return morph_geodesic_mask(to_grey(image), **params)


@register("snake", paper="Kass, Witkin & Terzopoulos, IJCV 1988")
class Snake(BinarySegmenter):
    """Kass snake from a circle or box (tuned: start shape, elasticity, rigidity, line weight,
    polarity)."""

    name = "snake"
    polarity = "mask"
    default_tune_images = 3
    default_max_trials = 12
    param_grid = {
        "init": ["circle", "box"],
        "alpha": [0.015, 0.1],
        "beta": [10.0, 1.0],
        "w_line": [0.0, 1.0, -1.0],
    }
    extra_options = ("radius", "margin", "sigma", "num_points", "max_num_iter")

    def segment_mask(self, image, params, model):
        fixed = {k: self.options[k] for k in self.extra_options if k in self.options}
        return snake_mask(to_grey(image), **fixed, **params)
