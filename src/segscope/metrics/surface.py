"""Surface-distance metrics of 2-D and 3-D masks: Hausdorff distance, HD95 and the average symmetric
surface distance (ASSD), in physical units given the voxel spacing.

Definitions follow MONAI (``monai.metrics.compute_hausdorff_distance`` and
``compute_average_surface_distance``, tested against both): the surface of a mask is its voxels with at
least one face neighbour (2N-neighbourhood) outside the mask or outside the image, i.e. the mask minus its
erosion by the face-connected ("cross") structuring element with background beyond the image border. This
is ``scipy.ndimage.binary_erosion``'s default, which MONAI uses, and equals SimpleITK's
``BinaryContour(fullyConnected=False)`` away from the image border. Eroding with the full-connectivity
(3x3x3) element instead would add voxels that touch the background only along an edge or a corner; neither
MONAI nor SimpleITK's default does that, so segscope does not either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from segscope.metrics.rand import _to_numpy


def _spacing(spacing: float | Sequence[float] | None, ndim: int) -> np.ndarray:
    """``(ndim,)`` float64 spacing: 1 per axis by default, a scalar for every axis, or one per axis."""
    if spacing is None:
        return np.ones(ndim)
    out = np.asarray(spacing, np.float64).reshape(-1)
    if out.size == 1:
        out = np.full(ndim, out[0])
    if out.size != ndim:
        raise ValueError(f"spacing has {out.size} values for {ndim}-D masks: give one per axis")
    if not np.all(np.isfinite(out) & (out > 0)):
        raise ValueError(f"spacing must be positive and finite, got {out.tolist()}")
    return out


def _masks(pred_mask: Any, target_mask: Any) -> tuple[np.ndarray, np.ndarray]:
    pred, target = _to_numpy(pred_mask).astype(bool), _to_numpy(target_mask).astype(bool)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"surface distances need 2-D or 3-D masks, got shape {pred.shape}")
    return pred, target


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (or outside the array)."""
    cross = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, cross, border_value=0)


