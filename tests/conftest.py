"""Shared fixtures: tiny synthetic datasets on disk and the location of the real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch import nn

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """Path of a real dataset in ../shared/data, skipping the test when it is absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data not available: {path}")
    return path


def make_disc_images(n: int, size: int = 48, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grey images of one bright disc on a dark noisy background, with its 0/1 mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        r = rng.integers(size // 8, size // 4)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)
        image = (60 + 120 * mask + rng.normal(0, 12, mask.shape)).clip(0, 255).astype(np.uint8)
        out.append((image, mask))
    return out


def write_folder_dataset(root: Path, n: int = 8, size: int = 48, seed: int = 0) -> Path:
    """A folder-layout binary dataset (images/ + masks/ with 0/255 masks)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (image, mask) in enumerate(make_disc_images(n, size, seed)):
        Image.fromarray(image).save(root / "images" / f"img{i:02d}.png")
        Image.fromarray(mask * 255).save(root / "masks" / f"img{i:02d}.png")
    return root


@pytest.fixture
def disc_dataset(tmp_path: Path) -> Path:
    return write_folder_dataset(tmp_path / "discs")


def randomise_batchnorm(model: nn.Module) -> None:
    """Non-trivial BatchNorm statistics and affine terms, so a wrong key map or fold cannot hide behind
    identity BatchNorms."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def make_ball_volume(shape=(16, 32, 32), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A ``(D, H, W)`` uint8 volume with two bright balls in noise and its 0/1 label volume."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.uint8)
    for _ in range(2):
        c = [int(rng.integers(s // 4, 3 * s // 4)) for s in shape]
        r = min(shape) // 4
        labels[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r**2] = 1
    image = (60 + 120 * labels + rng.normal(0, 10, shape)).clip(0, 255).astype(np.uint8)
    return image, labels


def write_volume_dataset(root: Path, n: int = 3, shape=(16, 32, 32)) -> Path:
    """A volume layout: ``images/vol<i>.npy`` + ``masks/vol<i>.npy`` (0/1 labels)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image, labels = make_ball_volume(shape, seed=i)
        np.save(root / "images" / f"vol{i}.npy", image)
        np.save(root / "masks" / f"vol{i}.npy", labels)
    return root
