"""segmentation_models_pytorch's losses as an independent reference, on random inputs."""

from __future__ import annotations

import pytest
import torch

from segscope import losses as L
from tests.losses.helpers import random_case

smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")


@pytest.mark.parametrize("seed", range(3))
def test_dice(seed):
    # smp zeroes the loss of classes absent from the target; random_case has every class present
    logits, target = random_case(n=2, c=4, h=8, w=9, seed=seed)
    ref = smp_losses.DiceLoss("multiclass", smooth=0.0, ignore_index=255)(logits, target)
    assert L.soft_dice_loss(logits, target, smooth=0).item() == pytest.approx(ref.item(), abs=1e-6)


@pytest.mark.parametrize(("alpha", "beta"), [(0.3, 0.7), (0.5, 0.5), (0.8, 0.2)])
def test_tversky(alpha, beta):
    logits, target = random_case(n=2, c=3, h=8, w=9, seed=1)
    ref = smp_losses.TverskyLoss("multiclass", alpha=alpha, beta=beta, ignore_index=255)(logits, target)
    got = L.tversky_loss(logits, target, alpha=alpha, beta=beta, smooth=0)
    assert got.item() == pytest.approx(ref.item(), abs=1e-6)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("seed", range(2))
def test_lovasz_softmax(per_image, seed):
    logits, target = random_case(n=3, c=4, h=8, w=9, seed=seed)
    logits = logits.float()  # smp's Lovász needs float32
    ref = smp_losses.LovaszLoss("multiclass", per_image=per_image, ignore_index=255)(logits, target)
    got = L.lovasz_softmax_loss(logits, target, per_image=per_image)
    assert got.item() == pytest.approx(ref.item(), abs=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 2.0, 3.5])
def test_focal_two_class_softmax_is_binary_sigmoid_focal(gamma):
    # softmax over logits (0, z) is sigmoid(z): smp's binary focal loss on z is the same loss
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 1, 6, 7, generator=g, dtype=torch.float64)
    target = torch.randint(0, 2, (2, 6, 7), generator=g)
    ref = smp_losses.FocalLoss("binary", gamma=gamma)(z, target.unsqueeze(1).double())
    got = L.focal_loss(torch.cat([torch.zeros_like(z), z], 1), target, gamma=gamma)
    assert got.item() == pytest.approx(ref.item(), abs=1e-6)
