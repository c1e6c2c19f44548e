"""What bf16 inference costs in accuracy: the same trained CamVid model scored in fp32 and in bf16.

For each model: train on CamVid train (resized to 176x240, the recipe of ``camvid_other_networks.py``) for
``--budget`` seconds, the checkpoint chosen on 15 % of the training images held out (never on val); then
predict CamVid val (101 images, full 360x480, label 11 ignored) twice with the same weights, through the
fp32 fast path and the bf16 one (``-o inference_dtype=bfloat16``), and print val mIoU, pixel accuracy,
the largest per-class IoU change and the fraction of pixels whose label differs between the two.

    python benchmarks/bf16_accuracy.py --budget 480          # alone on the machine
    python benchmarks/bf16_accuracy.py --budget 20 --models unet_resnet34   # smoke run
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from camvid_other_networks import RECIPE  # the same CamVid recipe as that benchmark

from segscope.data import open_dataset
from segscope.data.splits import holdout_split
from segscope.evaluation import evaluate_segmenter
from segscope.factory import create_segmenter

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
MODELS = ("unet_resnet34", "deeplabv3plus_resnet50")


def scored(seg, val, dtype: str) -> tuple[dict, list[np.ndarray]]:
    """Metrics of ``seg`` on ``val`` predicting in ``dtype``, and its label maps (uint8)."""
    seg.set_inference_dtype(dtype)
    labels: list[np.ndarray] = []
    result = evaluate_segmenter(
        seg, val, progress=False, on_prediction=lambda _s, _i, p: labels.append(p.astype(np.uint8))
    )
    return result, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=480.0, help="training seconds per model")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, selection = holdout_split(open_dataset(DATA, "train"), 0.15, seed=0)
    val = open_dataset(DATA, "val")
    print(f"train {len(train)}, checkpoint selection {len(selection)} (from train), scored on val {len(val)}")
    print(
        f"{'model':<24}{'steps':>7}{'mIoU fp32':>11}{'mIoU bf16':>11}{'diff':>9}{'pixacc fp32':>13}"
        f"{'pixacc bf16':>13}{'max class diff':>16}{'pixels changed':>16}"
    )
    for name in args.models.split(","):
        torch.manual_seed(0)
        options = {**RECIPE, "time_budget_s": args.budget}
        seg = create_segmenter(name, num_classes=train.num_classes, in_channels=3, **options)
        seg.fit(train, selection, progress=False)
        r32, p32 = scored(seg, val, "float32")
        r16, p16 = scored(seg, val, "bfloat16")
        changed = sum(int((a != b).sum()) for a, b in zip(p32, p16, strict=True)) / sum(a.size for a in p32)
        iou32, iou16 = (np.array(list(r["iou"].values()), float) for r in (r32, r16))
        max_class = float(np.nanmax(np.abs(iou32 - iou16)))
        steps = seg.history[-1]["step"] if seg.history else 0
        print(
            f"{name:<24}{steps:>7}{r32['mean_iou']:>11.4f}{r16['mean_iou']:>11.4f}"
            f"{r16['mean_iou'] - r32['mean_iou']:>+9.4f}{r32['pixel_accuracy']:>13.4f}"
            f"{r16['pixel_accuracy']:>13.4f}{max_class:>16.4f}{changed:>16.2e}"
        )


if __name__ == "__main__":
    main()
