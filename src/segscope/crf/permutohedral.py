"""A permutohedral lattice in NumPy: fast approximate Gaussian filtering in a d-dim feature space.

A. Adams, J. Baek and M. A. Davis, "Fast high-dimensional filtering using the permutohedral lattice",
Eurographics 2010. :class:`PermutohedralLattice` approximates, for every point i,

    out_i = sum_j exp(-|f_i - f_j|^2 / 2) v_j        (the point itself, j = i, included)

in O(N d^2) instead of O(N^2): each feature vector is *elevated* onto the hyperplane x_0 + ... + x_d = 0
of R^(d+1) (scaled so that the lattice blur has unit standard deviation), the enclosing simplex of the
permutohedral lattice is found by rounding to the nearest "remainder-0" point and rank-sorting the
residual, the value is *splatted* onto the simplex's d+1 vertices with barycentric weights, the
lattice values are *blurred* with a [1, 2, 1]/2 kernel along each of the d+1 lattice directions, and
the result is *sliced* back with the same weights. The steps and constants follow Krähenbühl's
``permutohedral.cpp`` (the backend of pydensecrf), so the two give the same kernel up to float
precision. Output is the kernel times an unknown constant; callers normalise (divide by
``filter(ones)``).

Everything is vectorised over points: lattice points are hashed by encoding their integer keys into one
int64 and ``np.unique``; blur neighbours are found with ``np.searchsorted`` on the sorted codes; splat is
``np.bincount``. Memory is O(N (d+1)) indices and weights, plus O(M C) lattice values (M lattice points).
"""

from __future__ import annotations

import numpy as np

__all__ = ["PermutohedralLattice"]


