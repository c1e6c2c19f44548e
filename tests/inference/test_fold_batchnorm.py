"""BatchNorm folding: every conv/transposed-conv -> BN pair goes; the logits stay those of the eval model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segscope.factory import create_model
from segscope.inference import InferenceModel, fold_batchnorm
from tests.conftest import randomise_batchnorm


def test_transposed_convolution_and_batchnorm_fold_exactly():
    torch.manual_seed(0)
    block = nn.Sequential(nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU())
    randomise_batchnorm(block)
    folded = fold_batchnorm(block)
    assert isinstance(folded[1], nn.Identity) and isinstance(folded[0], nn.ConvTranspose2d)
    x = torch.randn(2, 4, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), block.eval()(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["deconvnet_vgg16", "deeplabv3plus_efficientnet_lite0"])
def test_no_batchnorm_is_left_and_the_logits_are_kept(name):
    torch.manual_seed(0)
    options = {"width": 0.125} if name == "deconvnet_vgg16" else {}
    model = create_model(name, num_classes=3, in_channels=3, **options).eval()
    randomise_batchnorm(model)
    before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded = fold_batchnorm(model)
    left = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert before > 0 and left == 0, f"{name}: {left} of {before} BatchNorms left unfolded"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(InferenceModel(model)(x), model(x), atol=1e-4, rtol=1e-4)
