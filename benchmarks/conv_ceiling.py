"""How far can any fp32 implementation beat the eager peer? The convolution-throughput ceiling, measured.

Every pair of ``inference_peers.py`` spends nearly all its arithmetic in convolutions. This script counts
the convolution multiply-accumulates of each peer at each size (forward hooks on every ``Conv2d``:
output elements x kernel volume / groups), times the peer in eager fp32, and in the same run measures the
machine's fp32 convolution throughput: the best GMAC/s of a few large 3x3 and 1x1 convolutions (oneDNN,
NCHW and channels-last, the shapes these networks use). The ratio ``peak / peer rate`` estimates how much
faster any fp32 implementation performing the same convolutions can be: reaching 1.5x needs the peer to
run below two thirds of the machine's convolution peak. (An estimate, not a hard bound: other shapes may
run somewhat faster than the probes.) It also times the dilated probes against their space-to-batch
rewrite (the same convolution, undilated, on the d x d phase images).

    python benchmarks/conv_ceiling.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from timing import Logits, median_ms
from torch import nn

SIZES = ((512, 512), (352, 480))
# (in, out, height, width, kernel, dilation): the 3x3 and 1x1 shapes of ResNet stages, heads and decoders
PROBES = (
    (256, 256, 128, 128, 3, 1),
    (256, 256, 64, 64, 3, 2),
    (512, 512, 64, 64, 3, 4),
    (2048, 512, 64, 64, 3, 1),
    (1024, 256, 64, 64, 1, 1),
    (256, 1024, 64, 64, 1, 1),
    (2048, 512, 64, 64, 1, 1),
)


def conv_gmacs(model: nn.Module, shape: tuple[int, ...]) -> float:
    """Multiply-accumulates of every ``Conv2d`` in one forward pass of ``model`` on ``shape``, in 1e9."""
    total = 0

    def count(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.weight[0].numel()  # weight (out, in/groups, kh, kw)

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        model(torch.randn(*shape))
    for hook in hooks:
        hook.remove()
    return total / 1e9


def conv_peak(repeats: int) -> float:
    """The best fp32 GMAC/s of the probe convolutions, NCHW or channels-last."""
    best = 0.0
    for cin, cout, h, w, k, dilation in PROBES:
        conv = nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, bias=False).eval()
        for channels_last in (False, True):
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            layer, x = conv.to(memory_format=fmt), torch.randn(1, cin, h, w).contiguous(memory_format=fmt)
            gmacs = cout * h * w * cin * k * k / 1e9
            best = max(best, gmacs / (median_ms(layer, x, repeats, warmup=2) / 1000))
    return best


def space_to_batch_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` (3x3, dilation d, padding d) as an undilated 3x3 convolution on the d*d phase images of
    ``x`` (DeepLab's "atrous convolution by input subsampling"); equal to ``conv(x)``."""
    d = conv.dilation[0]
    n, c, h, w = x.shape
    x = F.pad(x, (0, (-w) % d, 0, (-h) % d))  # zeros, as the convolution's own padding
    hh, ww = x.shape[2] // d, x.shape[3] // d
    phases = x.view(n, c, hh, d, ww, d).permute(3, 5, 0, 1, 2, 4).reshape(d * d * n, c, hh, ww)
    y = F.conv2d(phases, conv.weight, conv.bias, padding=1)
    y = y.view(d, d, n, -1, hh, ww).permute(2, 3, 4, 0, 5, 1).reshape(n, -1, hh * d, ww * d)
    return y[:, :, :h, :w]


def dilated_rows(repeats: int) -> list[str]:
    """Dilated 3x3 convolutions, oneDNN's dilated kernel against the space-to-batch rewrite (NCHW)."""
    rows = []
    for cin, cout, h, w, k, dilation in PROBES:
        if k != 3 or dilation == 1:
            continue
        conv, x = (
            nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation).eval(),
            torch.randn(1, cin, h, w),
        )
        with torch.inference_mode():
            torch.testing.assert_close(space_to_batch_conv(conv, x), conv(x), rtol=1e-4, atol=1e-4)
        direct = median_ms(conv, x, repeats, warmup=2)
        rewritten = median_ms(lambda z, conv=conv: space_to_batch_conv(conv, z), x, repeats, warmup=2)
        rows.append(
            f"{cin}->{cout} {h}x{w} dilation {dilation}: dilated {direct:.1f} ms, space-to-batch "
            f"{rewritten:.1f} ms"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    peak = conv_peak(args.repeats)
    print(f"{args.threads} threads; fp32 convolution peak of this machine: {peak:.0f} GMAC/s")
    for row in dilated_rows(args.repeats):
        print(row)
    print(f"{'peer':<36}{'size':>9}{'conv GMAC':>11}{'peer ms':>9}{'peer GMAC/s':>13}{'ceiling x':>11}")
    from inference_peers import pairs, randomise_batchnorm  # the peers of inference_peers.py

    for label, peer, _ours, _state in pairs():
        torch.manual_seed(0)
        randomise_batchnorm(peer)
        peer = Logits(peer.eval())
        for h, w in SIZES:
            gmacs = conv_gmacs(peer, (1, 3, h, w))
            ms = median_ms(peer, torch.randn(1, 3, h, w), args.repeats, warmup=2)
            rate = gmacs / (ms / 1000)
            print(f"{label:<36}{f'{h}x{w}':>9}{gmacs:>11.1f}{ms:>9.1f}{rate:>13.0f}{peak / rate:>11.2f}")


if __name__ == "__main__":
    main()
