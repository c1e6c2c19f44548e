"""Joint 3-D augmentation of a volume and its label mask (numpy arrays).

``image`` is ``(D, H, W, C)`` (uint8, or float), ``mask`` is ``(D, H, W)`` int64. Geometric transforms move
both; the mask is only ever permuted or resampled by nearest neighbour, so it never holds a value that was
not in the input mask (no fill value either: warps pull border labels from the nearest voxel).

=========  ===========================================================================================
token      transform
=========  ===========================================================================================
flip       flip each of the D, H, W axes with probability 1/2 (exact permutation)
rot90      rotate by ``k * 90°`` in the (H, W) plane (exact); odd ``k`` only when H == W and the in-plane
           spacings agree, so the shape and the physical geometry are kept
elastic    smooth random deformation (3D U-Net paper, Sec. 2): Gaussian displacement vectors on a coarse
           grid of control points ``grid_spacing`` physical units apart, Gaussian-filtered on that grid,
           interpolated by cubic B-spline to every voxel; displacements are physical (``spacing`` per
           axis), so anisotropic volumes deform alike in millimetres; image order 1, mask order 0
           (``scipy.ndimage.map_coordinates``); applied with probability ``elastic_p``
intensity  image only: brightness shift, contrast scaling about the mean, gamma (nnU-Net's ranges)
none       nothing
=========  ===========================================================================================

The paper (Çiçek et al., "3D U-Net", MICCAI 2016) draws the control-point vectors with standard deviation 4
voxels on a 32-voxel grid and interpolates by B-spline; ``elastic_magnitude=4, grid_spacing=32`` are those
values (in physical units). The Gaussian filter on the coarse grid (``elastic_smooth`` cells; the noise is
rescaled so each control point keeps the standard deviation ``elastic_magnitude``) is our addition, to
correlate neighbouring control points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segscope.errors import UserError

TOKENS = ("flip", "rot90", "elastic", "intensity")


def random_flip(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """Flip each spatial axis (D, H, W) with probability 1/2."""
    axes = tuple(a for a in range(3) if rng.random() < 0.5)
    if not axes:
        return image, mask
    return np.ascontiguousarray(np.flip(image, axes)), np.ascontiguousarray(np.flip(mask, axes))


def random_rot90(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *, square: bool = True):
    """Rotate by a random multiple of 90° in the (H, W) plane; odd multiples only when ``square``."""
    k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
    if k == 0:
        return image, mask
    return (
        np.ascontiguousarray(np.rot90(image, k, axes=(1, 2))),
        np.ascontiguousarray(np.rot90(mask, k, axes=(1, 2))),
    )


def _axis_interpolation(n_coarse: int, positions: np.ndarray) -> np.ndarray:
    """``(len(positions), n_coarse)`` cubic B-spline interpolation matrix along one axis."""
    from scipy import ndimage

    eye = np.eye(n_coarse)
    return np.stack(
        [ndimage.map_coordinates(e, positions[None], order=3, mode="nearest") for e in eye], axis=1
    )


def displacement_field(
    shape: Sequence[int],
    rng: np.random.Generator,
    *,
    magnitude: float,
    grid_spacing: float,
    smooth: float = 1.0,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Smooth random displacement ``(3, D, H, W)`` in *voxels* of each axis.

    Control points every ``grid_spacing`` physical units get Gaussian vectors (physical units, standard
    deviation ``magnitude``), Gaussian-filtered over ``smooth`` control-point cells and rescaled to keep
    that standard deviation; the field is interpolated to every voxel by a separable cubic B-spline
    (equal to ``map_coordinates(order=3)`` in 3-D) and divided by ``spacing`` to give voxel offsets.
    """
    from scipy import ndimage

    extent = [(n - 1) * s for n, s in zip(shape, spacing)]
    coarse = [int(np.ceil(e / grid_spacing)) + 1 for e in extent]
    noise = rng.standard_normal((3, *coarse))
    if smooth > 0:
        delta = np.zeros([int(8 * smooth) + 1] * 3)
        delta[(len(delta) // 2,) * 3] = 1.0
        gain = np.sqrt((ndimage.gaussian_filter(delta, smooth, mode="constant") ** 2).sum())
        noise = np.stack([ndimage.gaussian_filter(c, smooth, mode="reflect") for c in noise]) / gain
    mats = [
        _axis_interpolation(g, np.arange(n) * s / grid_spacing) for g, n, s in zip(coarse, shape, spacing)
    ]
    field = np.einsum("cabk,ia,jb,lk->cijl", noise, *mats, optimize=True) * magnitude
    return field / np.asarray(spacing, dtype=float).reshape(3, 1, 1, 1)


def warp(image: np.ndarray, mask: np.ndarray, field: np.ndarray):
    """Resample ``image`` (order 1, mirrored at borders) and ``mask`` (order 0, nearest border) at
    ``voxel index + field``; uint8 images are rounded back to uint8."""
    from scipy import ndimage

    coords = np.indices(mask.shape, dtype=np.float64) + field
    out = np.empty(image.shape, dtype=np.float32 if image.dtype == np.uint8 else image.dtype)
    for c in range(image.shape[-1]):
        out[..., c] = ndimage.map_coordinates(image[..., c].astype(out.dtype), coords, order=1, mode="mirror")
    if image.dtype == np.uint8:
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    warped_mask = ndimage.map_coordinates(mask, coords, order=0, mode="nearest").astype(mask.dtype)
    return out, warped_mask


def random_intensity(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    brightness: float = 0.1,
    contrast: tuple[float, float] = (0.75, 1.25),
    gamma: tuple[float, float] = (0.7, 1.5),
) -> np.ndarray:
    """Brightness shift (``± brightness`` of the value range), contrast about the mean, gamma on the
    min-max rescaled values (as nnU-Net's ``GammaTransform``), per channel. uint8 stays uint8."""
    is_uint8 = image.dtype == np.uint8
    x = image.astype(np.float32) / 255.0 if is_uint8 else image.astype(np.float32, copy=True)
    for c in range(x.shape[-1]):
        v = x[..., c]
        lo, hi = float(v.min()), float(v.max())
        span = hi - lo if hi > lo else 1.0
        v = (v - v.mean()) * rng.uniform(*contrast) + v.mean() + rng.uniform(-brightness, brightness) * span
        lo, hi = float(v.min()), float(v.max())
        if hi > lo:
            v = ((v - lo) / (hi - lo)) ** rng.uniform(*gamma) * (hi - lo) + lo
        x[..., c] = v
    if is_uint8:
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return x.astype(image.dtype, copy=False)


class VolumeAugment:
    """Callable ``(image, mask, rng=None) -> (image, mask)`` applying the ``spec`` transforms in order.

    Parameters
    ----------
    spec
        Comma-separated tokens from ``flip, rot90, elastic, intensity``, or ``"none"``.
    spacing
        Voxel size along (D, H, W) in physical units (e.g. mm); elastic displacements are physical.
    seed
        Seeds the generator used when a call passes no ``rng``.
    elastic_magnitude, grid_spacing, elastic_smooth, elastic_p
        Control-point displacement standard deviation and spacing (physical units; paper 4 and 32), the
        Gaussian filter on the control grid (cells) and the probability of deforming a sample.
    """

    def __init__(
        self,
        spec: str,
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        seed: int | None = None,
        *,
        elastic_magnitude: float = 4.0,
        grid_spacing: float = 32.0,
        elastic_smooth: float = 1.0,
        elastic_p: float = 0.5,
    ) -> None:
        tokens = [t.strip() for t in spec.split(",") if t.strip()]
        if tokens == ["none"]:
            tokens = []
        unknown = [t for t in tokens if t not in TOKENS]
        if unknown or not spec.strip():
            raise UserError(
                f"unknown volume augmentation {', '.join(unknown) or repr(spec)}; "
                f"use 'none' or a comma-separated list of {', '.join(TOKENS)}"
            )
        self.spacing = tuple(float(s) for s in spacing)
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise UserError(f"volume spacing must be 3 positive numbers (D, H, W), got {spacing!r}")
        if elastic_magnitude < 0 or grid_spacing <= 0 or not 0 <= elastic_p <= 1:
            raise UserError("elastic augmentation needs magnitude >= 0, grid spacing > 0, p in [0, 1]")
        self.tokens = tuple(tokens)
        self.elastic_magnitude, self.grid_spacing = float(elastic_magnitude), float(grid_spacing)
        self.elastic_smooth, self.elastic_p = float(elastic_smooth), float(elastic_p)
        self._rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return f"VolumeAugment({','.join(self.tokens) or 'none'!r}, spacing={self.spacing})"

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if image.ndim != 4 or mask.shape != image.shape[:3]:
            raise UserError(
                f"volume augmentation needs image (D, H, W, C) and mask (D, H, W), "
                f"got {image.shape} and {mask.shape}"
            )
        rng = self._rng if rng is None else rng
        for token in self.tokens:
            if token == "flip":
                image, mask = random_flip(image, mask, rng)
            elif token == "rot90":
                square = image.shape[1] == image.shape[2] and self.spacing[1] == self.spacing[2]
                image, mask = random_rot90(image, mask, rng, square=square)
            elif token == "elastic":
                if rng.random() < self.elastic_p:
                    field = displacement_field(
                        mask.shape,
                        rng,
                        magnitude=self.elastic_magnitude,
                        grid_spacing=self.grid_spacing,
                        smooth=self.elastic_smooth,
                        spacing=self.spacing,
                    )
                    image, mask = warp(image, mask, field)
            else:
                image = random_intensity(image, rng)
        return image, mask
