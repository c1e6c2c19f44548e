"""Tiny on-disk datasets for the bench and report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import write_folder_dataset

LEVELS = (40, 128, 215)  # grey value of each class in the multi-class images


def write_multiclass_dataset(root: Path, n: int = 6, size: int = 24, seed: int = 0) -> Path:
    """Folder dataset with 3 classes: random blocks of three grey levels plus noise (``dataset.yaml``)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        blocks = rng.integers(0, 3, (size // 6, size // 6))
        mask = np.kron(blocks, np.ones((6, 6), np.int64)).astype(np.uint8)
        image = (np.array(LEVELS)[mask] + rng.normal(0, 20, mask.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"m{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"m{i:02d}.png")
    (root / "dataset.yaml").write_text("classes: [dark, mid, bright]\n")
    return root


def write_train_val_dataset(root: Path) -> Path:
    """A folder dataset with its own ``train/`` (6 images) and ``val/`` (3 images) splits."""
    write_folder_dataset(root / "train", n=6, seed=1)
    write_folder_dataset(root / "val", n=3, seed=2)
    for i, path in enumerate(sorted((root / "val" / "images").iterdir())):  # distinct stems from train
        path.rename(path.with_name(f"val{i}.png"))
        (root / "val" / "masks" / path.name).rename(root / "val" / "masks" / f"val{i}.png")
    return root