def surface_distances(
    pred_mask: Any, target_mask: Any, spacing: float | Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each surface voxel of one mask to the nearest surface voxel of the other.

    Parameters
    ----------
    pred_mask, target_mask : boolean (or 0/1) masks of equal 2-D ``(H, W)`` or 3-D ``(D, H, W)`` shape;
        numpy arrays or torch tensors.
    spacing : voxel size along each axis, in the arrays' axis order (e.g. ``(z, y, x)`` mm); a scalar
        for every axis; default 1 (distances in voxels).

    Returns
    -------
    ``(pred_to_target, target_to_pred)``: float64 arrays, one distance per surface voxel of ``pred_mask``
    (of ``target_mask``), in C order of the voxels. A direction whose other mask is empty holds ``inf``;
    an empty mask gives an empty array.

    Notes
    -----
    Surfaces as in the module docstring (MONAI's definition); distances are
    ``scipy.ndimage.distance_transform_edt(~surface, sampling=spacing)`` read at the other surface, computed
    inside the bounding box of both masks (plus a one-voxel margin), which changes no distance.
    """
    pred, target = _masks(pred_mask, target_mask)
    sampling = _spacing(spacing, pred.ndim)
    either = pred | target
    if not either.any():
        return np.zeros(0), np.zeros(0)
    # the one-voxel margin keeps the erosion's border behaviour where the box cuts the image
    box = tuple(
        slice(max(s.start - 1, 0), s.stop + 1) for s in ndimage.find_objects(either.view(np.uint8))[0]
    )
    pred_surface, target_surface = _surface(pred[box]), _surface(target[box])
    pred_to_target = _directed(pred_surface, target_surface, sampling)
    return pred_to_target, _directed(target_surface, pred_surface, sampling)


def _directed(source: np.ndarray, dest: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    if not source.any():
        return np.zeros(0)
    if not dest.any():
        return np.full(int(source.sum()), np.inf)
    return ndimage.distance_transform_edt(~dest, sampling=sampling)[source].astype(np.float64)


def hausdorff_distance(
    pred: Any,
    target: Any,
    spacing: float | Sequence[float] | None = None,
    percentile: float = 100.0,
) -> float:
    """Symmetric (percentile) Hausdorff distance between the surfaces of two masks.

    ``max(P_q(d(pred -> target)), P_q(d(target -> pred)))``: the larger of the two directed
    ``percentile``-th percentiles (linear interpolation, as ``numpy.percentile`` and ``torch.quantile``),
    exactly as MONAI's ``compute_hausdorff_distance(percentile=..., directed=False)`` does; it is *not* the
    percentile of the pooled distances. ``percentile=100`` is the classic Hausdorff distance.

    Parameters
    ----------
    pred, target : masks of equal 2-D or 3-D shape (see :func:`surface_distances`).
    spacing : voxel size per axis (default 1: distances in voxels).
    percentile : in ``[0, 100]``.

    Returns
    -------
    The distance in the spacing's units; ``0.0`` when both masks are empty (MONAI: ``nan``) and ``nan``
    when exactly one is (MONAI: ``nan`` or ``inf``, with a warning; ``nan`` lets means skip the case);
    ``ValueError`` when the shapes differ.

    References
    ----------
    Huttenlocher, Klanderman & Rucklidge, "Comparing images using the Hausdorff distance", TPAMI 1993;
    the 95th percentile (HD95) is the outlier-robust variant reported by medical-imaging challenges.
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    return _hausdorff(*surface_distances(pred, target, spacing), percentile)


def _hausdorff(a_to_b: np.ndarray, b_to_a: np.ndarray, percentile: float) -> float:
    if a_to_b.size == 0 and b_to_a.size == 0:
        return 0.0
    if a_to_b.size == 0 or b_to_a.size == 0:
        return float("nan")
    return float(max(np.percentile(a_to_b, percentile), np.percentile(b_to_a, percentile)))


def hausdorff95(pred: Any, target: Any, spacing: float | Sequence[float] | None = None) -> float:
    """HD95: :func:`hausdorff_distance` with ``percentile=95`` (MONAI's ``percentile=95``)."""
    return hausdorff_distance(pred, target, spacing, percentile=95.0)


def mean_surface_distance(pred: Any, target: Any, spacing: float | Sequence[float] | None = None) -> float:
    """Average symmetric surface distance (ASSD) between two masks.

    The mean over the union of both directed distance sets (every surface voxel of either mask counts
    once), as MONAI's ``compute_average_surface_distance(symmetric=True)``; it is not the mean of the two
    directed means. Same arguments and edge cases as :func:`hausdorff_distance`: ``0.0`` when both masks
    are empty, ``nan`` when exactly one is, ``ValueError`` when the shapes differ.

    References
    ----------
    Heimann et al., "Comparison and evaluation of methods for liver segmentation from CT datasets",
    IEEE TMI 2009 (average symmetric surface distance).
    """
    return _assd(*surface_distances(pred, target, spacing))


def _assd(a_to_b: np.ndarray, b_to_a: np.ndarray) -> float:
    if a_to_b.size == 0 and b_to_a.size == 0:
        return 0.0
    if a_to_b.size == 0 or b_to_a.size == 0:
        return float("nan")
    return float(np.concatenate([a_to_b, b_to_a]).mean())


def surface_scores(
    pred_labels: Any,
    target_labels: Any,
    num_classes: int,
    spacing: float | Sequence[float] | None = None,
    ignore_index: int | None = None,
    classes: Sequence[int] | None = None,
) -> dict[str, Any]:
    """HD95 and ASSD of each foreground class of a label map, and their means over classes.

    Parameters
    ----------
    pred_labels, target_labels : integer label maps of equal 2-D or 3-D shape.
    num_classes : ``K``; the classes scored are ``1 .. K-1`` (class 0 is the background).
    spacing : voxel size per axis (default 1: distances in voxels).
    ignore_index : voxels where the *target* equals it are background in both maps (they belong to no
        class, so neither surface passes through them as part of a class); the class ``ignore_index``
        itself is not scored.
    classes : the classes to score instead of ``1 .. K-1``.

    Returns
    -------
    ``{"hd95": {c: float}, "surface_distance": {c: float}, "mean_hd95": float,
    "mean_surface_distance": float}``. A class absent from both maps is ``nan`` (as the confusion matrix's
    per-class scores) and one present in only one map is ``nan`` (see :func:`hausdorff_distance`); the
    means skip ``nan`` (``nan`` when nothing is left). A class the prediction misses entirely therefore
    does not raise the means: read them with the per-class IoU / Dice.
    """
    pred, target = _to_numpy(pred_labels), _to_numpy(target_labels)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    valid = None if ignore_index is None else target != ignore_index
    if classes is None:
        classes = range(1, int(num_classes))
    scores: dict[str, Any] = {"hd95": {}, "surface_distance": {}}
    for c in (int(c) for c in classes):
        if c == ignore_index:
            continue
        p, t = pred == c, target == c
        if valid is not None:
            p, t = p & valid, t & valid
        if not (p.any() or t.any()):
            scores["hd95"][c] = scores["surface_distance"][c] = float("nan")
            continue
        distances = surface_distances(p, t, spacing)
        scores["hd95"][c] = _hausdorff(*distances, 95.0)
        scores["surface_distance"][c] = _assd(*distances)
    for key in ("hd95", "surface_distance"):
        values = np.array(list(scores[key].values()), np.float64)
        values = values[~np.isnan(values)]
        scores[f"mean_{key}"] = float(values.mean()) if values.size else float("nan")
    return scores
