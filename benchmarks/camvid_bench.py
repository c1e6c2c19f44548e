"""CamVid train -> val through ``segscope bench``: FCN-8s, SegNet, U-Net and U-Net-ResNet18 under one
equal CPU training budget at 176x240 (the peer protocol's resolution), scored on the 101 val images at
full 360x480 resolution (label 11 ignored).

CPU variants (the paper networks cannot learn in a few CPU minutes): FCN-8s and SegNet at width 0.25 of
VGG16 (``placement="same"`` for FCN), U-Net with 16 base channels; U-Net-ResNet18 at full size (the same
architecture as the SMP peer). Every model: AdamW, lr 1e-3 poly, batch 8, light augmentation (flip,
scale jitter), cross-entropy, bf16 autocast, random init.

    python benchmarks/camvid_bench.py [--budget 240]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from segscope.bench import BenchPlan, run_bench

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "camvid"
RECIPE = dict(resize=(176, 240), augment="light", batch_size=8, lr=1e-3, amp=True, epochs=10_000, loss="ce")
MODELS = {
    "fcn8s_vgg16": dict(width=0.25, placement="same"),
    "segnet_vgg16": dict(width=0.25),
    "unet": dict(base_channels=16),
    "unet_resnet18": {},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=240.0, help="training seconds per model")
    ap.add_argument("--methods", default=",".join(MODELS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "camvid_bench"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    methods = args.methods.split(",")
    plan = BenchPlan(
        data=str(DATA),
        methods=methods,
        cv=None,
        split="train/val",
        time_budget_s=args.budget,
        options={m: dict(RECIPE, **MODELS.get(m, {})) for m in methods},
        workers=1,
        gallery=3,
        command=f"python benchmarks/camvid_bench.py --budget {args.budget:g} --methods {args.methods}",
    )
    results = run_bench(plan, args.out)
    names = list(results["cells"][results["leaderboard"][0]["method"]][0]["metrics"]["iou"])
    print(
        f"\n{'method':<16}{'mIoU':>8}{'pix acc':>9}{'fit s':>7}{'params':>12}  "
        + " ".join(n[:6] for n in names)
    )
    for e in results["leaderboard"]:
        iou = results["cells"][e["method"]][0]["metrics"]["iou"]
        print(
            f"{e['method']:<16}{e['mean_iou']:>8.4f}{e['pixel_accuracy']:>9.4f}{e['fit_seconds']:>7.0f}"
            f"{e['num_parameters']:>12,}  " + " ".join(f"{iou[n]:6.3f}" for n in names)
        )
    print(f"report: {Path(args.out) / 'report.html'}")


if __name__ == "__main__":
    main()
