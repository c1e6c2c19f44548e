"""The quality oracle q(image, soft mask) -> predicted Dice/IoU in [0, 1], and its run directory.

References
----------
K. Fernandes, R. Cruz and J. S. Cardoso, "Deep image segmentation by quality inference", IJCNN 2018:
a network that scores an (image, segmentation) pair, trained by regression on masks of known quality,
then used to improve a segmentation by gradient ascent on its score (:mod:`segscope.oracle.refine`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segscope.engine.checkpoint import load_weights, save_weights
from segscope.errors import UserError
from segscope.io import write_json_atomic

WEIGHTS = "oracle.safetensors"
META = "oracle.json"


def _block(cin: int, cout: int, convs: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class QualityOracle(nn.Module):
    """Predict the quality (Dice or IoU with the unseen true mask) of a soft mask for an image.

    The input ``x`` is ``(N, C + 1 [+ T], S, S)``: the standardised image (``C`` channels, see
    :meth:`prepare_image`), the soft mask in [0, 1], and, for an oracle of ``T > 1`` target classes
    (one-vs-rest), ``T`` constant one-hot planes saying which class the mask is for. Inside, the image
    is split into a foreground stream ``image * mask`` and a background stream ``image * (1 - mask)``
    which are concatenated with the image and mask; ``depth`` blocks of conv3x3-BN-ReLU layers (one in
    the first, full-size block, two in the others), each but the first after a 2x2 max-pool, channels
    doubling from ``base_channels``, are followed by global average and max
    pooling and an MLP with a sigmoid output. ``forward`` returns ``(N,)`` qualities.

    Parameters
    ----------
    in_channels : image channels (1 grey, 3 RGB).
    num_targets : classes the oracle scores (1 for a binary task's foreground).
    base_channels, depth : width and number of pooling stages of the encoder.
    size : side of the square input the oracle was trained at (128 as in the paper).
    quality : ``"dice"`` or ``"iou"``, the score it predicts.
    classes : dataset class indices the targets stand for (default ``0 .. T-1``).
    num_classes : classes of the dataset it was trained on.

    References
    ----------
    Fernandes, Cruz & Cardoso, "Deep image segmentation by quality inference", IJCNN 2018. The authors'
    code feeds the image masked by the foreground and by the background as two interacting streams at
    128x128 and trains with MSE; departures: the two streams are concatenated (with the raw image and
    mask) into one small BatchNorm encoder instead of two Keras towers, images are standardised per
    image, and a multi-class task is handled one-vs-rest by class-indicator planes in one network.
    """

    def __init__(
        self,
        in_channels: int = 1,
        *,
        num_targets: int = 1,
        base_channels: int = 16,
        depth: int = 4,
        size: int = 128,
        quality: str = "dice",
        classes: list[int] | None = None,
        num_classes: int = 2,
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_targets < 1 or base_channels < 1 or depth < 1:
            raise ValueError("in_channels, num_targets, base_channels and depth must be >= 1")
        if size < 2**depth:
            raise ValueError(f"size {size} is too small for depth {depth} (needs >= {2**depth})")
        self.in_channels, self.num_targets = int(in_channels), int(num_targets)
        self.base_channels, self.depth, self.size = int(base_channels), int(depth), int(size)
        self.quality = quality
        self.classes = list(range(num_targets)) if classes is None else [int(c) for c in classes]
        if len(self.classes) != self.num_targets:
            raise ValueError(f"{len(self.classes)} classes given for {num_targets} targets")
        self.num_classes = int(num_classes)
        cond = self.num_targets if self.num_targets > 1 else 0
        cin = 3 * self.in_channels + 1 + cond  # image, image*m, image*(1-m), m, class planes
        blocks, width = [], self.base_channels
        for i in range(self.depth):
            blocks.append(_block(cin, width, convs=1 if i == 0 else 2))  # one conv at full size: speed
            cin, width = width, width * 2
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Linear(2 * cin, cin), nn.ReLU(inplace=True), nn.Linear(cin, 1))

    @property
    def input_channels(self) -> int:
        """Channels of ``x`` in :meth:`forward`."""
        return self.in_channels + 1 + (self.num_targets if self.num_targets > 1 else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.input_channels:
            raise ValueError(f"oracle expects (N, {self.input_channels}, H, W) input, got {tuple(x.shape)}")
        c = self.in_channels
        image, mask, cond = x[:, :c], x[:, c : c + 1], x[:, c + 1 :]
        h = torch.cat([image, image * mask, image * (1 - mask), mask, cond], 1)  # (N, 3C+1+T, S, S)
        for i, block in enumerate(self.blocks):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
        pooled = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)  # (N, 2F)
        return torch.sigmoid(self.head(pooled)[:, 0])  # (N,)

    # -- inputs from arrays ---------------------------------------------------------------------------
    def target_index(self, class_index: int | None) -> int:
        """Position of dataset class ``class_index`` among the oracle's targets (``None``: the only one)."""
        if class_index is None:
            if self.num_targets != 1:
                raise ValueError(f"this oracle scores classes {self.classes}; say which one")
            return 0
        if int(class_index) not in self.classes:
            raise UserError(f"the oracle scores classes {self.classes}, not class {class_index}")
        return self.classes.index(int(class_index))

    def prepare_image(self, image: np.ndarray) -> torch.Tensor:
        """``(H, W[, C])`` uint8 image -> ``(C, S, S)`` float32 (see :func:`prepare_image`)."""
        return prepare_image(image, self.size, self.in_channels)

    def class_planes(self, target: int) -> torch.Tensor:
        """``(T, S, S)`` one-hot planes for target ``target`` (empty for a single-target oracle)."""
        planes = torch.zeros((self.num_targets if self.num_targets > 1 else 0, self.size, self.size))
        if self.num_targets > 1:
            planes[target] = 1.0
        return planes

    def score(self, image: np.ndarray, mask: np.ndarray, class_index: int | None = None) -> float:
        """Predicted quality of ``mask`` (``(H, W)`` in [0, 1]) for ``image`` at any size."""
        device = next(self.parameters()).device
        m = torch.as_tensor(np.asarray(mask, np.float32))[None, None]
        x = torch.cat(
            [
                self.prepare_image(image)[None],
                resize_to(m, self.size),
                self.class_planes(self.target_index(class_index))[None],
            ],
            1,
        ).to(device)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            q = float(self(x)[0])
        self.train(was_training)
        return q

    def score_labels(self, image: np.ndarray, labels: np.ndarray) -> float:
        """Predicted quality of a label map: the mean over the scored classes of :meth:`score` of its
        class masks."""
        return float(np.mean([self.score(image, labels == c, class_index=c) for c in self.classes]))

    def config(self) -> dict[str, Any]:
        """Constructor arguments, for ``oracle.json``."""
        return {
            "in_channels": self.in_channels,
            "num_targets": self.num_targets,
            "base_channels": self.base_channels,
            "depth": self.depth,
            "size": self.size,
            "quality": self.quality,
            "classes": self.classes,
            "num_classes": self.num_classes,
        }


def prepare_image(image: np.ndarray, size: int, in_channels: int) -> torch.Tensor:
    """``(H, W[, C])`` uint8 image -> ``(C, size, size)`` float32, resized and standardised per channel."""
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] != in_channels:
        raise UserError(f"image has shape {image.shape}; the oracle expects {in_channels} channel(s)")
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None] / 255.0
    x = resize_to(x, size)[0]
    mean, std = x.mean((1, 2), keepdim=True), x.std((1, 2), keepdim=True)
    return (x - mean) / std.clamp_min(1e-3)


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, antialiased (differentiable) resize of ``(N, C, H, W)`` to ``(N, C, size, size)``."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


