"""The multi-class (multi-channel) local oracle on CamVid: refinement of a small U-Net, and the oracle alone.

CamVid's own split: a subset of ``train`` is split 80 / 20 into *fit* and *tune*. A small U-Net
(time budget) and the local quality oracle (all 11 classes judged in one pass, epochs-bounded) are
trained on *fit*; the refinement settings are chosen on *tune*; the figures are on ``val`` (never used
for any choice). Reported: mean Dice and mIoU over the 11 classes per image (Unlabelled ignored) before
-> after, a one-sided Wilcoxon test, and the predicted-vs-true correlation of the U-Net's masks.

    .venv/bin/python benchmarks/oracle_refine_camvid.py              # about 15 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

import segscope
from segscope.data.splits import holdout_split
from segscope.io import write_json_atomic
from segscope.oracle.degrade import true_quality
from segscope.oracle.local_refine import refine_local, tune_refinement
from segscope.oracle.local_train import train_local_oracle

ROOT = Path(__file__).resolve().parents[1]
GRID = [
    {"iterations": 0},
    *({"update": "fixed_point", "step": s, "iterations": n} for s in (0.5, 1.0) for n in (1, 2, 4)),
    *({"update": "ascent", "step": 1.0, "iterations": 6, "prior_weight": w} for w in (0.0, 1.0)),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-images", type=int, default=120)
    parser.add_argument("--unet-budget", type=float, default=180.0)
    parser.add_argument("--oracle-epochs", type=int, default=2)
    parser.add_argument("--samples-per-image", type=int, default=6)
    parser.add_argument("--tune-images", type=int, default=4)
    parser.add_argument("--test-images", type=int, default=None, help="first N of val (default all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "oracle_refine_camvid.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = ROOT.parent / "shared" / "data" / "camvid"
    train = segscope.open_dataset(data, "train")
    val = segscope.open_dataset(data, "val")
    pick = np.random.default_rng(args.seed).choice(len(train), args.train_images, replace=False)
    fit, tune = holdout_split(train.subset(sorted(pick.tolist())), 0.2, args.seed)
    test = val if args.test_images is None else val.subset(range(args.test_images))
    k, ignore, classes = train.num_classes, train.ignore_index, list(range(train.num_classes))
    unet = segscope.create_segmenter(
        "unet", num_classes=k, in_channels=3, base_channels=16, epochs=1000, crop_size=176, device="cpu"
    )
    unet.fit(fit, time_budget_s=args.unet_budget, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        run = train_local_oracle(
            fit,
            val=tune,
            out_dir=Path(tmp) / "o",
            epochs=args.oracle_epochs,
            time_budget_s=None,
            samples_per_image=args.samples_per_image,
            extra_maps={i: [unet.predict(fit.load_image(i))] for i in range(len(fit))},
            seed=args.seed,
            device="cpu",
        )
    oracle = run.oracle
    print(
        f"oracle: {len(run.history)} epochs in {run.seconds:.0f} s, classes {oracle.classes}; "
        f"held-out (tune) agreement {run.val_metrics}",
        flush=True,
    )
    uniform = None
    cases = {"unet": [], "oracle alone": []}
    for i in range(min(args.tune_images, len(tune))):
        image, truth = tune.load_image(i), tune.load_mask(i)
        uniform = np.full((k, *truth.shape), 1.0 / k, np.float32)
        cases["unet"].append((image, unet.predict_proba(image), truth))
        cases["oracle alone"].append((image, uniform, truth))
    chosen = {}
    for name in cases:
        grid = GRID if name == "unet" else GRID[1:]  # uniform start: its argmax (class 0) is no method
        chosen[name] = tune_refinement(oracle, cases[name], grid=grid, ignore_index=ignore)[0]
    print(f"chosen on tune: {chosen}", flush=True)
    rows = []
    for i in range(len(test)):
        image, truth = test.load_image(i), test.load_mask(i)
        proba = unet.predict_proba(image)
        labels = proba.argmax(0)
        row = {"image": test.stems[i], "q": oracle.score_labels(image, labels)}
        s = chosen["unet"]
        refined = labels if s["iterations"] == 0 else refine_local(oracle, image, proba, **s).labels
        alone = refine_local(oracle, image, np.full_like(proba, 1.0 / k), **chosen["oracle alone"]).labels
        for tag, lab in (("before", labels), ("after", refined), ("alone", alone)):
            row[f"dice_{tag}"] = true_quality(lab, truth, classes, "dice", ignore)
            row[f"iou_{tag}"] = true_quality(lab, truth, classes, "iou", ignore)
        rows.append(row)
        if i % 20 == 0:
            print(f"  {i}/{len(test)} {time.perf_counter() - t0:.0f} s", flush=True)
    col = {key: np.array([r[key] for r in rows]) for key in rows[0] if key != "image"}
    diff = col["dice_after"] - col["dice_before"]
    p = (
        float(stats.wilcoxon(col["dice_after"], col["dice_before"], alternative="greater").pvalue)
        if diff.any()
        else 1.0
    )
    summary = {
        "n": len(rows),
        **{
            f"{m}_{t}": float(col[f"{m}_{t}"].mean())
            for m in ("dice", "iou")
            for t in ("before", "after", "alone")
        },
        "improved": float((diff > 0).mean()),
        "worse": float((diff < 0).mean()),
        "wilcoxon_p": p,
        "pearson": float(stats.pearsonr(col["q"], col["dice_before"])[0]),
        "spearman": float(stats.spearmanr(col["q"], col["dice_before"])[0]),
        "mae": float(np.abs(col["q"] - col["dice_before"]).mean()),
    }
    table = (
        f"CamVid val ({len(rows)} images), per-image mean over 11 classes (Unlabelled ignored)\n"
        f"unet          Dice {summary['dice_before']:.3f} -> {summary['dice_after']:.3f}   "
        f"IoU {summary['iou_before']:.3f} -> {summary['iou_after']:.3f}   up {summary['improved']:.0%}, "
        f"down {summary['worse']:.0%}, Wilcoxon p {p:.2g}\n"
        f"oracle alone  Dice {summary['dice_alone']:.3f}   IoU {summary['iou_alone']:.3f} "
        "(from a uniform map)\n"
        f"predicted vs true Dice of the U-Net masks: pearson {summary['pearson']:.3f} spearman "
        f"{summary['spearman']:.3f} MAE {summary['mae']:.3f}"
    )
    print("\n" + table)
    result = {
        "protocol": {**vars(args), "fit": list(fit.stems), "tune": list(tune.stems), "grid": GRID},
        "oracle_val": run.val_metrics,
        "oracle_epochs": len(run.history),
        "oracle_seconds": run.seconds,
        "chosen": chosen,
        "summary": summary,
        "table": table,
        "rows": rows,
        "total_seconds": time.perf_counter() - t0,
    }
    write_json_atomic(args.out, json.loads(json.dumps(result, default=float)))
    print(f"total {result['total_seconds']:.0f} s; written to {args.out}")


if __name__ == "__main__":
    main()
