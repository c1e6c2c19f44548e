"""ISBI 2012, 5-fold cross-validation: segscope U-Net vs segmentation-models-pytorch Unet-ResNet18.

Both models are trained by the same segscope trainer, recipe and CPU time budget per fold, on the same
folds (sklearn KFold(5, shuffle=True, random_state=0) over the 30 labelled slices), and scored on the
held-out slices: pixel error and adapted Rand error of the cell components (ISBI style), mean ± sd over
folds, plus training time per fold.

    python benchmarks/isbi_unet_cv.py [--budget 180] [--folds 0,1,2,3,4] [--models unet,smp_unet_resnet18]

Anchor: U-Net paper, hidden ISBI test set — pixel error 0.0611, Rand error 0.0382 (after 10 h on a GPU).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import KFold

import segscope
import segscope.io
from segscope.evaluation import evaluate_segmenter

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "isbi2012"
RECIPE = dict(
    augment="em",
    crop_size=256,
    batch_size=8,
    amp=True,
    lr=3e-3,
    epochs=10_000,
    samples_per_epoch=96,
    schedule="poly",
    loss="ce",
)
MODELS = {
    "unet": dict(base_channels=16),  # the paper's U-Net at 1/4 width (CPU budget)
    "smp_unet_resnet18": {},
}


def register_peer() -> None:
    import segmentation_models_pytorch as smp

    if "smp_unet_resnet18" not in segscope.REGISTRY:

        @segscope.register("smp_unet_resnet18", family="deep", paper="peer: segmentation-models-pytorch")
        def smp_unet(num_classes: int = 2, in_channels: int = 3):
            """segmentation-models-pytorch Unet('resnet18', encoder_weights=None) — the peer."""
            return smp.Unet("resnet18", encoder_weights=None, in_channels=in_channels, classes=num_classes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=180.0, help="training seconds per fold and model")
    ap.add_argument("--folds", default="0,1,2,3,4")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "isbi_unet_cv.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    register_peer()
    ds = segscope.open_dataset(DATA)
    folds = list(KFold(5, shuffle=True, random_state=0).split(np.arange(len(ds))))
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in args.models.split(","):
        for k in map(int, args.folds.split(",")):
            key = f"{name}/fold{k}"
            if key in results:
                continue  # resumable
            train_idx, test_idx = folds[k]
            seg = segscope.create_segmenter(name, num_classes=2, in_channels=1, **RECIPE, **MODELS[name])
            t0 = time.perf_counter()
            seg.fit(ds.subset(train_idx), None, time_budget_s=args.budget, progress=False)
            fit_s = time.perf_counter() - t0
            r = evaluate_segmenter(seg, ds.subset(test_idx), progress=False)
            results[key] = {
                "pixel_error": r["pixel_error"],
                "rand_error": r["rand_error"],
                "mean_iou": r["mean_iou"],
                "fit_seconds": fit_s,
                "steps": seg.history[-1]["step"],
                "seconds_per_image": r["seconds_per_image"],
                "parameters": seg.num_parameters,
            }
            print(
                f"{key}: pixel error {r['pixel_error']:.4f}  Rand error {r['rand_error']:.4f}  "
                f"fit {fit_s:.0f}s ({results[key]['steps']} steps)",
                flush=True,
            )
            segscope.io.write_json_atomic(out, results)
    print(f"\n{'model':<20}{'pixel error':>18}{'Rand error':>18}{'fit s/fold':>12}{'params':>12}")
    for name in args.models.split(","):
        rows = [v for k, v in results.items() if k.startswith(name + "/")]
        if not rows:
            continue
        pe = np.array([r["pixel_error"] for r in rows])
        re = np.array([r["rand_error"] for r in rows])
        fit = np.mean([r["fit_seconds"] for r in rows])
        print(
            f"{name:<20}{pe.mean():>11.4f} ± {pe.std(ddof=1) if len(pe) > 1 else 0:.4f}"
            f"{re.mean():>11.4f} ± {re.std(ddof=1) if len(re) > 1 else 0:.4f}"
            f"{fit:>12.0f}{rows[0]['parameters']:>12,}"
        )
    print("anchor (U-Net paper, hidden test set): pixel error 0.0611, Rand error 0.0382")


if __name__ == "__main__":
    main()
