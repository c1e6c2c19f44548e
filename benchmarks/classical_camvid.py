"""CamVid train -> val per-class IoU of the learned classical methods: superpixel labelling (SLIC,
Felzenszwalb, Quickshift + a per-superpixel classifier) and alpha-expansion graph cut (unaries from a
per-pixel classifier).

Images and labels are downscaled 2x to 180x240 (area / nearest) to bound the time on a 2-core machine,
and scored at that size with :class:`segscope.metrics.Evaluator` (11 classes, label 11 ignored). Each
method learns its classifier on ``--learn-images`` training images and tunes its few parameters on
``--tune-images`` others within ``--budget`` seconds; all 101 val images are scored.

    .venv/bin/python benchmarks/classical_camvid.py [--methods slic,alpha_expansion] [--budget 300]

Results also go to ``benchmarks/results/classical_camvid.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classical_isbi import Downscaled  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "camvid"
METHODS = ["slic", "felzenszwalb", "quickshift", "alpha_expansion"]


def run_method(method: str, budget: float, learn_images: int, tune_images: int) -> dict:
    """Fit on CamVid train, score on val, both at 180x240 (a spawn-safe worker)."""
    import segscope
    from segscope.metrics import Evaluator

    train = Downscaled(segscope.open_dataset(DATA, "train"), 0.5)
    val = Downscaled(segscope.open_dataset(DATA, "val"), 0.5)
    seg = segscope.create_segmenter(
        method, num_classes=train.num_classes, learn_images=learn_images, tune_images=tune_images
    )
    t0 = time.perf_counter()
    seg.fit(train, time_budget_s=budget, progress=False)
    fit_s = time.perf_counter() - t0
    evaluator = Evaluator(train.num_classes, train.ignore_index, train.classes)
    predict_s = 0.0
    for i in range(len(val)):
        image = val.load_image(i)
        t0 = time.perf_counter()
        pred = seg.predict(image)
        predict_s += time.perf_counter() - t0
        evaluator.add(pred, val.load_mask(i))
    r = evaluator.result()
    return {
        "method": method,
        "iou": r["iou"],
        "mean_iou": r["mean_iou"],
        "pixel_accuracy": r["pixel_accuracy"],
        "mean_class_accuracy": r["mean_class_accuracy"],
        "fit_s": fit_s,
        "trials": len(seg.history),
        "s_per_image": predict_s / len(val),
        "params": seg.params,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated method names")
    p.add_argument("--budget", type=float, default=300.0, help="tuning seconds per method (default 300)")
    p.add_argument("--learn-images", type=int, default=60, help="training images for the classifier")
    p.add_argument("--tune-images", type=int, default=6, help="training images scoring each candidate")
    p.add_argument("--workers", type=int, default=2, help="methods run in parallel (default 2)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "classical_camvid.json"))
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"CamVid not found at {DATA}", file=sys.stderr)
        return 1
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    print(
        f"CamVid train (367) -> val (101), images downscaled to 180x240; classifier on {args.learn_images} "
        f"train images, tuning on {args.tune_images} others within {args.budget:.0f}s"
    )
    start = time.perf_counter()
    records = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = [
            pool.submit(run_method, m, args.budget, args.learn_images, args.tune_images) for m in methods
        ]
        for f in as_completed(futures):
            records.append(f.result())
            print(f"  {records[-1]['method']} done ({records[-1]['fit_s']:.0f}s fit)", flush=True)
    records.sort(key=lambda r: methods.index(r["method"]))
    classes = list(records[0]["iou"])
    print(f"\nper-class IoU (val, 180x240), {time.perf_counter() - start:.0f}s total\n")
    print(f"{'class':<20}" + "".join(f"{r['method']:>16}" for r in records))
    for c in classes:
        print(f"{c:<20}" + "".join(f"{r['iou'][c]:>16.3f}" for r in records))
    for key in ("mean_iou", "pixel_accuracy", "mean_class_accuracy", "fit_s", "s_per_image"):
        print(f"{key:<20}" + "".join(f"{r[key]:>16.3f}" for r in records))
    out = Path(args.out)
    from segscope.io import write_json_atomic

    write_json_atomic(out, {"command": " ".join(sys.argv), "records": records})
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
