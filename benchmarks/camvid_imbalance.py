"""Class imbalance on CamVid: plain cross-entropy against balancing recipes, same model, same steps.

Protocol (the peer's, ``../shared/benchmarks/peer_camvid_smp.py``): U-Net-ResNet18 from scratch (the
same architecture as ``smp.Unet("resnet18")``), trained on the 367 CamVid train images resized to 176x240
and scored on the 101 val images at 176x240 (labels resized by nearest neighbour, label 11 ignored).
Every recipe gets the same number of optimizer steps (``--epochs`` x 45 steps of batch 8), the same
seed, AdamW, poly schedule, light augmentation and bf16 autocast; only the imbalance handling differs.
Equal steps rather than equal seconds, so that a machine shared with other jobs cannot bias the
comparison; the wall time of each run is printed beside it.

    python benchmarks/camvid_imbalance.py --recipes ce,balanced --epochs 16      # one after another
    python benchmarks/camvid_imbalance.py --recipes ce --threads 1 &              # or side by side
    python benchmarks/camvid_imbalance.py --posthoc ce                            # + prior correction
    python benchmarks/camvid_imbalance.py --recipes balanced --budget 1500        # the peer's 25 minutes
    python benchmarks/camvid_imbalance.py --summary                               # the table

``--posthoc RECIPE`` adds the classifier-level remedy to a trained recipe without retraining: the same
weights, logits shifted by ``-tau log pi`` (training pixel frequencies, ``decision="prior:tau=T"``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import segscope
from segscope.io import write_json_atomic, write_text_atomic
from segscope.metrics import ConfusionMatrix

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "camvid"
OUT = ROOT / "benchmarks" / "results" / "camvid_imbalance"
SIZE = (176, 240)
RARE = ("Pole", "SignSymbol", "Fence", "Pedestrian", "Bicyclist")
BASE = dict(resize=SIZE, augment="light", batch_size=8, lr=2e-3, warmup_fraction=0.03, amp=True, val_every=4)
RECIPES: dict[str, dict] = {
    "ce": dict(loss="ce"),
    # weighted CE (median-frequency balancing, SegNet) + soft Dice (a per-class, frequency-free term)
    "balanced": dict(loss="ce+dice", class_weights="median_freq"),
    # hybrid: data level (repeat-factor sampling of images with rare classes) + loss level (OHEM, the
    # hardest pixels, + Lovász-softmax, a surrogate of each class's IoU)
    "hybrid": dict(loss="ohem:thresh=0.7,min_kept=20000+lovasz", sampler="repeat_factor:t=0.3"),
}


def evaluate(seg, val) -> dict:
    """Per-class IoU on ``val`` at 176x240 (the peer's protocol)."""
    cm = ConfusionMatrix(val.num_classes, ignore_index=val.ignore_index)
    for i in range(len(val)):
        image, mask = val[i]
        image = cv2.resize(image, SIZE[::-1], interpolation=cv2.INTER_LINEAR)
        image = image[..., None] if image.ndim == 2 else image
        mask = cv2.resize(mask.astype(np.int32), SIZE[::-1], interpolation=cv2.INTER_NEAREST)
        cm.update(seg.predict(image), mask)
    iou = cm.iou()
    return {
        "mean_iou": float(cm.mean_iou()),
        "pixel_accuracy": float(cm.pixel_accuracy()),
        "mean_class_accuracy": float(cm.mean_class_accuracy()),
        "iou": {name: float(v) for name, v in zip(val.classes, iou)},
    }


def run(recipe: str, epochs: int, seed: int, budget: float | None = None) -> dict:
    train = segscope.open_dataset(DATA, "train")
    val = segscope.open_dataset(DATA, "val")
    options = {**BASE, **RECIPES[recipe], "epochs": epochs, "seed": seed}
    name = recipe
    if budget is not None:  # the peer's protocol: a wall-clock training budget, no validation meanwhile
        options.update(epochs=10_000, time_budget_s=budget, val_every=10_000)
        name = f"{recipe}@{budget / 60:g}min"
    seg = segscope.create_segmenter("unet_resnet18", num_classes=train.num_classes, in_channels=3, **options)
    t0 = time.perf_counter()
    seg.fit(train, val, out_dir=ROOT / "runs" / f"camvid_{name}")
    fit_s = time.perf_counter() - t0
    result = {
        "recipe": name,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()},
        "fit_seconds": round(fit_s, 1),
        "steps": seg.history[-1]["step"] if seg.history else 0,
        "threads": torch.get_num_threads(),
        **evaluate(seg, val),
    }
    write_json_atomic(OUT / f"{name}.json", result)
    return result


