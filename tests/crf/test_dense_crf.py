"""Dense CRF (Krähenbühl & Koltun 2011): the NumPy permutohedral lattice against an exact Gaussian filter,
the NumPy backend against pydensecrf, edge snapping, and the ``crf`` stage's save/load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import segscope
from segscope.crf import CRFStage, PermutohedralLattice, dense_crf
from segscope.crf.dense_crf import pydensecrf_available
from segscope.data import open_dataset
from segscope.errors import UserError
from segscope.factory import create_segmenter, get_entry, split_options
from segscope.stages import StagedSegmenter, build_stage
from tests.conftest import write_folder_dataset

BACKENDS = [
    "numpy",
    pytest.param(
        "pydensecrf",
        marks=pytest.mark.skipif(
            not pydensecrf_available(), reason="pydensecrf (pip pydensecrf2) not installed"
        ),
    ),
]


@pytest.mark.parametrize(("dim", "min_corr", "max_err"), [(2, 0.995, 0.05), (5, 0.985, 0.15)])
def test_lattice_matches_exact_gaussian_filter(dim, min_corr, max_err):
    rng = np.random.default_rng(0)
    f = rng.normal(size=(300, dim)) * 2.0
    values = np.stack([np.sin(f[:, 0]), (f[:, -1] > 0).astype(float), f[:, 0] * f[:, -1]], axis=1)
    weights = np.exp(-((f[:, None] - f[None]) ** 2).sum(-1) / 2)  # includes j = i
    exact = weights @ values / weights.sum(1, keepdims=True)
    lattice = PermutohedralLattice(f)
    approx = lattice.filter(values) / lattice.filter(np.ones(300))[:, None]
    # measured (seed 0), per column: correlation >= 0.9985 (d=2), >= 0.990 (d=5); mean |error| / std of
    # the exact result <= 0.031 (d=2), <= 0.132 (d=5); worst point |error| / max |exact| 0.21 / 0.32
    for k in range(values.shape[1]):
        assert np.corrcoef(approx[:, k], exact[:, k])[0, 1] > min_corr
        assert np.abs(approx[:, k] - exact[:, k]).mean() < max_err * exact[:, k].std()
    assert lattice.filter(values[:, 0]).shape == (300,)


def test_lattice_far_apart_points():
    """Features too spread for one int64 key code use the row-hash path; isolated points keep their value."""
    f = np.random.default_rng(0).normal(size=(50, 5)) * 1e5
    lattice = PermutohedralLattice(f)
    assert lattice._radix is None
    values = np.arange(100.0).reshape(50, 2)
    np.testing.assert_allclose(lattice.filter(values) / lattice.filter(np.ones(50))[:, None], values)


def two_regions(h: int = 40, w: int = 50, edge: int = 25, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3))
    image[:, :edge], image[:, edge:] = (180, 70, 50), (40, 110, 190)
    return (image + rng.normal(0, 6, image.shape)).clip(0, 255).astype(np.uint8)


@pytest.mark.skipif(not pydensecrf_available(), reason="pydensecrf (pip pydensecrf2) not installed")
def test_backends_agree():
    rng = np.random.default_rng(1)
    image = two_regions()
    truth = np.broadcast_to(np.arange(50) >= 25, (40, 50))
    p = np.clip(np.where(truth, 0.7, 0.3) + rng.normal(0, 0.25, truth.shape), 0.01, 0.99)
    noisy = np.stack([1 - p, p, np.full_like(p, 0.2)])
    noisy /= noisy.sum(0)
    for iterations in (1, 5):
        a = dense_crf(image, noisy, iterations=iterations, backend="numpy")
        b = dense_crf(image, noisy, iterations=iterations, backend="pydensecrf")
        # measured: max |a - b| < 1e-6 (float32 vs float64 of the same lattice), argmax identical
        assert np.abs(a - b).max() < 1e-4
        assert (a.argmax(0) == b.argmax(0)).mean() > 0.99
    assert (a.argmax(0) == truth).mean() > 0.99 > (noisy.argmax(0) == truth).mean()


@pytest.mark.parametrize("backend", BACKENDS)
def test_snaps_blurred_boundary_to_image_edge(backend):
    image = two_regions()
    ramp = np.broadcast_to(1 / (1 + np.exp(-(np.arange(50) - 19.5) / 3)), (40, 50))
    proba = np.stack([1 - ramp, ramp])
    assert np.all((proba.argmax(0) == 0).sum(1) == 20)
    labels = dense_crf(image, proba, iterations=5, backend=backend).argmax(0)
    assert np.all(np.abs((labels == 0).sum(1) - 25) <= 1)  # measured: exactly 25 on every row


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_iterations_and_normalisation(backend):
    rng = np.random.default_rng(2)
    proba = rng.random((3, 12, 15)) + 0.05
    proba *= 0.9 / proba.sum(0)  # scores summing to 0.9: the output is renormalised
    grey = rng.integers(0, 256, (12, 15), dtype=np.uint8)  # grey: replicated to 3 channels
    q0 = dense_crf(grey, proba, iterations=0, backend=backend)
    np.testing.assert_allclose(q0, proba / 0.9, atol=1e-6)
    q = dense_crf(grey, proba, iterations=3, backend=backend)
    assert q.shape == proba.shape and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(0), 1, atol=1e-5)


def test_shape_errors():
    image = np.zeros((10, 12, 3), np.uint8)
    with pytest.raises(ValueError, match=r"image must be .* got \(10, 11, 3\)"):
        dense_crf(image[:, :11], np.ones((2, 10, 12)))
    with pytest.raises(ValueError, match="proba must be"):
        dense_crf(image, np.ones((10, 12)))
    with pytest.raises(ValueError, match="backend"):
        dense_crf(image, np.ones((2, 10, 12)), backend="cuda")


def test_crf_option_places_stage(tmp_path: Path):
    sections = split_options(get_entry("otsu"), {"crf": {"iterations": 2}})
    assert sections.model == {} and sections.stages == [{"kind": "crf", "iterations": 2}]
    options = {"postprocess": ["remove_small_objects"], "crf": True, "refine_oracle": "o", "epochs": 1}
    kinds = [s["kind"] for s in split_options(get_entry("unet"), options).stages]
    assert kinds == ["oracle", "crf", "postprocess"]
    assert split_options(get_entry("otsu"), {"crf": False}).stages == []
    with pytest.raises(UserError, match="crf"):
        split_options(get_entry("otsu"), {"crf": 3})


def test_stage_round_trip(tmp_path: Path):
    ds = open_dataset(write_folder_dataset(tmp_path / "d", n=3, size=32))
    seg = create_segmenter("otsu", num_classes=2, crf={"iterations": 3, "backend": "numpy"})
    assert isinstance(seg, StagedSegmenter) and seg.name == "otsu+crf"
    seg.fit(ds, progress=False)
    run = seg.save(tmp_path / "run")
    stages = json.loads((run / "segmenter.json").read_text())["stages"]
    assert stages == [{"kind": "crf", **CRFStage(iterations=3, backend="numpy").options}]
    again = segscope.load(run)
    assert isinstance(again, StagedSegmenter) and isinstance(again.stages[0], CRFStage)
    image = ds.load_image(0)
    np.testing.assert_array_equal(again.predict(image), seg.predict(image))
    np.testing.assert_allclose(again.predict_proba(image), seg.predict_proba(image))
    with pytest.raises(UserError, match=r"^stage crf: unknown option\(s\) sxy") as err:
        build_stage({"kind": "crf", "sxy": 3})
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="^stage crf: iterations"):
        create_segmenter("otsu", num_classes=2, crf={"iterations": -1})
    with pytest.raises(UserError, match="^stage crf: bilateral_srgb must be > 0"):
        CRFStage(bilateral_srgb=0)
