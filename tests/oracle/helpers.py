"""A toy oracle whose quality is the exact soft Dice with a known mask, and tiny fixtures."""

from __future__ import annotations

import numpy as np
import torch

from segscope.oracle.network import QualityOracle, resize_to


class DiceOracle(QualityOracle):
    """q(image, m) = soft Dice of m (at the oracle size) with a fixed target: a differentiable toy."""

    def __init__(self, target: np.ndarray, size: int = 32) -> None:
        super().__init__(1, base_channels=2, depth=1, size=size, classes=[1], num_classes=2)
        small = resize_to(torch.from_numpy(target.astype(np.float32))[None, None], size)[0, 0]
        self.register_buffer("target", (small > 0.5).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x[:, self.in_channels]  # (N, S, S)
        inter = (m * self.target).sum((1, 2))
        return 2 * inter / (m.sum((1, 2)) + self.target.sum() + 1e-6)


class ConstantOracle(QualityOracle):
    """q = 0.5 whatever the mask: zero gradient."""

    def __init__(self) -> None:
        super().__init__(1, base_channels=2, depth=1, size=16, classes=[1], num_classes=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, 0] * 0 + 0.5


def disc(size: int, radius: float, centre: tuple[float, float] | None = None) -> np.ndarray:
    cy, cx = centre or ((size - 1) / 2, (size - 1) / 2)
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def grey_image(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (60 + 120 * mask + rng.normal(0, 10, mask.shape)).clip(0, 255).astype(np.uint8)[..., None]


def write_three_class_dataset(root, n: int = 3):
    """``n`` 32x32 grey images of two bright boxes (classes 1 and 2) on background 0, folder layout."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        labels = np.zeros((32, 32), np.uint8)
        labels[4 + i : 14 + i, 4:14] = 1
        labels[18:28, 16 + i : 28] = 2
        image = (40 + 90 * labels + rng.normal(0, 8, labels.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"m{i}.png")
        Image.fromarray(labels).save(root / "masks" / f"m{i}.png")
    return root
