"""ReNet layers (sweeps, batching vs a per-column loop) and ReSeg (CamVid configuration, count, sizes)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segscope.models import count_parameters
from segscope.models.layers.renet import ReNetLayer, patchify
from segscope.models.semantic.reseg import ReSeg, VGGConv33, reseg_vgg16
from segscope.registry import REGISTRY


@pytest.fixture(scope="module")
def camvid_model() -> ReSeg:
    torch.manual_seed(0)
    return reseg_vgg16(11).eval()


def test_renet_output_shape_and_patches() -> None:
    x = torch.randn(2, 5, 8, 12)
    assert ReNetLayer(5, 7)(x).shape == (2, 14, 8, 12)
    assert ReNetLayer(5, 7, patch_size=2)(x).shape == (2, 14, 4, 6)
    assert ReNetLayer(5, 3, patch_size=(4, 3), rnn="lstm")(x).shape == (2, 6, 2, 4)
    # a 2x2 patch is flattened channel-major, the order of pixel_unshuffle
    assert torch.equal(patchify(x, (2, 2)), nn.functional.pixel_unshuffle(x, 2))
    with pytest.raises(ValueError, match="multiple"):
        ReNetLayer(5, 7, patch_size=3)(x)


def test_vertical_sweep_reaches_the_whole_column_and_only_it() -> None:
    torch.manual_seed(0)
    layer = ReNetLayer(3, 4).eval()
    x = torch.randn(1, 3, 6, 5)
    top = x.clone()
    top[0, :, 0, 2] += 1.0  # a pixel at the top of column 2
    with torch.no_grad():
        delta = (layer.sweep_vertical(top) - layer.sweep_vertical(x)).abs()
        full = (layer(top) - layer(x)).abs()
    assert delta[0, :, -1, 2].max() > 1e-4  # the bottom of the same column changes
    assert delta[0, :, :, [0, 1, 3, 4]].max() == 0  # other columns do not, after the vertical sweep alone
    assert full[0, :, :, [0, 1, 3, 4]].amax(dim=0).min() > 0  # the horizontal sweep then spreads it
    middle = x.clone()
    middle[0, :, 3, 1] += 1.0  # row 3: the top-down RNN (first 4 channels) above it does not see it
    with torch.no_grad():
        delta = (layer.sweep_vertical(middle) - layer.sweep_vertical(x)).abs()
    assert delta[0, :4, :3, 1].max() == 0 and delta[0, :4, 3:, 1].amax(dim=0).min() > 0
    assert delta[0, 4:, :4, 1].amax(dim=0).min() > 0 and delta[0, 4:, 4:, 1].max() == 0  # bottom-up


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_batched_sweeps_equal_a_per_column_then_per_row_loop(rnn: str) -> None:
    torch.manual_seed(0)
    layer = ReNetLayer(3, 4, patch_size=2, rnn=rnn).eval()
    x = torch.randn(2, 3, 8, 6)
    with torch.no_grad():
        patches = patchify(x, (2, 2))  # (2, 12, 4, 3)
        n, _, h, w = patches.shape
        vertical = torch.zeros(n, 8, h, w)
        for b in range(n):
            for j in range(w):  # one column at a time: a length-H sequence of patch vectors
                out, _ = layer.vertical_rnn(patches[b, :, :, j].T[None])
                vertical[b, :, :, j] = out[0].T
        reference = torch.zeros(n, 8, h, w)
        for b in range(n):
            for i in range(h):  # one row at a time over the vertical result
                out, _ = layer.horizontal_rnn(vertical[b, :, i, :].T[None])
                reference[b, :, i, :] = out[0].T
        batched = layer(x)
    assert batched.shape == reference.shape == (2, 8, 4, 3)
    torch.testing.assert_close(batched, reference, atol=1e-6, rtol=1e-5)


def test_camvid_configuration(camvid_model: ReSeg) -> None:
    convs = [m for m in camvid_model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256]  # conv1_1 ... conv3_3
    assert sum(isinstance(m, nn.MaxPool2d) for m in camvid_model.encoder.modules()) == 2
    assert isinstance(camvid_model.encoder.features[-1], nn.ReLU) and camvid_model.stride == (4, 4)
    renets = list(camvid_model.renet)
    assert [(r.hidden, r.patch_size) for r in renets] == [(100, (1, 1)), (100, (1, 1))]
    assert all(isinstance(r.vertical_rnn, nn.GRU) for r in renets)
    deconvs = [m for m in camvid_model.upsampling if isinstance(m, nn.ConvTranspose2d)]
    assert [(d.out_channels, d.kernel_size, d.stride) for d in deconvs] == [(50, (2, 2), (2, 2))] * 2
    assert camvid_model.classifier.kernel_size == (1, 1) and camvid_model.classifier.out_channels == 11


def test_parameter_count_matches_the_hand_count(camvid_model: ReSeg) -> None:
    vgg = 0
    for cin, cout in [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256)]:
        vgg += 9 * cin * cout + cout
    assert vgg == 1_735_488

    def gru(inputs: int, units: int = 100, biases: int = 2) -> int:  # one bidirectional GRU
        return 2 * 3 * (inputs * units + units * units + biases * units)

    renet = gru(256) + gru(200) + gru(200) + gru(200)
    assert renet == 396_000 + 362_400
    upsampling = (200 * 50 * 4 + 50) + (50 * 50 * 4 + 50)
    classifier = 50 * 11 + 11
    assert count_parameters(camvid_model) == vgg + renet + upsampling + classifier == 2_544_549
    lasagne = vgg + sum(gru(i, biases=1) for i in (256, 200, 200, 200)) + upsampling + classifier
    assert count_parameters(camvid_model) - lasagne == 8 * 300  # one bias per gate in the original


def test_output_at_camvid_size_and_odd_size(camvid_model: ReSeg) -> None:
    with torch.no_grad():
        assert camvid_model(torch.randn(1, 3, 176, 240)).shape == (1, 11, 176, 240)
        assert camvid_model(torch.randn(1, 3, 69, 67)).shape == (1, 11, 69, 67)  # padded to 72x68, cropped
    model = reseg_vgg16(3, patch_sizes=(2, 1), upsampling_strides=(2, 2, 2), upsampling_filters=(8, 8, 8))
    model = model.eval()
    assert model.stride == (8, 8)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 37, 45)).shape == (2, 3, 37, 45)


def test_inconsistent_strides_are_refused() -> None:
    with pytest.raises(ValueError, match="stride"):
        reseg_vgg16(3, patch_sizes=(2, 1))  # total stride 8, up-sampling 2 x 2 = 4
    with pytest.raises(ValueError, match="one entry per ReNet layer"):
        reseg_vgg16(3, hidden=(100,), patch_sizes=(1, 1))


def test_pretrained_weights_load_by_torchvision_name_from_a_file(tmp_path) -> None:
    torch.manual_seed(0)
    source = VGGConv33(width=0.25)
    state = dict(source.state_dict())
    state["features.17.weight"] = torch.zeros(1)  # later VGG16 layers are ignored
    state["classifier.0.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "vgg16.pth")
    model = reseg_vgg16(2, in_channels=1, width=0.25, pretrained=tmp_path / "vgg16.pth")
    conv33 = model.encoder.features[14]
    assert torch.equal(conv33.weight, source.features[14].weight)
    assert torch.allclose(model.encoder.features[0].weight, source.features[0].weight.sum(1, keepdim=True))
    with pytest.raises(ValueError, match="width"):
        reseg_vgg16(2, width=0.5, pretrained=True)  # refused before any download


def test_registered() -> None:
    import segscope.models.semantic  # noqa: F401  (the module tuple registers it)

    assert "reseg_vgg16" in REGISTRY and "Visin" in REGISTRY.get("reseg_vgg16").paper
