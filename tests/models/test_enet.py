"""ENet (Paszke et al. 2016): Table 1 parameter count by hand, shapes, index unpooling, dropout, PReLU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segscope.models import count_parameters
from segscope.models.semantic.enet import ENet, enet
from segscope.registry import REGISTRY


def conv(kh: int, kw: int, cin: int, cout: int, bias: bool) -> int:
    return kh * kw * cin * cout + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # weight + bias


def encoder_bottleneck(c: int, kind: str = "regular") -> int:
    """Projection (no bias), main conv (bias), expansion (no bias), 3 BN, PReLU x2 inside + 1 after."""
    i = c // 4
    if kind == "asymmetric":  # 5x1 (no bias) then 1x5
        main = conv(5, 1, i, i, False) + conv(1, 5, i, i, True)
    else:  # regular or dilated 3x3
        main = conv(3, 3, i, i, True)
    return conv(1, 1, c, i, False) + bn(i) + i + main + bn(i) + i + conv(1, 1, i, c, False) + bn(c) + c


def downsampling(cin: int, cout: int) -> int:
    i = cout // 4
    projection = conv(2, 2, cin, i, False) + bn(i) + i  # 2x2 stride 2, BN, PReLU
    return projection + conv(3, 3, i, i, True) + bn(i) + i + conv(1, 1, i, cout, False) + bn(cout) + cout


def decoder_bottleneck(c: int) -> int:  # ReLU: no activation parameters
    i = c // 4
    return conv(1, 1, c, i, False) + bn(i) + conv(3, 3, i, i, True) + bn(i) + conv(1, 1, i, c, False) + bn(c)


def upsampling(cin: int, cout: int) -> int:
    i = cout // 4
    main = conv(1, 1, cin, cout, False) + bn(cout)
    extension = conv(1, 1, cin, i, False) + bn(i) + conv(3, 3, i, i, True) + bn(i)  # 3x3 transposed
    return main + extension + conv(1, 1, i, cout, False) + bn(cout)


def table_1_parameters(num_classes: int, in_channels: int = 3) -> int:
    """Sum over Table 1's rows, from the layer shapes alone."""
    initial = conv(3, 3, in_channels, 16 - in_channels, True) + bn(16) + 16  # conv || pool, BN, PReLU
    stage1 = downsampling(16, 64) + 4 * encoder_bottleneck(64)
    kinds = ["regular", "dilated", "asymmetric", "dilated", "regular", "dilated", "asymmetric", "dilated"]
    stage2 = downsampling(64, 128) + sum(encoder_bottleneck(128, k) for k in kinds)
    stage3 = sum(encoder_bottleneck(128, k) for k in kinds)
    stage4 = upsampling(128, 64) + 2 * decoder_bottleneck(64)
    stage5 = upsampling(64, 16) + decoder_bottleneck(16)
    fullconv = conv(2, 2, 16, num_classes, True)
    return initial + stage1 + stage2 + stage3 + stage4 + stage5 + fullconv


def test_parameter_count_is_table_1_by_hand_and_the_papers_rounded_figure() -> None:
    hand = table_1_parameters(11)
    assert hand == 363_791
    model = enet(11)  # CamVid's 11 classes, RGB
    assert count_parameters(model) == hand
    # Learnable parameters alone are 1.7 % under the paper's "0.37 M" (they round to 0.36 M)...
    assert abs(hand - 0.37e6) / 0.37e6 == pytest.approx(0.0168, abs=1e-4)
    # ... the paper's 0.37 M and "79x less parameters than SegNet (29.46 M)" match the count with the
    # batch-norm running statistics (2 per normalised channel), as Torch stores them: within 1 %.
    bn_channels = 16 + 5 * (16 + 16 + 64) + 17 * (32 + 32 + 128) + (16 + 16 + 64 + 64) + 2 * (16 + 16 + 64)
    bn_channels += (4 + 4 + 16 + 16) + (4 + 4 + 16)
    stats = sum(b.numel() for name, b in model.named_buffers() if "running" in name)
    assert stats == 2 * bn_channels == 8_352
    assert abs(hand + stats - 0.37e6) / 0.37e6 < 0.01  # 372,143: +0.58 %
    segnet_with_stats = 29_449_355 + 2 * 7_936  # tests/models/test_segnet.py's count + its BN statistics
    assert round(segnet_with_stats / (hand + stats)) == 79 != round(29_449_355 / hand)
    # The reference port davidtvs/PyTorch-ENet reports 350.65 k (12 classes; no biases, scalar PReLU,
    # 2x2 up-sampling kernels): 3.8 % under this count, 5.2 % under the paper's 0.37 M.
    assert count_parameters(enet(12)) == hand + 65 == 363_856
    assert (363_856 - 350_650) / 350_650 == pytest.approx(0.0377, abs=1e-4)


def test_parameter_count_follows_in_channels_and_classes() -> None:
    for in_channels, classes in ((1, 2), (4, 20)):
        assert count_parameters(enet(classes, in_channels)) == table_1_parameters(classes, in_channels)


@pytest.mark.parametrize("size", [(176, 240), (360, 480)])
def test_output_at_the_input_size(size: tuple[int, int]) -> None:
    with torch.no_grad():
        assert enet(11).eval()(torch.randn(1, 3, *size)).shape == (1, 11, *size)


@pytest.mark.parametrize("size", [(69, 67), (9, 13)])
def test_sizes_not_multiple_of_8_are_padded_and_cropped(size: tuple[int, int]) -> None:
    model = enet(3, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, *size)).shape == (2, 3, *size)


