"""FCN-8s vs SegNet vs U-Net on CamVid (11 classes) under one equal CPU training-time budget.

For each model: train on CamVid train (367 images) resized to 176x240 for ``--time-budget`` seconds
through the public API (``segscope.create_segmenter(...).fit(train, val)``), then report val mIoU
(101 images, at full 360x480 resolution, label 11 ignored) with ``segscope.metrics.Evaluator``,
the parameter count, and the CPU latency of one 360x480 image (``segmenter.model`` in eval mode under
``torch.inference_mode``, median of 5 after one warm-up).

CPU variants: the paper networks (134 M / 29.5 M / 31 M parameters) cannot learn anything in a few
CPU minutes, so by default every model is shrunk by the same channel factor ``--width 0.25``:
``fcn8s_vgg16(width=0.25, placement="same")`` (VGG16 channels 16..128, fc6/fc7 1024; the "same"
placement avoids FCN's pad-100, ~4x cheaper at this size), ``segnet_vgg16(width=0.25)`` and
``unet(base_channels=16)``. ``--width 1`` runs the paper sizes (and ``--pretrained`` loads ImageNet
VGG16 weights for FCN/SegNet, which needs them cached or a network).

Usage (from the repository root; data in ../shared/data/camvid)::

    python benchmarks/camvid_fcn_segnet_unet.py --time-budget 300
    python benchmarks/camvid_fcn_segnet_unet.py --time-budget 20 --limit-val 10   # smoke run

References: Long et al. CVPR 2015 (FCN); Badrinarayanan et al. TPAMI 2017 (SegNet, CamVid split,
Table 1: SegNet-Basic 47.7 mIoU on the test set after full training); Ronneberger et al. MICCAI 2015.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "camvid"
TRAIN_SIZE = (176, 240)
LATENCY_SIZE = (360, 480)


def model_options(name: str, width: float, pretrained: bool) -> dict:
    """Builder options giving each network the same channel-width reduction."""
    if name == "fcn8s_vgg16":
        return {"width": width, "placement": "same", "pretrained": pretrained}
    if name == "segnet_vgg16":
        return {"width": width, "pretrained": pretrained}
    if name == "unet":
        return {"base_channels": max(1, int(round(64 * width)))}
    raise SystemExit(f"no options defined for model {name!r}")


def cpu_latency_ms(model: torch.nn.Module, repeats: int = 5) -> float:
    """Median wall time of one 3x360x480 forward pass (after a warm-up), in milliseconds."""
    model = model.eval().cpu()
    x = torch.randn(1, 3, *LATENCY_SIZE)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run_one(name: str, train, val, args: argparse.Namespace) -> dict:
    import segscope
    from segscope.metrics import Evaluator
    from segscope.models import count_parameters

    options = model_options(name, args.width, args.pretrained)
    segmenter = segscope.create_segmenter(
        name,
        num_classes=11,
        in_channels=3,
        crop_size=None,
        resize=TRAIN_SIZE,
        time_budget_s=args.time_budget,
        augment=args.augment,
        **options,
    )
    start = time.perf_counter()
    segmenter.fit(train, val, time_budget_s=args.time_budget, progress=not args.quiet)
    train_s = time.perf_counter() - start

    evaluator = Evaluator(11, ignore_index=val.ignore_index, class_names=list(val.classes))
    count = len(val) if args.limit_val is None else min(args.limit_val, len(val))
    for i in range(count):
        image, mask = val[i]
        evaluator.add(segmenter.predict(image), mask)
    result = evaluator.result()
    return {
        "model": name,
        "options": options,
        "parameters": count_parameters(segmenter.model),
        "train_s": round(train_s, 1),
        "epochs": len(segmenter.history),
        "val_images": count,
        "val_mean_iou": result["mean_iou"],
        "val_pixel_accuracy": result["pixel_accuracy"],
        "val_mean_class_accuracy": result["mean_class_accuracy"],
        "cpu_latency_ms_360x480": round(cpu_latency_ms(segmenter.model), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="CamVid root (train/, val/, ...annot/)"
    )
    parser.add_argument(
        "--time-budget", type=float, default=300.0, help="training seconds per model (default 300)"
    )
    parser.add_argument(
        "--models", default="fcn8s_vgg16,segnet_vgg16,unet", help="comma-separated model names"
    )
    parser.add_argument(
        "--width", type=float, default=0.25, help="channel multiplier for every model (1 = paper)"
    )
    parser.add_argument(
        "--pretrained", action="store_true", help="ImageNet VGG16 weights (only with --width 1)"
    )
    parser.add_argument("--augment", default="light", help="augmentation preset (none, light, strong)")
    parser.add_argument("--limit-val", type=int, default=None, help="evaluate on the first N val images only")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no training progress bars")
    args = parser.parse_args(argv)

    from segscope.data import open_dataset

    if not args.data.is_dir():
        print(f"CamVid not found at {args.data}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    train = open_dataset(args.data, "train")
    val = open_dataset(args.data, "val")
    print(f"CamVid: {len(train)} train / {len(val)} val, train at {TRAIN_SIZE}, {args.time_budget:g} s/model")

    rows = [run_one(name.strip(), train, val, args) for name in args.models.split(",") if name.strip()]

    columns = ("params", 11), ("epochs", 6), ("train s", 8), ("val mIoU", 9), ("pix acc", 8), ("ms/img", 8)
    header = f"{'model':<14} " + " ".join(f"{name:>{width}}" for name, width in columns)
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        print(
            f"{r['model']:<14} {r['parameters']:>11,} {r['epochs']:>6} {r['train_s']:>8.1f} "
            f"{r['val_mean_iou']:>9.4f} {r['val_pixel_accuracy']:>8.4f} {r['cpu_latency_ms_360x480']:>8.1f}"
        )
    if args.out is not None:
        from segscope.io import write_json_atomic

        write_json_atomic(args.out, {"time_budget_s": args.time_budget, "width": args.width, "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
