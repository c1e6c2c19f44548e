"""Random walker segmentation from seeds (scikit-image), with automatic seeds from intensity quantiles or,
interactively, from a prompt (:func:`prompt_seeds`).

References
----------
.. [1] L. Grady, "Random walks for image segmentation", IEEE TPAMI 28(11), 2006.
.. [2] scikit-image ``segmentation.random_walker``.
"""

from __future__ import annotations

import warnings

import numpy as np
from skimage import filters, segmentation

from segscope.classical.preprocess import to_grey
from segscope.classical.segmenter import BinarySegmenter
from segscope.errors import UserError
from segscope.prompts import SEED_BACKGROUND, SEED_FOREGROUND, SEED_UNKNOWN, Prompt
from segscope.registry import register


def intensity_seeds(
    grey: np.ndarray, *, low: float = 0.2, high: float = 0.8, sigma: float = 1.0
) -> np.ndarray:
    """Seeds for :func:`random_walker_mask`: 1 (background) where the smoothed image is at or below its
    ``low`` quantile, 2 (object) at or above its ``high`` quantile, 0 (unknown) elsewhere."""
    if not 0 < low < high < 1:
        raise ValueError(f"need 0 < low < high < 1, got low={low}, high={high}")
    smooth = filters.gaussian(grey, sigma=sigma) if sigma > 0 else grey
    lo, hi = np.quantile(smooth, [low, high])
    seeds = np.zeros(grey.shape, np.int32)
    seeds[smooth <= lo] = 1
    seeds[smooth >= hi] = 2
    return seeds


def prompt_seeds(prompt: Prompt, shape: tuple[int, ...], method: str = "random_walker") -> np.ndarray:
    """Seeds for :func:`random_walker_mask` from a prompt: discs around its points, background outside
    its box (:meth:`Prompt.seed_map`). Needs a foreground point (a one-line :class:`UserError`
    otherwise); when the prompt gives no background (no box, no background point), the image border (a
    1-pixel frame, less any foreground seed) is the background seed."""
    seeds = prompt.seed_map(shape)
    if not (seeds == SEED_FOREGROUND).any():
        raise UserError(f"{method} needs at least one foreground point (fg_points, --fg-points)")
    if not (seeds == SEED_BACKGROUND).any():
        frame = np.ones(seeds.shape, bool)
        frame[1:-1, 1:-1] = False
        seeds[frame & (seeds == SEED_UNKNOWN)] = SEED_BACKGROUND
    return seeds


def random_walker_mask(
    grey: np.ndarray, seeds: np.ndarray, *, beta: float = 130.0, tol: float = 1e-3
) -> np.ndarray:
    """Random walker [1]_: a pixel is the object if a walker starting there most likely first reaches an
    object seed (label 2) rather than a background seed (label 1).

    Parameters
    ----------
    grey : (H, W) float array
    seeds : (H, W) int array
        0 unknown, 1 background, 2 object.
    beta : float
        Edge penalty (larger: walkers stop more at intensity edges).
    """
    if seeds.shape != grey.shape:
        raise ValueError(f"seeds {seeds.shape} do not match the image {grey.shape}")
    present = set(np.unique(seeds).tolist())
    if not present <= {0, 1, 2}:
        raise ValueError(f"seeds must be 0 (unknown), 1 (background) or 2 (object), got {sorted(present)}")
    if 1 not in present or 2 not in present:
        return seeds == 2 if 2 in present else np.zeros(grey.shape, bool)
    with warnings.catch_warnings():
        # scikit-image warns when the solver's probabilities leave [0, 1] by more than ``prob_tol``; only
        # the most likely label is used here, which that rounding does not change
        warnings.filterwarnings("ignore", "The probability range is outside", UserWarning)
        return segmentation.random_walker(grey, seeds, beta=beta, mode="cg_j", tol=tol) == 2


@register("random_walker", paper="Grady, TPAMI 2006")
class RandomWalker(BinarySegmenter):
    """Random walker from intensity-quantile seeds (tuned: seed quantiles, beta, polarity); with a prompt,
    from its seeds (:func:`prompt_seeds`: needs a foreground point; no background given -> the image
    border), the quantiles and polarity unused."""

    name = "random_walker"
    prompts = ("box", "points")
    default_tune_images = 2
    default_max_trials = 8
    param_grid = {"low": [0.2, 0.1, 0.3], "high": [0.7, 0.5, 0.9], "beta": [130.0, 30.0, 500.0]}

    def segment_mask(self, image, params, model):
        grey = to_grey(image)
        seeds = intensity_seeds(grey, low=params["low"], high=params["high"])
        return random_walker_mask(grey, seeds, beta=params["beta"])

    def segment_mask_prompted(self, image, params, model, prompt):
        grey = to_grey(image)
        return random_walker_mask(grey, prompt_seeds(prompt, grey.shape, self.name), beta=params["beta"])
