import pytest
import torch

from segscope import create_model
from segscope.inference import InferenceModel, fold_batchnorm

smp = pytest.importorskip("segmentation_models_pytorch")


@pytest.mark.parametrize("encoder, in_channels", [("resnet18", 3), ("resnet34", 1)])
def test_same_logits_as_smp_unet_on_the_same_weights(encoder, in_channels):
    torch.manual_seed(0)
    peer = smp.Unet(encoder, encoder_weights=None, classes=5, in_channels=in_channels).eval()
    ours = create_model(f"unet_{encoder}", num_classes=5, in_channels=in_channels).eval()
    ours.load_state_dict(peer.state_dict())  # strict: identical module layout
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in peer.parameters())
    x = torch.randn(2, in_channels, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), peer(x))


def test_odd_sizes_and_gradients():
    model = create_model("unet_resnet18", num_classes=3)
    x = torch.randn(1, 3, 45, 71)
    out = model(x)
    assert out.shape == (1, 3, 45, 71)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_folded_batchnorm_gives_the_same_logits():
    torch.manual_seed(0)
    model = create_model("unet_resnet18", num_classes=4)
    with torch.no_grad():  # non-trivial running statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(InferenceModel(model)(x), model(x), atol=1e-4, rtol=1e-4)
