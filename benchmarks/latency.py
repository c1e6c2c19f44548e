"""CPU latency of one 3x360x480 CamVid image for the registered architectures (11 classes).

Median of ``--repeats`` forward passes after one warm-up, eval mode, ``torch.inference_mode``, fp32,
plain eager module (no BatchNorm folding) so the figures compare architectures, not optimisations.

    python benchmarks/latency.py [--repeats 3] [--models fcn8s_vgg16,segnet_vgg16,unet]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from segscope import create_model
from segscope.models import count_parameters

DEFAULT = [
    ("fcn8s_vgg16", {}),
    ("segnet_vgg16", {}),
    ("unet", {}),
    ("deconvnet_vgg16", {}),
    ("fcn8s_vgg16", {"width": 0.25, "placement": "same"}),
    ("segnet_vgg16", {"width": 0.25}),
    ("unet", {"base_channels": 16}),
    ("unet_resnet18", {}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(1, 3, 360, 480)
    print(f"{'model':<44}{'parameters':>14}{'ms / image':>12}")
    for name, opts in DEFAULT:
        model = create_model(name, num_classes=11, **opts).eval()
        with torch.inference_mode():
            model(x)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t0)
        label = name + (f" {opts}" if opts else "")
        print(
            f"{label:<44}{count_parameters(model):>14,}{1000 * statistics.median(times):>12.0f}", flush=True
        )


if __name__ == "__main__":
    main()