class PermutohedralLattice:
    """The lattice of ``features`` ``(N, d)`` (already divided by the kernel's standard deviations).

    Build once, then :meth:`filter` any number of ``(N, C)`` value arrays.
    """

    def __init__(self, features: np.ndarray) -> None:
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 1 or f.shape[1] < 1:
            raise ValueError(f"features must be (N, d) with N, d >= 1, got shape {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError("features must be finite")
        n, d = f.shape
        self.num_points, self.dim = n, d
        d1 = d + 1

        # Elevate onto the hyperplane (y = E f, p.5 of Adams et al.), scaled for a unit-std blur.
        inv_std = np.sqrt(2.0 / 3.0) * d1
        scale = inv_std / np.sqrt((np.arange(d) + 2.0) * (np.arange(d) + 1.0))
        cf = f * scale
        tail = np.concatenate([np.cumsum(cf[:, ::-1], axis=1)[:, ::-1], np.zeros((n, 1))], axis=1)
        elevated = tail.copy()  # elevated[0] = sum(cf); elevated[j] = sum(cf[j:]) - j cf[j-1]
        elevated[:, 1:] -= np.arange(1, d1) * cf

        # Nearest remainder-0 point (coordinates multiples of d+1; ties round down, as in the C++ code).
        down = np.floor(elevated / d1) * d1
        up = np.ceil(elevated / d1) * d1
        rem0 = np.where(up - elevated < elevated - down, up, down).astype(np.int64)
        total = rem0.sum(axis=1) // d1

        # Rank of each residual coordinate (descending; ties: lower index ranks first).
        order = np.argsort(-(elevated - rem0), axis=1, kind="stable")
        rank = np.empty_like(order)
        rows = np.arange(n)[:, None]
        rank[rows, order] = np.arange(d1)
        # Bring the point back onto the plane (sum of rem0 == 0).
        rank += total[:, None]
        low, high = rank < 0, rank > d
        rank[low] += d1
        rem0[low] += d1
        rank[high] -= d1
        rem0[high] -= d1

        # Barycentric coordinates (p.10).
        v = (elevated - rem0) / d1
        bary = np.zeros((n, d + 2))
        bary[rows, d - rank] += v
        bary[rows, d - rank + 1] -= v
        bary[:, 0] += 1.0 + bary[:, d + 1]
        self.weights = bary[:, :d1]  # (N, d+1)

        # The d+1 simplex vertices: key_r[i] = rem0[i] + canonical[r, rank[i]] (first d coordinates).
        r = np.arange(d1)[:, None]
        canonical = np.where(np.arange(d1)[None, :] <= d - r, r, r - d1)  # (d+1, d+1)
        keys = rem0[:, None, :d] + canonical[:, rank[:, :d]].transpose(1, 0, 2)  # (N, d+1, d)
        keys = keys.reshape(-1, d)

        self._lo = keys.min(axis=0) - d1  # room for the blur neighbours' coordinates
        span = keys.max(axis=0) + d1 - self._lo + 1
        if np.sum(np.log2(span.astype(np.float64))) < 62:
            self._radix = np.concatenate([[1], np.cumprod(span[:-1])]).astype(np.int64)
            self._span = span
            codes = (keys - self._lo) @ self._radix
            self.codes, offsets = np.unique(codes, return_inverse=True)
        else:  # features too spread for one int64 code: hash the rows themselves
            self._radix = None
            uniq, offsets = np.unique(keys, axis=0, return_inverse=True)
            self.codes = uniq
        self.offsets = offsets.reshape(n, d1)
        self.num_lattice = m = len(self.codes)

        # Blur neighbours along each lattice direction j: key +- (1, ..., 1, -d at j, 1, ..., 1).
        self.neighbors = np.empty((d1, 2, m), dtype=np.int64)
        base = self._decode(m) if self._radix is not None else self.codes
        for j in range(d1):  # d+1 vectorised steps, not a per-point loop
            step = np.ones(d, dtype=np.int64)
            if j < d:
                step[j] = -d
            self.neighbors[j, 0] = self._find(base - step)
            self.neighbors[j, 1] = self._find(base + step)
        self.alpha = 1.0 / (1.0 + 2.0 ** (-d))

    def _decode(self, m: int) -> np.ndarray:
        rest = self.codes.copy()
        out = np.empty((m, self.dim), dtype=np.int64)
        for k in range(self.dim - 1, -1, -1):
            out[:, k], rest = np.divmod(rest, self._radix[k])
        return out + self._lo

    def _find(self, keys: np.ndarray) -> np.ndarray:
        """Index of each key among the lattice points, ``num_lattice`` (a zero row) where absent."""
        m = self.num_lattice
        if self._radix is not None:
            shifted = keys - self._lo
            inside = ((shifted >= 0) & (shifted < self._span)).all(axis=1)
            codes = np.where(inside, shifted @ self._radix, -1)
            pos = np.minimum(np.searchsorted(self.codes, codes), m - 1)
            return np.where(inside & (self.codes[pos] == codes), pos, m)
        view = np.ascontiguousarray(self.codes).view([("", self.codes.dtype)] * self.dim).ravel()
        query = np.ascontiguousarray(keys).view([("", keys.dtype)] * self.dim).ravel()
        pos = np.minimum(np.searchsorted(view, query), m - 1)
        return np.where(view[pos] == query, pos, m)

    def filter(self, values: np.ndarray) -> np.ndarray:
        """Approximate Gaussian filter of ``values`` ``(N, C)`` (or ``(N,)``) -> same shape."""
        vals = np.asarray(values, dtype=np.float64)
        flat = vals.ndim == 1
        if flat:
            vals = vals[:, None]
        if vals.ndim != 2 or vals.shape[0] != self.num_points:
            raise ValueError(f"values must be ({self.num_points}, C), got shape {np.shape(values)}")
        m, c = self.num_lattice, vals.shape[1]
        idx, w = self.offsets.ravel(), self.weights
        # Splat (row m stays zero: the value of absent neighbours).
        lattice = np.zeros((m + 1, c))
        for k in range(c):
            lattice[:m, k] = np.bincount(idx, weights=(w * vals[:, k : k + 1]).ravel(), minlength=m)
        # Blur along the d+1 directions with [1, 2, 1] / 2.
        for j in range(self.dim + 1):
            n1, n2 = self.neighbors[j]
            blurred = lattice.copy()
            blurred[:m] += 0.5 * (lattice[n1] + lattice[n2])
            lattice = blurred
        # Slice.
        out = np.zeros((self.num_points, c))
        for r in range(self.dim + 1):
            out += w[:, r : r + 1] * lattice[self.offsets[:, r]]
        out *= self.alpha
        return out[:, 0] if flat else out