# -- run directory --------------------------------------------------------------------------------------
def save_oracle(oracle: QualityOracle, run_dir: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``oracle.safetensors`` then ``oracle.json`` (config + ``info``) to ``run_dir``, atomically."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_weights(run_dir / WEIGHTS, oracle, epoch=int((info or {}).get("epochs", 0)))
    write_json_atomic(run_dir / META, {"kind": "quality_oracle", **(info or {}), "oracle": oracle.config()})
    return run_dir


def read_oracle_meta(run_dir: str | Path) -> dict[str, Any]:
    """The contents of ``RUN_DIR/oracle.json``; :class:`UserError` if it is not an oracle run."""
    path = Path(run_dir) / META
    if not path.is_file():
        raise UserError(f"{run_dir}: not an oracle run (no {META}; train one with `segscope refine train`)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: corrupt oracle metadata ({exc.msg})") from None
    if "oracle" not in meta:
        raise UserError(f"{path}: no oracle configuration in this file")
    return meta


def load_oracle(run_dir: str | Path, *, device: str | torch.device = "cpu") -> QualityOracle:
    """Rebuild the oracle that :func:`save_oracle` (or ``train_oracle``) wrote, in eval mode."""
    meta = read_oracle_meta(run_dir)
    try:
        oracle = QualityOracle(**meta["oracle"])
    except (TypeError, ValueError) as exc:
        raise UserError(f"{Path(run_dir) / META}: bad oracle configuration ({exc})") from None
    load_weights(Path(run_dir) / WEIGHTS, oracle)
    return oracle.to(device).eval()
