"""Marker-controlled watershed (scikit-image): splits touching objects and closes gaps in boundaries.

Three ways to place the markers, each flooding its own relief:

* ``"distance"``: h-maxima of the Euclidean distance transform of the Otsu foreground, flooding the
  negated distance inside the foreground (touching round objects are cut at their necks);
* ``"gradient"``: h-minima of the Sobel gradient magnitude, flooding the gradient (regions of
  uniform intensity);
* ``"intensity"``: h-minima of the inverted image (bright object interiors), flooding the inverted
  image, so dark ridges such as the membranes of EM images become watershed lines.

The foreground is the Otsu foreground minus the watershed lines; the instance map numbers the basins
inside it (0 = background and lines).

References
----------
.. [1] S. Beucher and F. Meyer, "The morphological approach to segmentation: the watershed
   transformation", in Mathematical Morphology in Image Processing, 1993.
.. [2] P. Soille, "Morphological Image Analysis", Springer, 2003 (h-minima / h-maxima markers).
.. [3] scikit-image ``segmentation.watershed``, ``morphology.h_minima``, ``morphology.h_maxima``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import filters, measure, morphology, segmentation

from segscope.classical.preprocess import to_grey
from segscope.classical.segmenter import BinarySegmenter
from segscope.registry import register

MARKERS = ("distance", "gradient", "intensity")


def watershed_instances(
    grey: np.ndarray,
    *,
    markers: str = "distance",
    sigma: float = 1.0,
    h: float = 0.1,
    compactness: float = 0.0,
    watershed_line: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Instance label map and foreground of a marker-controlled watershed [1]_.

    Parameters
    ----------
    grey : (H, W) float array
        Objects bright on a darker background.
    markers : {"distance", "gradient", "intensity"}
        Where the markers come from (see the module docstring).
    sigma : float
        Gaussian smoothing (pixels) before anything else; 0 for none.
    h : float
        Minimum depth of a marker as a fraction of the relief's range (larger: fewer, bigger objects).
    compactness : float
        scikit-image compact watershed weight (0: classic watershed).
    watershed_line : bool
        Keep one-pixel background lines between touching basins.

    Returns
    -------
    instances : (H, W) int64 array
        0 for background and lines, ``1..n`` for the objects.
    foreground : (H, W) bool array
    """
    if markers not in MARKERS:
        raise ValueError(f"markers must be one of {MARKERS}, got {markers!r}")
    if not 0 < h < 1:
        raise ValueError(f"h is a fraction of the relief's range, in (0, 1); got {h}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    smooth = filters.gaussian(grey, sigma=sigma) if sigma > 0 else np.asarray(grey, np.float64)
    threshold = filters.threshold_otsu(smooth) if smooth.min() < smooth.max() else smooth.max()
    fg = smooth > threshold
    if markers == "distance":
        relief = -ndimage.distance_transform_edt(fg)
        mask = fg
    elif markers == "gradient":
        relief = filters.sobel(smooth)
        mask = None
    else:
        relief = -smooth
        mask = None
    depth = max(h * float(relief.max() - relief.min()), 1e-9)
    minima = morphology.h_minima(relief, depth).astype(bool)
    seeds = measure.label(minima & fg if markers == "distance" else minima)
    basins = segmentation.watershed(
        relief, seeds, mask=mask, compactness=compactness, watershed_line=watershed_line
    )
    instances, _, _ = segmentation.relabel_sequential(np.where(fg, basins, 0))
    return instances.astype(np.int64), instances > 0


@register("watershed", paper="Beucher & Meyer 1993")
class Watershed(BinarySegmenter):
    """Marker-controlled watershed; foreground minus watershed lines (tuned: markers, smoothing, h,
    polarity). :meth:`predict_instances` gives the instance map."""

    name = "watershed"
    param_grid = {
        "markers": ["intensity", "distance", "gradient"],
        "sigma": [2.0, 1.0, 3.0],
        "h": [0.05, 0.02, 0.1, 0.2],
    }
    extra_options = ("compactness",)

    def segment_mask(self, image, params, model):
        return self._instances(image, params)[1]

    def _instances(self, image: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
        compactness = float(self.options.get("compactness", 0.0))
        return watershed_instances(to_grey(image), compactness=compactness, **params)

    def predict_instances(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` int64 instance map: 0 background, ``1..n`` one label per object."""
        from segscope.classical.preprocess import preprocess

        image = np.asarray(image)
        image = preprocess(image if image.ndim == 3 else image[..., None], self.options.get("preprocess"))
        params = dict(self.params)
        if params.pop("invert", False):
            image = 255 - image
        return self._instances(image, params)[0]
