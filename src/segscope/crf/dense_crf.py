"""Fully connected CRF post-processing of class probabilities (Krähenbühl & Koltun, NIPS 2011).

P. Krähenbühl and V. Koltun, "Efficient Inference in Fully Connected CRFs with Gaussian Edge
Potentials", NIPS 2011; used after the network by DeepLab v1/v2 (L.-C. Chen et al., ICLR 2015 and
TPAMI 2018).

Model. Every pixel is linked to every other. With unary U_i(l) = -log p_i(l) (``proba`` clipped to
[1e-5, 1]), Potts compatibility mu(l, l') = [l != l'] and two Gaussian kernels on positions p and
colours I (0..255),

    k_G(i, j) = exp(-|p_i - p_j|^2 / (2 gaussian_sxy^2))                                (smoothness)
    k_B(i, j) = exp(-|p_i - p_j|^2 / (2 bilateral_sxy^2) - |I_i - I_j|^2 / (2 bilateral_srgb^2))
                                                                                            (appearance)

mean-field inference starts at Q = softmax(-U) and repeats ``iterations`` times

    Q_i(l) <- softmax_l( -U_i(l) + sum_m w_m sum_j kbar_m(i, j) Q_j(l) ),

the Potts message written as a reward for agreeing labels (it differs from -sum_{l'!=l} by a per-pixel
constant, which the softmax drops). As in Krähenbühl's code (pydensecrf's ``DenseKernel`` with
``NORMALIZE_SYMMETRIC``, its default) the kernels are normalised symmetrically,
kbar = D^-1/2 K D^-1/2 with D = diag(K 1), and the sum over j includes the pixel itself (the
permutohedral filter does; Krähenbühl's code subtracts nothing). Each kernel sum is one approximate
Gaussian filter on a permutohedral lattice, so an iteration costs O(N K) instead of O(N^2 K).

Backends. ``"pydensecrf"``: the C++ implementation through ``pydensecrf`` (pip ``pydensecrf2``, the
maintained fork; extra ``segscope[crf]``), float32. ``"numpy"``: the same algorithm hand-written here,
float64, on :class:`~segscope.crf.permutohedral.PermutohedralLattice`; it exists because there is no
maintained pure-Python dense CRF, and pydensecrf needs a compiled wheel. It builds the same lattice
(same elevation, rounding, blur and constants), so the two agree to float precision in practice
(see ``docs/crf.md``), but it is about an order of magnitude slower: two lattices (d = 2 and d = 5) per
image, then 2 filters of K channels per iteration. ``"auto"`` uses pydensecrf when it imports.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segscope.crf.permutohedral import PermutohedralLattice

BACKENDS = ("auto", "pydensecrf", "numpy")
UNARY_CLIP = 1e-5
"""Probabilities are clipped to [UNARY_CLIP, 1] before -log (pydensecrf.utils.unary_from_softmax's)."""


def pydensecrf_available() -> bool:
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def _rgb_uint8(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` C-contiguous uint8: grey (H, W) / (H, W, 1) replicated, RGBA's alpha dropped,
    float images in [0, 1] scaled to 0..255."""
    im = np.asarray(image)
    if im.ndim == 2:
        im = im[..., None]
    if im.ndim != 3 or im.shape[:2] != shape or im.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"dense_crf: image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) with H, W = {shape}; "
            f"got {np.shape(image)}"
        )
    if im.shape[2] == 1:
        im = np.repeat(im, 3, axis=2)
    im = im[..., :3]
    if im.dtype != np.uint8:
        im = im.astype(np.float64)
        if np.issubdtype(np.asarray(image).dtype, np.floating) and np.nanmax(im, initial=0) <= 1.0:
            im = im * 255.0
        im = np.nan_to_num(im).clip(0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(im)


def dense_crf(
    image: np.ndarray,
    proba: np.ndarray,
    *,
    iterations: int = 5,
    gaussian_sxy: float = 3.0,
    gaussian_weight: float = 3.0,
    bilateral_sxy: float = 80.0,
    bilateral_srgb: float = 13.0,
    bilateral_weight: float = 10.0,
    backend: str = "auto",
) -> np.ndarray:
    """Mean-field marginals ``(K, H, W)`` float32 of the fully connected CRF over ``proba`` ``(K, H, W)``.

    ``image`` is ``(H, W, 3)`` uint8 RGB (grey ``(H, W)`` is replicated to 3 channels). Defaults are
    pydensecrf's example settings; DeepLab used ``iterations=10`` and cross-validated the bilateral
    ones (see ``docs/crf.md``). A weight of 0 drops that kernel. ``iterations=0`` gives the clipped
    input renormalised. See the module docstring for the model and the backends.
    """
    p = np.asarray(proba)
    if p.ndim != 3 or p.shape[0] < 1 or 0 in p.shape:
        raise ValueError(f"dense_crf: proba must be (K, H, W) class probabilities, got shape {p.shape}")
    k, h, w = p.shape
    rgb = _rgb_uint8(image, (h, w))
    if backend not in BACKENDS:
        raise ValueError(f"dense_crf: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if int(iterations) != iterations or iterations < 0:
        raise ValueError(f"dense_crf: iterations must be a non-negative integer, got {iterations!r}")
    for name, value in (
        ("gaussian_sxy", gaussian_sxy),
        ("bilateral_sxy", bilateral_sxy),
        ("bilateral_srgb", bilateral_srgb),
    ):
        if not value > 0:
            raise ValueError(f"dense_crf: {name} must be > 0, got {value!r}")
    for name, value in (("gaussian_weight", gaussian_weight), ("bilateral_weight", bilateral_weight)):
        if not value >= 0:
            raise ValueError(f"dense_crf: {name} must be >= 0, got {value!r}")
    if not np.isfinite(p).all():
        raise ValueError("dense_crf: proba holds NaN or infinite values")
    unary = -np.log(np.clip(p.astype(np.float64), UNARY_CLIP, 1.0)).reshape(k, h * w)
    kernels = [
        ("gaussian", gaussian_weight, gaussian_sxy, None),
        ("bilateral", bilateral_weight, bilateral_sxy, bilateral_srgb),
    ]
    kernels = [kern for kern in kernels if kern[1] > 0]
    if backend == "auto":
        backend = "pydensecrf" if pydensecrf_available() else "numpy"
    if backend == "pydensecrf":
        q = _pydensecrf(rgb, unary, (k, h, w), int(iterations), kernels)
    else:
        q = _numpy(rgb, unary, int(iterations), kernels)
    return q.reshape(k, h, w).astype(np.float32)


def _pydensecrf(
    rgb: np.ndarray, unary: np.ndarray, shape: tuple[int, int, int], iterations: int, kernels: list[Any]
) -> np.ndarray:
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError:
        raise ImportError(
            "dense_crf: backend 'pydensecrf' needs pydensecrf (pip install pydensecrf2, or segscope[crf])"
        ) from None
    k, h, w = shape
    crf = dcrf.DenseCRF2D(w, h, k)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    for name, weight, sxy, srgb in kernels:
        if name == "gaussian":
            crf.addPairwiseGaussian(sxy=float(sxy), compat=float(weight))
        else:
            crf.addPairwiseBilateral(sxy=float(sxy), srgb=float(srgb), rgbim=rgb, compat=float(weight))
    return np.asarray(crf.inference(iterations), dtype=np.float64)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def kernel_features(rgb: np.ndarray, sxy: float, srgb: float | None) -> np.ndarray:
    """``(H W, d)`` lattice features in row-major pixel order: (x, y) / sxy, then RGB / srgb."""
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    feats = [xx.ravel() / sxy, yy.ravel() / sxy]
    if srgb is not None:
        feats += [rgb[..., c].ravel() / srgb for c in range(3)]
    return np.stack(feats, axis=1)


def _numpy(rgb: np.ndarray, unary: np.ndarray, iterations: int, kernels: list[Any]) -> np.ndarray:
    q = _softmax(-unary)
    if iterations == 0 or not kernels:
        return q
    filters = []
    for _, weight, sxy, srgb in kernels:
        lattice = PermutohedralLattice(kernel_features(rgb, sxy, srgb))
        norm = 1.0 / np.sqrt(lattice.filter(np.ones(lattice.num_points)) + 1e-20)
        filters.append((weight, lattice, norm))
    for _ in range(iterations):
        energy = -unary
        for weight, lattice, norm in filters:
            energy = energy + weight * (norm[:, None] * lattice.filter(q.T * norm[:, None])).T
        q = _softmax(energy)
    return q
