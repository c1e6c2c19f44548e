"""Masks of known quality: seeded degradations of a ground-truth mask and their true Dice / IoU.

The oracle of Fernandes, Cruz & Cardoso learns q(image, mask) from masks made *worse* in controlled ways,
each labelled with its true quality against the ground truth. :func:`degrade_mask` draws one such mask
from a random mixture of the operations below (scipy.ndimage / scikit-image, all seeded), optionally
softened into a probability map, and returns it with its soft Dice and IoU.

Every size parameter is in pixels of the *oracle's* resolution and multiplied by ``scale`` (full-size
pixels per oracle pixel), so an erosion "by 2" removes the same fraction of a 512x512 slice as of its
128x128 view.

References
----------
K. Fernandes, R. Cruz and J. S. Cardoso, "Deep image segmentation by quality inference", IJCNN 2018.
The authors' code degrades by elastic warp, dilation/erosion, random pixel flips, rotation and
flip+offset; here shifts, holes, spurious blobs, boundary noise, label flips (multi-class) and soft
(blurred, low-confidence) masks are added, so the oracle also sees the probability maps that gradient
ascent produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import disk

QUALITY_METRICS = ("dice", "iou")
DEGRADATIONS = (
    "erode",
    "dilate",
    "elastic",
    "shift",
    "rotate",
    "holes",
    "blobs",
    "boundary_noise",
    "pixel_flip",
)


# -- quality ------------------------------------------------------------------------------------------
def _overlap(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None) -> tuple[float, float, float]:
    p = np.asarray(pred, np.float64)
    t = np.asarray(truth, np.float64)
    if p.shape != t.shape:
        raise ValueError(f"mask shape {p.shape} differs from truth shape {t.shape}")
    if valid is not None:
        p, t = p[valid], t[valid]
    return float((p * t).sum()), float(p.sum()), float(t.sum())


def soft_dice(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Dice ``2 sum(p t) / (sum p + sum t)`` of a soft mask ``p`` in [0, 1] with a 0/1 truth ``t``.

    Equal to the usual Dice for hard masks; 1.0 when both are empty. ``valid`` selects the pixels
    counted (e.g. not the ignore index).
    """
    inter, sp, st = _overlap(pred, truth, valid)
    return 1.0 if sp + st == 0 else 2.0 * inter / (sp + st)


def soft_iou(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Jaccard ``sum(p t) / (sum p + sum t - sum(p t))``; 1.0 when both masks are empty."""
    inter, sp, st = _overlap(pred, truth, valid)
    union = sp + st - inter
    return 1.0 if union == 0 else inter / union


def mask_quality(
    pred: np.ndarray, truth: np.ndarray, metric: str = "dice", valid: np.ndarray | None = None
) -> float:
    """The quality ``metric`` (``"dice"`` or ``"iou"``) of ``pred`` against ``truth``."""
    if metric not in QUALITY_METRICS:
        raise ValueError(f"quality metric must be one of {QUALITY_METRICS}, got {metric!r}")
    return soft_dice(pred, truth, valid) if metric == "dice" else soft_iou(pred, truth, valid)


# -- single operations (bool in, bool out) ---------------------------------------------------------
def true_quality(
    labels: np.ndarray,
    truth: np.ndarray,
    classes: Sequence[int],
    metric: str = "dice",
    ignore_index: int | None = None,
) -> float:
    """What an oracle estimates, measured: the mean over ``classes`` of the Dice (or IoU) of the label
    map ``labels`` with ``truth``, ``ignore_index`` pixels left out (1 for a class absent from both)."""
    valid = None if ignore_index is None else truth != ignore_index
    return float(np.mean([mask_quality(labels == c, truth == c, metric, valid) for c in classes]))


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by a disc of ``radius`` pixels (0: unchanged)."""
    return ndimage.binary_erosion(mask, disk(radius)) if radius > 0 else mask.astype(bool)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a disc of ``radius`` pixels (0: unchanged)."""
    return ndimage.binary_dilation(mask, disk(radius)) if radius > 0 else mask.astype(bool)


def elastic_warp(mask: np.ndarray, *, alpha: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Warp by a smooth random displacement field of peak magnitude ``alpha`` pixels.

    The field is white noise smoothed by a Gaussian of ``sigma`` pixels (Simard et al., ICDAR 2003),
    rescaled so its largest displacement is ``alpha``; nearest-neighbour resampling keeps it binary.
    """
    h, w = mask.shape
    fields = []
    for _ in range(2):
        d = ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma, mode="reflect")
        fields.append(d * (alpha / max(np.abs(d).max(), 1e-12)))
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    coords = np.stack([yy + fields[0], xx + fields[1]])
    return ndimage.map_coordinates(mask.astype(np.uint8), coords, order=0, mode="nearest").astype(bool)