def posthoc(recipe: str, taus: tuple[float, ...] = (0.5, 1.0)) -> None:
    """Score ``recipe``'s trained run under prior-corrected decisions (no retraining)."""
    from segscope.imbalance.decision import DecisionRule

    train = segscope.open_dataset(DATA, "train")
    val = segscope.open_dataset(DATA, "val")
    seg = segscope.load(ROOT / "runs" / f"camvid_{recipe}")
    base = json.loads((OUT / f"{recipe}.json").read_text())
    counts = train.class_pixel_counts()
    for tau in taus:
        seg.decision = DecisionRule(f"prior:tau={tau:g}", num_classes=train.num_classes).fit(counts)
        name = f"{recipe}+prior{tau:g}"
        result = {**base, "recipe": name, "options": {**base["options"], "decision": f"prior:tau={tau:g}"}}
        result.update(evaluate(seg, val))
        write_json_atomic(OUT / f"{name}.json", result)
        print(f"{name}: mIoU {result['mean_iou']:.4f}")


def summary() -> None:
    """Print the table of every saved recipe and write it, with the rows, beside the other results."""
    rows = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"), key=lambda p: p.stat().st_mtime)]
    if not rows:
        print(f"no results in {OUT}")
        return
    names = list(rows[0]["iou"])
    w = max(len(r["recipe"]) for r in rows) + 2
    lines = [
        f"{'recipe':<{w}}{'mIoU':>7}{'pixacc':>8}{'clsacc':>8}{'steps':>7}{'fit s':>7}  " + " ".join(RARE)
    ]
    for r in rows:
        rare = " ".join(f"{r['iou'][c]:>{len(c)}.3f}" for c in RARE)
        lines.append(
            f"{r['recipe']:<{w}}{r['mean_iou']:>7.3f}{r['pixel_accuracy']:>8.3f}"
            f"{r['mean_class_accuracy']:>8.3f}{r['steps']:>7}{r['fit_seconds']:>7.0f}  {rare}"
        )
    lines += ["", "per-class IoU: " + ", ".join(names)]
    lines += [f"{r['recipe']:<{w}}" + " ".join(f"{r['iou'][c]:.3f}" for c in names) for r in rows]
    text = "\n".join(lines)
    print(text)
    write_json_atomic(OUT.with_suffix(".json"), {"rows": rows})
    write_text_atomic(OUT.with_suffix(".txt"), text + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default="ce,balanced", help=f"comma list of {', '.join(RECIPES)}")
    ap.add_argument("--epochs", type=int, default=16, help="epochs of 45 steps (batch 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, help="train for this many seconds instead of --epochs")
    ap.add_argument("--summary", action="store_true", help="print the table of saved results and exit")
    ap.add_argument("--posthoc", metavar="RECIPE", help="score a trained recipe with prior correction")
    args = ap.parse_args()
    if args.posthoc:
        torch.set_num_threads(args.threads)
        posthoc(args.posthoc)
    elif not args.summary:
        torch.set_num_threads(args.threads)
        for recipe in args.recipes.split(","):
            if recipe not in RECIPES:
                raise SystemExit(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
            r = run(recipe, args.epochs, args.seed, args.budget)
            print(f"{recipe}: mIoU {r['mean_iou']:.4f} in {r['fit_seconds']:.0f} s ({r['steps']} steps)")
    summary()


if __name__ == "__main__":
    main()
