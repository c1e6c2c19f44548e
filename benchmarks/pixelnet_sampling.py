"""What PixelNet's sparse pixel sampling saves in one training step (forward + CE loss + backward), CPU.

Modes, same weights, same input (``--batch`` x 3 x 176 x 240 by default), training mode:

* ``sparse``: the registered behaviour, ``--samples`` pixels per image (the paper's 2,000) through the MLP;
* ``dense (naive)``: every pixel's hypercolumn interpolated and through the MLP (``sample_pixels = H W``):
  what sampling avoids in the paper;
* ``dense (factorised)``: ``sample_pixels=0``, segscope's dense path (the MLP's first layer applied per
  layer map at its own resolution, then interpolated): the cheapest exact dense training;
* ``trunk only``: VGG16 + fc6/fc7 forward and backward, the part every mode shares.

Reported: the median step time of ``--repeats`` and the activation memory, measured (in an untimed
warm-up step) as the bytes of the distinct tensors autograd saves for backward, parameters excluded; and
the ratios of both against ``sparse``, for the whole step and for the head alone (step minus trunk).

    python benchmarks/pixelnet_sampling.py                   # VGG16 / 4, the registered MLP (1024, 1024)
    python benchmarks/pixelnet_sampling.py --vgg-width 1     # the registered PixelNet (slow on 2 cores)
    python benchmarks/pixelnet_sampling.py --mlp 4096,4096   # the paper's MLP width
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from segscope.models.semantic.pixelnet import PixelNet


def measure(model: PixelNet, run, repeats: int) -> tuple[float, int]:
    """Median seconds of ``repeats`` steps ``run().backward()`` and the bytes of the distinct non-parameter
    storages autograd saves for backward, counted in a first (warm-up, untimed) step."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = run()
    loss.backward()
    model.zero_grad(set_to_none=True)
    del loss
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run().backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), sum(seen.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="176x240")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--classes", type=int, default=12)
    ap.add_argument("--samples", type=int, default=2000, help="pixels per image in sparse mode")
    ap.add_argument("--vgg-width", type=float, default=0.25, help="1.0 = the registered VGG16")
    ap.add_argument("--mlp", default="1024,1024", help="hidden MLP widths (paper: 4096,4096)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    mlp = tuple(int(v) for v in args.mlp.split(",") if v)
    torch.manual_seed(0)
    model = PixelNet(args.classes, width=args.vgg_width, mlp_channels=mlp).train()
    x = torch.randn(args.batch, 3, h, w)
    y = torch.randint(0, args.classes, (args.batch, h, w))

    def loss_with(samples: int):
        def run() -> torch.Tensor:
            model.sample_pixels = samples
            torch.manual_seed(1)  # the same pixels in every repetition
            return F.cross_entropy(model(x), y, ignore_index=255)

        return run

    def trunk() -> torch.Tensor:
        return sum(m.float().mean() for m in model.layer_maps(x))

    modes = [
        ("trunk only (VGG16 + fc6/fc7)", trunk, 0),
        (f"sparse ({args.samples:,} / image)", loss_with(args.samples), min(args.samples, h * w)),
        ("dense (naive: all hypercolumns)", loss_with(h * w), h * w),
        ("dense (factorised, sample_pixels=0)", loss_with(0), h * w),
    ]
    print(
        f"PixelNet training step: {args.batch} x 3 x {h} x {w}, {args.classes} classes, VGG16 width "
        f"{args.vgg_width:g}, MLP {mlp}, {args.threads} threads, median of {args.repeats}"
    )
    print(f"{'mode':<38}{'MLP pixels/image':>17}{'step s':>9}{'saved MB':>10}")
    rows = {}
    for label, run, pixels in modes:
        seconds, saved = measure(model, run, args.repeats)
        megabytes = saved / 2**20
        rows[label] = (seconds, megabytes)
        print(f"{label:<38}{pixels:>17,}{seconds:>9.2f}{megabytes:>10.1f}")
    (t0, m0), (ts, ms) = rows[modes[0][0]], rows[modes[1][0]]
    for label, _, _ in modes[2:]:
        t, m = rows[label]
        head_time = f"{(t - t0) / (ts - t0):.1f}x" if ts > t0 else "n/a (sparse step <= trunk: timing noise)"
        print(
            f"{label} / sparse: step time {t / ts:.1f}x, activation memory {m / ms:.1f}x; "
            f"head only (step minus trunk): time {head_time}, memory {(m - m0) / (ms - m0):.1f}x"
        )


if __name__ == "__main__":
    main()
