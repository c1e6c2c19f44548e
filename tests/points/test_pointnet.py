"""PointNet: the orthogonality regulariser by hand, T-Net start, output shapes, the paper's parameter count
(counted by hand from the architecture) and permutation equivariance of the per-point outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segscope.points.pointnet import (
    PAPER_PARAMETERS,
    PointNetPartSeg,
    TNet,
    count_parameters,
    orthogonality_loss,
)


def test_orthogonality_loss_by_hand():
    a = torch.tensor([[1.0, 2.0], [0.0, 1.0]])  # A A^T = [[5, 2], [2, 1]]; I - A A^T = [[-4, -2], [-2, 0]]
    assert orthogonality_loss(a[None]).item() == pytest.approx(16 + 4 + 4)
    rotation = torch.tensor([[0.6, -0.8], [0.8, 0.6]])
    assert orthogonality_loss(rotation[None]).item() == pytest.approx(0.0, abs=1e-12)
    assert orthogonality_loss(torch.stack([a, rotation])).item() == pytest.approx(12.0)  # batch mean
    q, _ = torch.linalg.qr(torch.randn(64, 64, dtype=torch.float64))
    assert orthogonality_loss(q[None]).item() == pytest.approx(0.0, abs=1e-20)


def test_tnet_starts_at_identity():
    tnet = TNet(3, width=0.25).eval()
    out = tnet(torch.randn(4, 3, 50))
    assert torch.equal(out, torch.eye(3).expand(4, 3, 3))


def _hand_count() -> int:
    def mlp(*c):  # 1x1 conv without bias + BatchNorm (weight, bias)
        return sum(a * b + 2 * b for a, b in zip(c[:-1], c[1:]))

    def tnet(k):
        return mlp(k, 64, 128, 1024) + mlp(1024, 512, 256) + 256 * k * k + k * k

    return (
        tnet(3)
        + mlp(3, 64, 64)
        + tnet(64)
        + mlp(64, 128, 1024)
        + mlp(64 + 1024 + 16, 512, 256, 128, 128)
        + (128 * 50 + 50)
    )


def test_paper_configuration_parameter_count():
    assert count_parameters(PointNetPartSeg()) == _hand_count() == PAPER_PARAMETERS == 3_556_539


def test_forward_shapes():
    model = PointNetPartSeg(width=0.25)
    out = model(torch.randn(2, 100, 3), torch.tensor([0, 15]))
    assert out.logits.shape == (2, 50, 100)
    assert out.input_transform.shape == (2, 3, 3) and out.feature_transform.shape == (2, 16, 16)
    plain = PointNetPartSeg(width=0.25, input_transform=False, feature_transform=False)
    out = plain(torch.randn(2, 7, 3), torch.tensor([1, 2]))
    assert out.logits.shape == (2, 50, 7) and out.input_transform is None and out.feature_transform is None
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        model(torch.randn(2, 3, 100), torch.tensor([0, 1]))


def test_per_point_outputs_are_permutation_equivariant():
    torch.manual_seed(0)
    model = PointNetPartSeg(width=0.25)
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    points = torch.randn(1, 300, 3)
    perm = torch.from_numpy(np.random.default_rng(0).permutation(300))
    category = torch.tensor([4])
    with torch.no_grad():
        logits = model(points, category).logits
        permuted = model(points[:, perm], category).logits
    torch.testing.assert_close(permuted, logits[:, :, perm], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(logits[0, :, 0], logits[0, :, 1])  # per point, not one answer for all
