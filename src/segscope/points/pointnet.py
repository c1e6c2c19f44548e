"""PointNet part segmentation: shared MLPs, T-Nets, a max-pooled global feature and the category one-hot.

Qi, Su, Mo & Guibas, "PointNet: Deep Learning on Point Sets for 3D Classification and Segmentation",
CVPR 2017 -- the segmentation network of Fig. 2, with the part-segmentation change of the supplementary
(Fig. 9): the one-hot object category is concatenated to the max-pooled global feature.

Per point (``B`` clouds of ``N`` points; "mlp" = a shared 1x1 Conv1d + BatchNorm + ReLU per point)::

    xyz (B, N, 3) --T-Net 3x3--> mlp(64, 64) --T-Net 64x64--> f (B, 64, N)
    f --mlp(64, 128, 1024)--> max over points g (B, 1024);  [g, one-hot (B, 16)] (B, 1040)
    [f, repeat N of [g, one-hot]] (B, 1104, N) --mlp(512, 256, 128, 128)--> 1x1 conv --> logits (B, 50, N)

A T-Net (supplementary) is a mini-PointNet: mlp(64, 128, 1024), max pool, FC 512, FC 256 (BatchNorm + ReLU)
and a linear layer to k*k initialised to the identity. The feature transform A is pulled towards an
orthogonal matrix by L_reg = ||I - A A^T||_F^2, added to the loss with weight 0.001 (Sec. 4.2, Eq. 2).

The logits cover the 50 parts of all 16 ShapeNet-Part categories (as the released code); evaluation keeps
only the shape's category's parts (:func:`segscope.points.train.restrict_to_category`).

Parameters: the paper gives no parameter count for the segmentation network; counted here for ``width=1``,
16 categories and 50 parts (BatchNorm affine terms included): 3,556,539 in all (:data:`PAPER_PARAMETERS`) --
input T-Net 801,097, feature T-Net 1,855,360, point MLPs 146,112, segmentation MLP and classifier 753,970.

Departures: the supplementary's widened layers and skip links of Fig. 9, the auxiliary classification
loss and dropout of the released code are left out; ``width`` (default 1.0, the paper) scales every
hidden channel count for CPU-sized runs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

PAPER_PARAMETERS = 3_556_539  # PointNetPartSeg() with the defaults (counted, the paper gives none)


class PointNetOutput(NamedTuple):
    """``logits`` (B, parts, N); the transforms (B, 3, 3) and (B, 64, 64), or ``None`` when switched off."""

    logits: torch.Tensor
    input_transform: torch.Tensor | None
    feature_transform: torch.Tensor | None


def _channels(c: int, width: float) -> int:
    return max(8, int(round(c * width)))


def shared_mlp(channels: list[int]) -> nn.Sequential:
    """Per-point MLP over (B, C, N): 1x1 Conv1d + BatchNorm1d + ReLU for each consecutive pair."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv1d(c_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class TNet(nn.Module):
    """Predicts a (B, k, k) transform from (B, k, N) point features; starts at the identity."""

    def __init__(self, k: int, width: float = 1.0) -> None:
        super().__init__()
        c64, c128, c1024 = (_channels(c, width) for c in (64, 128, 1024))
        c512, c256 = _channels(512, width), _channels(256, width)
        self.k = k
        self.mlp = shared_mlp([k, c64, c128, c1024])
        self.fc = nn.Sequential(
            nn.Linear(c1024, c512, bias=False),
            nn.BatchNorm1d(c512),
            nn.ReLU(inplace=True),
            nn.Linear(c512, c256, bias=False),
            nn.BatchNorm1d(c256),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Linear(c256, k * k)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.eye(k).flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.mlp(x).amax(dim=2)  # (B, 1024)
        return self.out(self.fc(g)).view(-1, self.k, self.k)  # (B, k, k)


def orthogonality_loss(transform: torch.Tensor) -> torch.Tensor:
    """L_reg = ||I - A A^T||_F^2 of each (k, k) matrix of a (B, k, k) batch, averaged over the batch.

    The paper's Eq. (2); the released code uses TensorFlow's ``l2_loss``, which halves it."""
    eye = torch.eye(transform.shape[-1], dtype=transform.dtype, device=transform.device)
    return ((eye - transform @ transform.transpose(1, 2)) ** 2).sum(dim=(1, 2)).mean()


class PointNetPartSeg(nn.Module):
    """PointNet for part segmentation (Fig. 2 + the category one-hot of the supplementary).

    Parameters
    ----------
    num_parts : outputs per point (50: all ShapeNet-Part parts).
    num_categories : length of the object-category one-hot (16).
    width : multiplier of every hidden channel count (1.0 = the paper's 64/128/1024).
    input_transform, feature_transform : use the 3x3 and the 64x64 T-Net.

    ``forward(points (B, N, 3), category (B,) int64) -> PointNetOutput`` with logits (B, num_parts, N).
    """

    def __init__(
        self,
        num_parts: int = 50,
        num_categories: int = 16,
        *,
        width: float = 1.0,
        input_transform: bool = True,
        feature_transform: bool = True,
    ) -> None:
        super().__init__()
        c = {k: _channels(k, width) for k in (64, 128, 256, 512, 1024)}
        self.num_parts, self.num_categories, self.width = num_parts, num_categories, width
        self.input_tnet = TNet(3, width) if input_transform else None
        self.mlp1 = shared_mlp([3, c[64], c[64]])
        self.feature_tnet = TNet(c[64], width) if feature_transform else None
        self.mlp2 = shared_mlp([c[64], c[128], c[1024]])
        self.seg = shared_mlp([c[64] + c[1024] + num_categories, c[512], c[256], c[128], c[128]])
        self.classifier = nn.Conv1d(c[128], num_parts, 1)

    def forward(self, points: torch.Tensor, category: torch.Tensor) -> PointNetOutput:
        if points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
        n = points.shape[1]
        x = points.transpose(1, 2)  # (B, 3, N)
        a_in = a_feat = None
        if self.input_tnet is not None:
            a_in = self.input_tnet(x)  # (B, 3, 3)
            x = torch.bmm(a_in.transpose(1, 2), x)  # (x^T A)^T: points @ A as in the paper's code
        f = self.mlp1(x)  # (B, 64, N)
        if self.feature_tnet is not None:
            a_feat = self.feature_tnet(f)  # (B, 64, 64)
            f = torch.bmm(a_feat.transpose(1, 2), f)
        g = self.mlp2(f).amax(dim=2)  # (B, 1024) global feature
        one_hot = nn.functional.one_hot(category, self.num_categories).to(g.dtype)  # (B, 16)
        g = torch.cat([g, one_hot], dim=1)[:, :, None].expand(-1, -1, n)  # (B, 1040, N)
        h = self.seg(torch.cat([f, g], dim=1))  # (B, 1104, N) -> (B, 128, N)
        return PointNetOutput(self.classifier(h), a_in, a_feat)  # logits (B, 50, N)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