def shift(mask: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Translate by ``(dy, dx)`` pixels; uncovered pixels become background."""
    return ndimage.shift(mask.astype(np.uint8), (dy, dx), order=0, cval=0).astype(bool)


def rotate(mask: np.ndarray, angle: float) -> np.ndarray:
    """Rotate by ``angle`` degrees about the centre (same shape, background fill)."""
    return ndimage.rotate(mask.astype(np.uint8), angle, reshape=False, order=0, cval=0).astype(bool)


def _discs(shape: tuple[int, int], centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    out = np.zeros(shape, bool)
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    for (cy, cx), r in zip(centres, radii):
        out |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return out


def add_holes(mask: np.ndarray, *, count: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Clear ``count`` discs (radius up to ``radius``) centred on random foreground pixels."""
    fg = np.argwhere(mask)
    if not len(fg) or count < 1:
        return mask.astype(bool)
    centres = fg[rng.integers(0, len(fg), count)]
    return mask.astype(bool) & ~_discs(mask.shape, centres, rng.uniform(1, max(radius, 1), count))


def add_blobs(mask: np.ndarray, *, count: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Set ``count`` spurious discs (radius up to ``radius``) anywhere in the image."""
    if count < 1:
        return mask.astype(bool)
    centres = np.stack([rng.integers(0, mask.shape[0], count), rng.integers(0, mask.shape[1], count)], 1)
    return mask.astype(bool) | _discs(mask.shape, centres, rng.uniform(1, max(radius, 1), count))


def boundary_noise(mask: np.ndarray, *, width: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Flip each pixel within ``width`` pixels of the boundary with probability ``p``."""
    m = mask.astype(bool)
    band = dilate(m, width) & ~erode(m, width)
    return m ^ (band & (rng.random(m.shape) < p))


def flip_pixels(mask: np.ndarray, *, p: float, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise: flip every pixel independently with probability ``p``."""
    return mask.astype(bool) ^ (rng.random(mask.shape) < p)


def flip_labels(
    labels: np.ndarray, num_classes: int, *, count: int, radius: float, rng: np.random.Generator
) -> np.ndarray:
    """Multi-class label flips: relabel ``count`` random discs of a label map to other random classes.

    Only pixels holding a class in ``[0, num_classes)`` change (an ignore index stays as it is).
    """
    if num_classes < 2:
        raise ValueError(f"flip_labels needs at least 2 classes, got {num_classes}")
    out = np.array(labels, copy=True)
    valid = (out >= 0) & (out < num_classes)
    for _ in range(max(count, 0)):
        centre = np.array([[rng.integers(0, out.shape[0]), rng.integers(0, out.shape[1])]])
        region = _discs(out.shape, centre, np.array([rng.uniform(1, max(radius, 1))])) & valid
        out[region] = (out[region] + rng.integers(1, num_classes)) % num_classes
    return out


# -- random mixture --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DegradedMask:
    """One synthetic mask: ``mask`` ``(H, W)`` float32 in [0, 1], its true ``dice`` and ``iou`` against
    the ground truth, and the operations (with parameters) that made it."""

    mask: np.ndarray
    dice: float
    iou: float
    ops: tuple[str, ...]

    def quality(self, metric: str) -> float:
        if metric not in QUALITY_METRICS:
            raise ValueError(f"quality metric must be one of {QUALITY_METRICS}, got {metric!r}")
        return self.dice if metric == "dice" else self.iou


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _apply(op: str, m: np.ndarray, s: float, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Apply one operation with random severity; ``s`` = full-size pixels per oracle pixel.

    Magnitudes are log-uniform from a fraction of an oracle pixel to several, so thin structures such
    as EM membranes get mild degradations too and the pool spans the whole quality range.
    """
    if op in ("erode", "dilate"):
        r = max(1, round(_log_uniform(rng, 0.25, 4) * s))
        return (erode(m, r) if op == "erode" else dilate(m, r)), f"{op}(r={r})"
    if op == "elastic":
        alpha, sigma = _log_uniform(rng, 0.25, 10) * s, rng.uniform(3, 8) * s
        return elastic_warp(m, alpha=alpha, sigma=sigma, rng=rng), f"elastic(alpha={alpha:.1f})"
    if op == "shift":
        dy, dx = (round(_log_uniform(rng, 0.25, 8) * s * rng.choice([-1, 1])) for _ in range(2))
        return shift(m, dy, dx), f"shift({dy},{dx})"
    if op == "rotate":
        angle = _log_uniform(rng, 0.5, 20) * rng.choice([-1, 1])
        return rotate(m, angle), f"rotate({angle:.1f})"
    if op in ("holes", "blobs"):
        count, radius = int(rng.integers(1, 21)), rng.uniform(0.5, 8) * s
        fn = add_holes if op == "holes" else add_blobs
        return fn(m, count=count, radius=radius, rng=rng), f"{op}(n={count})"
    if op == "boundary_noise":
        width, p = max(1, round(_log_uniform(rng, 0.25, 3) * s)), float(rng.uniform(0.1, 0.6))
        return boundary_noise(m, width=width, p=p, rng=rng), f"boundary_noise(w={width})"
    if op == "pixel_flip":
        p = _log_uniform(rng, 0.005, 0.2)
        return flip_pixels(m, p=p, rng=rng), f"pixel_flip(p={p:.3f})"
    raise ValueError(f"unknown degradation {op!r}; choose from {DEGRADATIONS}")


def soften(mask: np.ndarray, *, sigma: float = 0.0, confidence: float = 1.0) -> np.ndarray:
    """A probability map from a mask: Gaussian blur of ``sigma`` pixels, then squash towards 0.5
    (``confidence`` 1: unchanged, 0: all 0.5). Returns float32 in [0, 1]."""
    if not 0 <= confidence <= 1:
        raise ValueError(f"confidence must be in [0, 1], got {confidence}")
    out = mask.astype(np.float32)
    if sigma > 0:
        out = ndimage.gaussian_filter(out, sigma)
    return np.clip(0.5 + confidence * (out - 0.5), 0.0, 1.0).astype(np.float32)


def degrade_mask(
    truth: np.ndarray,
    *,
    rng: np.random.Generator | int | None = None,
    ops: Sequence[str] | None = None,
    scale: float = 1.0,
    soft: bool | None = None,
    valid: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> DegradedMask:
    """A randomly degraded copy of the binary mask ``truth`` with its true Dice and IoU.

    Parameters
    ----------
    truth : ``(H, W)`` bool or 0/1 ground-truth mask.
    rng : a numpy Generator or a seed (the result is a function of it).
    ops : operations to apply, in order (names from :data:`DEGRADATIONS`); ``None`` draws a random
        mixture: with probability 0.04 the truth itself, 0.04 an empty mask, 0.02 the complement,
        otherwise 1, 2 or 3 (probability 0.5, 0.35, 0.15) random operations of random severity.
    scale : full-size pixels per oracle pixel (e.g. 4 for a 512x512 image seen at 128x128).
    soft : blur and/or lower the confidence of the result into a probability map; ``None``: with
        probability 1/2.
    valid : pixels counted in the quality (``None``: all).
    start : the mask the operations start from (default ``truth``), e.g. a label-flipped class mask.

    Returns
    -------
    :class:`DegradedMask` whose ``dice`` and ``iou`` are :func:`soft_dice` / :func:`soft_iou` of the
    returned (possibly soft) mask against ``truth``.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    t = np.asarray(truth)
    if t.ndim != 2:
        raise ValueError(f"truth must be an (H, W) mask, got shape {t.shape}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    t = t.astype(bool)
    m = t.copy() if start is None else np.asarray(start).astype(bool)
    if m.shape != t.shape:
        raise ValueError(f"start shape {m.shape} differs from truth shape {t.shape}")
    names: list[str] = []
    if ops is None:
        u = rng.random()
        if u < 0.04:
            names.append("identity")
        elif u < 0.08:
            m[:], names = False, ["empty"]
        elif u < 0.10:
            m, names = ~t, ["complement"]
        else:
            count = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
            ops = list(rng.choice(DEGRADATIONS, size=count, replace=False))
    for op in ops or ():
        m, name = _apply(str(op), m, scale, rng)
        names.append(name)
    out = m.astype(np.float32)
    if soft is None:
        soft = bool(rng.random() < 0.5)
    if soft:
        sigma = float(rng.uniform(0.0, 1.0) * scale)
        confidence = float(rng.uniform(0.4, 1.0)) if rng.random() < 0.5 else 1.0
        out = soften(m, sigma=sigma, confidence=confidence)
        names.append(f"soft(sigma={sigma:.1f}, c={confidence:.2f})")
    return DegradedMask(out, soft_dice(out, t, valid), soft_iou(out, t, valid), tuple(names))
