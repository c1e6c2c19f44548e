"""Labelled surface primitives for the procedural part-segmentation shapes (:mod:`segscope.points.shapes`).

Each primitive is a :class:`Surface`: its area and a sampler of points spread uniformly over it, with the
part label the points get. A shape is a list of surfaces; :func:`sample_surfaces` spreads ``n`` points over
them in proportion to area, as sampling a mesh's surface does. World frame: x forward, y up, z sideways.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

Sampler = Callable[[int, np.random.Generator], np.ndarray]


class Surface(NamedTuple):
    area: float
    sample: Sampler  # (n, rng) -> (n, 3)
    label: int


def rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to ``axis`` and to each other."""
    axis = axis / np.linalg.norm(axis)
    helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(axis, e1)


def triangle(a, b, c, label: int) -> Surface:
    a, b, c = (np.asarray(p, float) for p in (a, b, c))

    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        r1, r2 = np.sqrt(rng.random((n, 1))), rng.random((n, 1))
        return (1 - r1) * a + r1 * (1 - r2) * b + r1 * r2 * c

    return Surface(0.5 * float(np.linalg.norm(np.cross(b - a, c - a))), sample, label)


def polygon(corners, label: int) -> list[Surface]:
    """A planar convex polygon (corners in order) as a fan of triangles."""
    corners = [np.asarray(p, float) for p in corners]
    return [triangle(corners[0], corners[i], corners[i + 1], label) for i in range(1, len(corners) - 1)]


def plate(corners, normal, thickness: float, label: int) -> list[Surface]:
    """A thin convex plate: the polygon on both sides, ``thickness`` apart along ``normal``."""
    offset = np.asarray(normal, float) / np.linalg.norm(normal) * thickness / 2
    return [s for sign in (1, -1) for s in polygon([np.asarray(p) + sign * offset for p in corners], label)]


def box(
    center, size, label: int, *, rot: np.ndarray | None = None, top_label: int | None = None
) -> list[Surface]:
    """An axis-aligned box (``size`` = full extents) turned by ``rot`` about its centre; its +y face may
    carry another label (a car's roof or hood)."""
    center, half = np.asarray(center, float), np.asarray(size, float) / 2
    rot = np.eye(3) if rot is None else rot
    out = []
    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        for sign in (1, -1):
            e = np.zeros((4, 3))
            e[:, axis] = sign * half[axis]
            e[:, u] = [-half[u], half[u], half[u], -half[u]]
            e[:, v] = [-half[v], -half[v], half[v], half[v]]
            lab = top_label if (axis == 1 and sign == 1 and top_label is not None) else label
            out += polygon(center + e @ rot.T, lab)
    return out


