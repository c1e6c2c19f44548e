"""The generated set: each category covers its parts, unit-sphere points, the real sample's orientation
(per-part centroids and extents close to the real shape's), and augmentation keeps the labels."""

from __future__ import annotations

import numpy as np
import pytest

from segscope.errors import UserError
from segscope.points.io import CATEGORY_NAMES, NUM_PARTS, load_shapenet_part, normalize_unit_sphere
from segscope.points.shapes import GENERATED_CATEGORIES, generate_set
from segscope.points.train import PartSegDataset, augment, global_labels
from tests.conftest import shared_dataset


@pytest.fixture(scope="module")
def generated():
    return generate_set(6, n_points=1024, seed=5)


def test_every_category_covers_its_parts_on_the_unit_sphere(generated):
    assert set(GENERATED_CATEGORIES) == set(CATEGORY_NAMES)  # all 16 categories have a generator
    for category in GENERATED_CATEGORIES:
        shapes = [c for c in generated if c.category == category]
        assert len(shapes) == 6
        labels = np.concatenate([c.labels for c in shapes])
        assert set(labels.tolist()) == set(range(1, NUM_PARTS[category] + 1)), category
        for c in shapes:
            radius = np.linalg.norm(c.points, axis=1)
            assert c.points.shape == (1024, 3) and np.isfinite(c.points).all()
            assert radius.max() == pytest.approx(1.0, abs=1e-5) and np.median(radius) > 0.2
            assert np.abs(c.points.mean(axis=0)).max() < 1e-5


def test_generation_is_seeded():
    a, b, c = (generate_set(1, categories=["chair"], seed=s, n_points=64) for s in (1, 1, 2))
    np.testing.assert_array_equal(a[0].points, b[0].points)
    assert not np.array_equal(a[0].points, c[0].points)
    with pytest.raises(UserError):
        generate_set(0)


def test_orientation_matches_the_real_sample(generated):
    """Up is y and the front +x as in ShapeNet-Part: each part's centroid lies near the real shape's part
    centroid and the bounding-box extents agree per axis (an axis swap or flip fails both)."""
    real = load_shapenet_part(shared_dataset("shapenet_part_sample"))
    for cloud in real:
        points = normalize_unit_sphere(cloud.points)
        shapes = [c for c in generated if c.category == cloud.category]
        dists = []
        for k in np.unique(cloud.labels):
            centroids = [c.points[c.labels == k].mean(axis=0) for c in shapes if (c.labels == k).any()]
            dists.append(np.linalg.norm(np.mean(centroids, axis=0) - points[cloud.labels == k].mean(axis=0)))
        assert np.mean(dists) < 0.25, (cloud.category, dists)
        extents = np.mean([np.ptp(c.points, axis=0) for c in shapes], axis=0)
        assert np.abs(extents - np.ptp(points, axis=0)).max() < 0.7, (cloud.category, extents)


def test_augmentation_keeps_labels():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 3)).astype(np.float32)
    out = augment(points, rng, jitter=0.0, scale=(1.0, 1.0), rotate=True)
    assert out.shape == points.shape
    np.testing.assert_allclose(out[:, 1], points[:, 1], atol=1e-5)  # a rotation about y keeps heights
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(points, axis=1), rtol=1e-5)
    out = augment(points, rng, jitter=0.01, clip=0.05)
    scale = np.linalg.norm(out, axis=1).sum() / np.linalg.norm(points, axis=1).sum()
    assert (
        0.78 < scale < 1.27 and np.abs(out / scale - points).max() < 0.05 / 0.8 + 1e-4
    )  # point i stays point i
    # the dataset resamples and augments, and labels follow their points
    cloud = generate_set(1, categories=["Mug"], n_points=500, seed=0)[0]
    ds = PartSegDataset([cloud], 300, seed=0, jitter=0.0, scale=(1.0, 1.0), rotate=True)
    pts, labels, category = ds[0]
    assert pts.shape == (300, 3) and category == CATEGORY_NAMES.index("Mug")
    handle = labels == global_labels("Mug", np.array([1]))[0]  # the handle sticks out at radius > body's
    radius = np.hypot(pts[:, 0], pts[:, 2])
    assert handle.any() and radius[handle].max() > radius[~handle].max()
