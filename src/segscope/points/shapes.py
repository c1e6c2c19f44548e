"""A GENERATED part-segmentation set: procedural shapes with labelled parts, in ShapeNet-Part's categories,
part numbering and orientation (y up, x forward), for training where the real benchmark is not at hand.

Each category is one small function (``shapes_vehicles``, ``shapes_furniture``, ``shapes_objects``) that
builds a shape from labelled surface primitives (boxes, cylinders, cones, ellipsoids, tori, plates) with
random proportions and variants (four legs or a swivel base, arms or none, standing or hanging lamps...).
Points are sampled on the surfaces in proportion to area, as ShapeNet-Part's were sampled from meshes,
jittered by Gaussian noise (sigma 0.002-0.008 of the unit radius) and normalised to the unit sphere
(centroid at the origin, farthest point at radius 1). These are synthetic shapes, not ShapeNet: a model
trained on them measures transfer when run on the real files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from segscope.errors import UserError
from segscope.points.io import NUM_PARTS, LabelledCloud, category_name, normalize_unit_sphere
from segscope.points.shapes_furniture import bag, cap, chair, lamp, laptop, mug, table
from segscope.points.shapes_objects import earphone, guitar, knife, pistol
from segscope.points.shapes_primitives import Surface, sample_surfaces
from segscope.points.shapes_vehicles import airplane, car, motorbike, rocket, skateboard

GENERATORS: dict[str, Callable[[np.random.Generator], list[Surface]]] = {
    "Airplane": airplane,
    "Bag": bag,
    "Cap": cap,
    "Car": car,
    "Chair": chair,
    "Earphone": earphone,
    "Guitar": guitar,
    "Knife": knife,
    "Lamp": lamp,
    "Laptop": laptop,
    "Motorbike": motorbike,
    "Mug": mug,
    "Pistol": pistol,
    "Rocket": rocket,
    "Skateboard": skateboard,
    "Table": table,
}
GENERATED_CATEGORIES: tuple[str, ...] = tuple(GENERATORS)


def generate_shape(
    category: str,
    rng: np.random.Generator,
    *,
    n_points: int = 2048,
    noise: tuple[float, float] = (0.002, 0.008),
) -> tuple[np.ndarray, np.ndarray]:
    """One procedural shape of ``category``: (n_points, 3) float32 on the unit sphere and (n_points,) labels
    1..P."""
    surfaces = GENERATORS[category_name(category)](rng)
    points, labels = sample_surfaces(surfaces, n_points, rng)
    points = normalize_unit_sphere(points)
    points = points + rng.normal(0, rng.uniform(*noise), points.shape)
    return normalize_unit_sphere(points), labels


def generate_set(
    n_per_category: int,
    *,
    categories: Iterable[str] | None = None,
    n_points: int = 2048,
    seed: int = 0,
) -> list[LabelledCloud]:
    """``n_per_category`` generated shapes of each category (default: all generated ones), seeded; names
    ``gen<seed>_<category>_<k>``."""
    if n_per_category < 1:
        raise UserError(f"shapes per category must be >= 1, got {n_per_category}")
    names = [category_name(c) for c in categories] if categories else list(GENERATED_CATEGORIES)
    missing = [c for c in names if c not in GENERATORS]
    if missing:
        raise UserError(
            f"no generator for {', '.join(missing)} (generated: {', '.join(GENERATED_CATEGORIES)})"
        )
    out = []
    for i, category in enumerate(names):
        rng = np.random.default_rng([seed, i])
        for k in range(n_per_category):
            points, labels = generate_shape(category, rng, n_points=n_points)
            if labels.max() > NUM_PARTS[category]:  # a generator bug, never the user's
                raise RuntimeError(f"{category} generator produced label {labels.max()}")
            out.append(LabelledCloud(category, points, labels, f"gen{seed}_{category.lower()}_{k:04d}"))
    return out
