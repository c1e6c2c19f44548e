"""One-class learning on ISBI 2012: membranes as the "anomaly" of a model of cell interiors only.

``one_class`` fits a Gaussian to per-pixel features of the *cell* pixels of the training slices (it
never reads a membrane label) and flags pixels whose negative log-likelihood exceeds a quantile of the
training cell scores. Otsu (fitted on the same slices, which does read both classes to choose its
polarity) is the reference. 5-fold CV (seeded KFold) over the 30 slices; membrane IoU and Dice, pixel
error and Rand error on the held-out slices, mean ± sd over folds.

    python benchmarks/one_class_isbi.py [--quantiles 0.9,0.95,0.99]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import segscope
from segscope.data.splits import make_splits
from segscope.evaluation import evaluate_segmenter
from segscope.io import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "isbi2012"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quantiles", default="0.8,0.9,0.95,0.99")
    args = ap.parse_args()
    full = segscope.open_dataset(DATA)
    methods = {f"one_class q={q}": dict(quantile=float(q)) for q in args.quantiles.split(",")}
    methods["otsu"] = {}
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    for split in make_splits(full, "kfold:5", seed=0):
        train, test = full.subset(split.train), full.subset(split.test)
        for name, options in methods.items():
            seg = segscope.create_segmenter(name.split()[0], num_classes=2, foreground=0, **options)
            seg.fit(train, time_budget_s=30, progress=False)
            m = evaluate_segmenter(seg, test, progress=False)
            rows[name].append(
                {k: m[k] for k in ("pixel_error", "rand_error")}
                | {"membrane_iou": m["iou"]["membrane"], "membrane_dice": m["dice"]["membrane"]}
            )
    keys = ("membrane_iou", "membrane_dice", "pixel_error", "rand_error")
    print(f"{'method':<22}" + "".join(f"{k:>22}" for k in keys))
    summary = {}
    for name, folds in rows.items():
        stats = {
            k: (float(np.mean([f[k] for f in folds])), float(np.std([f[k] for f in folds]))) for k in keys
        }
        summary[name] = stats
        print(f"{name:<22}" + "".join(f"{stats[k][0]:>14.4f} ± {stats[k][1]:.4f}" for k in keys))
    write_json_atomic(
        ROOT / "benchmarks" / "results" / "one_class_isbi.json", {"summary": summary, "folds": rows}
    )


if __name__ == "__main__":
    main()