def test_table_1_feature_map_sizes() -> None:
    model = enet(11).eval()
    shapes = {}

    def record(name: str):
        def hook(module, args, out) -> None:
            shapes[name] = tuple((out[0] if isinstance(out, tuple) else out).shape)

        return hook

    for name in ("initial", "bottleneck1_0", "stage1", "bottleneck2_0", "stage3", "stage4", "stage5"):
        getattr(model, name).register_forward_hook(record(name))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 96))
    assert shapes == {
        "initial": (1, 16, 32, 48),
        "bottleneck1_0": (1, 64, 16, 24),
        "stage1": (1, 64, 16, 24),
        "bottleneck2_0": (1, 128, 8, 12),
        "stage3": (1, 128, 8, 12),
        "stage4": (1, 64, 16, 24),
        "stage5": (1, 16, 32, 48),
    }
    dilations = [b.extension[3].dilation[0] for b in model.stage2 if b.kind != "asymmetric"]
    assert dilations == [1, 2, 4, 1, 8, 16]
    assert [b.kind for b in model.stage3] == [b.kind for b in model.stage2]
    asym = model.stage2[2].extension
    assert (asym[3].kernel_size, asym[4].kernel_size) == ((5, 1), (1, 5))


@pytest.mark.parametrize(
    ("down", "up"), [("bottleneck2_0", "bottleneck4_0"), ("bottleneck1_0", "bottleneck5_0")]
)
def test_upsampling_unpools_with_the_matching_downsampling_indices(down: str, up: str) -> None:
    """The up-sampling main branch is non-zero exactly at the argmax positions of the matching
    down-sampling bottleneck's input, recomputed here independently of the model."""
    torch.manual_seed(0)
    model = enet(4).eval()
    seen = {}
    getattr(model, down).register_forward_hook(
        lambda m, args, out: seen.update(pool_in=args[0], switches=out[1])
    )
    getattr(model, up).unpool.register_forward_hook(
        lambda m, args, out: seen.update(values=args[0], given=args[1], unpooled=out)
    )
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    assert seen["given"] is seen["switches"]
    _, indices = F.max_pool2d(seen["pool_in"], 2, 2, return_indices=True)
    # The unpooled map carries ``values`` at these positions, per channel, and zeros elsewhere.
    assert seen["values"].shape[1] == seen["pool_in"].shape[1]  # 64 for 2.0 -> 4.0, 16 for 1.0 -> 5.0
    size = seen["pool_in"].shape[-2:]
    expected = F.max_unpool2d(seen["values"], indices, 2, 2, output_size=size)
    torch.testing.assert_close(seen["unpooled"], expected)
    nonzero = seen["unpooled"] != 0
    assert nonzero.sum() == (seen["values"] != 0).sum()  # one position per pooled value
    shifted = F.max_unpool2d(seen["values"], indices.flip(0), 2, 2, output_size=size)
    assert not torch.equal(seen["unpooled"], shifted)  # another image's indices give another map


def test_dropout_rates_by_stage() -> None:
    model = enet(11)

    def rates(module: nn.Module) -> list[float]:
        return [m.p for m in module.modules() if isinstance(m, nn.Dropout2d)]

    assert rates(model.bottleneck1_0) + rates(model.stage1) == [0.01] * 5  # before bottleneck 2.0
    encoder_rest = rates(model.bottleneck2_0) + rates(model.stage2) + rates(model.stage3)
    assert encoder_rest == [0.1] * 17
    decoder = [model.bottleneck4_0, model.stage4, model.bottleneck5_0, model.stage5]
    assert sum((rates(m) for m in decoder), []) == [0.1] * 5  # "afterwards", decoder included
    quiet = enet(11, decoder_dropout=0.0)  # the authors' Torch decoder
    names = ("bottleneck4_0", "stage4", "bottleneck5_0", "stage5")
    assert sum((rates(getattr(quiet, n)) for n in names), []) == [0.0] * 5
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())  # spatial dropout only


def test_prelu_in_the_encoder_relu_in_the_decoder() -> None:
    model = enet(11)
    encoder = [model.initial, model.bottleneck1_0, model.stage1, model.bottleneck2_0]
    encoder += [model.stage2, model.stage3]
    decoder = [model.bottleneck4_0, model.stage4, model.bottleneck5_0, model.stage5]
    prelus = [m for part in encoder for m in part.modules() if isinstance(m, nn.PReLU)]
    assert len(prelus) == 1 + 3 * 22 == 67  # initial block + 3 per encoder bottleneck
    assert all(p.num_parameters == p.weight.numel() > 1 for p in prelus)  # per channel
    assert not any(isinstance(m, nn.ReLU) for part in encoder for m in part.modules())
    assert not any(isinstance(m, nn.PReLU) for part in decoder for m in part.modules())
    assert sum(isinstance(m, nn.ReLU) for part in decoder for m in part.modules()) == 5 * 3


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = ENet(3, in_channels=1).train()
    logits = model(torch.randn(2, 1, 40, 56))
    F.cross_entropy(logits, torch.randint(0, 3, (2, 40, 56))).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_refusals_and_registration() -> None:
    with pytest.raises(ValueError, match="no pretrained"):
        enet(3, pretrained=True)
    with pytest.raises(ValueError, match="in_channels must be 1 to 15"):
        enet(3, in_channels=16)
    assert "enet" in REGISTRY.names(family="deep")
    assert "ENet" in REGISTRY.get("enet").paper