def frustum(
    p0, p1, r0: float, r1: float, label: int, *, caps: tuple[bool, bool] = (True, True)
) -> list[Surface]:
    """The side of a truncated cone from ``p0`` (radius ``r0``) to ``p1`` (radius ``r1``), with caps.
    A cylinder when ``r0 == r1``, a cone when one radius is 0."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    length = float(np.linalg.norm(axis))
    e1, e2 = _frame(axis)

    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(n)  # t with density proportional to the radius r(t) (inverse CDF)
        if abs(r1 - r0) < 1e-9:
            t = u
        else:
            t = (np.sqrt(r0**2 + u * (r1**2 - r0**2)) - r0) / (r1 - r0)
        r, phi = r0 + (r1 - r0) * t, rng.uniform(0, 2 * np.pi, n)
        return p0 + t[:, None] * axis + r[:, None] * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)

    out = [Surface(np.pi * (r0 + r1) * float(np.hypot(length, r1 - r0)), sample, label)]
    for cap, p, r in ((caps[0], p0, r0), (caps[1], p1, r1)):
        if cap and r > 0:
            out.append(disk(p, axis, r, label))
    return out


def cylinder(p0, p1, r: float, label: int, *, caps: bool = True) -> list[Surface]:
    return frustum(p0, p1, r, r, label, caps=(caps, caps))


def disk(
    center, normal, radius: float, label: int, *, inner: float = 0.0, angles=(0.0, 2 * np.pi), axes=None
) -> Surface:
    """An annulus sector in the plane through ``center`` normal to ``normal`` (``axes``: its in-plane x/y)."""
    center = np.asarray(center, float)
    e1, e2 = axes if axes is not None else _frame(np.asarray(normal, float))
    e1, e2 = np.asarray(e1, float), np.asarray(e2, float)

    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        r = np.sqrt(rng.uniform(inner**2, radius**2, n))
        phi = rng.uniform(angles[0], angles[1], n)
        return center + r[:, None] * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)

    return Surface(0.5 * (angles[1] - angles[0]) * (radius**2 - inner**2), sample, label)


def ellipsoid(
    center, radii, label: int, *, rot: np.ndarray | None = None, upper_only: bool = False
) -> Surface:
    """An ellipsoid surface (or its y >= centre half, before ``rot``), uniform by rejection sampling."""
    center, radii = np.asarray(center, float), np.asarray(radii, float)
    rot = np.eye(3) if rot is None else rot
    a, b, c = radii
    p = 1.6075  # Knud Thomsen's approximation of the area
    area = (
        4 * np.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p) * (0.5 if upper_only else 1)
    )

    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        out: list[np.ndarray] = []
        while sum(len(o) for o in out) < n:
            u = rng.normal(size=(2 * n + 8, 3))
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            if upper_only:
                u[:, 1] = np.abs(u[:, 1])
            scale = np.sqrt(((u / radii) ** 2).sum(axis=1)) / (1 / radii).max()  # area element, <= 1
            out.append(u[rng.random(len(u)) < scale] * radii)
        return center + np.concatenate(out)[:n] @ rot.T

    return Surface(float(area), sample, label)


def torus(
    center, normal, big_r: float, small_r: float, label: int, *, arc=(0.0, 2 * np.pi), axes=None
) -> Surface:
    """A torus (or an arc of it, angles measured from ``axes[0]`` towards ``axes[1]``) around ``normal``."""
    center = np.asarray(center, float)
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    e1, e2 = axes if axes is not None else _frame(normal)
    e1, e2 = np.asarray(e1, float), np.asarray(e2, float)

    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        out: list[np.ndarray] = []
        while sum(len(o) for o in out) < n:
            m = 2 * n + 8
            phi = rng.uniform(0, 2 * np.pi, m)  # around the tube; area element ~ (R + r cos phi)
            keep = rng.random(m) < (big_r + small_r * np.cos(phi)) / (big_r + small_r)
            theta, phi = rng.uniform(arc[0], arc[1], m)[keep], phi[keep]
            radial = np.cos(theta)[:, None] * e1 + np.sin(theta)[:, None] * e2
            out.append(
                center
                + (big_r + small_r * np.cos(phi))[:, None] * radial
                + small_r * np.sin(phi)[:, None] * normal
            )
        return np.concatenate(out)[:n]

    return Surface(float((arc[1] - arc[0]) * big_r * 2 * np.pi * small_r), sample, label)


def tube(points, radius: float, label: int) -> list[Surface]:
    """Cylinders (no caps) along a polyline."""
    return [s for p0, p1 in zip(points[:-1], points[1:]) for s in cylinder(p0, p1, radius, label, caps=False)]


def sample_surfaces(
    surfaces: list[Surface], n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points spread over ``surfaces`` in proportion to their areas: (n, 3) float64 and (n,) labels."""
    areas = np.array([s.area for s in surfaces], float)
    counts = rng.multinomial(n, areas / areas.sum())
    points = [s.sample(k, rng) for s, k in zip(surfaces, counts) if k]
    labels = [np.full(k, s.label, np.int64) for s, k in zip(surfaces, counts) if k]
    order = rng.permutation(n)
    return np.concatenate(points)[order], np.concatenate(labels)[order]
