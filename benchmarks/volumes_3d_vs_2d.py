"""3-D U-Net against 2-D U-Net slice by slice (and Otsu), on two real volumes, through ``segscope bench``.

Volumes, opened with ``format="volume"`` (one volume each, cut into contiguous z-blocks):

* ``../shared/data/em_mito3d/train``: 165 x 384 x 384 FIB-SEM, mitochondria, isotropic 5 nm voxels;
* ``../shared/data/isbi2012``: the 30 ISBI 2012 slices as one serial-section stack, 4 x 4 nm pixels and
  50 nm sections (anisotropic, spacing (50, 4, 4) in (z, y, x)).

Protocol: each volume is cut into ``--folds`` contiguous z-blocks and ``kfold:K`` tests one block per fold
(no test slice is a training slice; only the block faces touch). Each training part gives up its last
20 % of slices per block as the validation set for checkpoint selection (never the test block). Every
deep method gets the same CPU time budget per fold, every method the same folds and metrics: Dice and IoU
of the foreground, 95th-percentile Hausdorff distance and mean surface distance in nm (with the voxel
spacing), adapted Rand error of the foreground's 3-D components, and inference seconds per test block.

    python benchmarks/volumes_3d_vs_2d.py [--budget 180] [--folds 3] [--out bench_out/volumes]

It must run alone on the machine (the times are part of the table).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from segscope.bench import BenchPlan, run_bench
from segscope.report import render_bench_report

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
VOLUMES = {
    "em_mito3d": (DATA / "em_mito3d" / "train", (5.0, 5.0, 5.0), (32, 64, 64)),
    "isbi2012_stack": (DATA / "isbi2012", (50.0, 4.0, 4.0), (8, 128, 128)),
}
# The same optimiser, schedule, loss, float32 training and bfloat16 inference for both networks. (bf16
# autocast training of the 3-D U-Net on this CPU gives NaN weight gradients in a shallow 3-D convolution
# within two steps -- the trainer stops it -- so both train in float32.)
RECIPE_2D = dict(augment="em", crop_size=256, batch_size=8, amp=False, lr=3e-3, epochs=10_000,
                 samples_per_epoch=96, schedule="poly", loss="ce", inference_dtype="bfloat16")  # fmt: skip
RECIPE_3D = dict(augment="strong", batch_size=4, amp=False, lr=3e-3, epochs=10_000, samples_per_epoch=96,
                 schedule="poly", loss="ce", inference_dtype="bfloat16")  # fmt: skip
METRICS = ("foreground_dice", "foreground_iou", "hd95", "surface_distance", "rand_error", "pixel_error")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=180.0, help="training seconds per fold and deep method")
    ap.add_argument("--folds", type=int, default=3, help="contiguous z-blocks = folds per volume")
    ap.add_argument("--methods", default="otsu,unet,unet3d")
    ap.add_argument("--volumes", default=",".join(VOLUMES))
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "volumes"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    t_all = time.perf_counter()
    tables = []
    for name in args.volumes.split(","):
        root, spacing, patch = VOLUMES[name]
        options = {
            "unet": dict(RECIPE_2D, base_channels=16),
            "unet3d": dict(RECIPE_3D, base_channels=8, patch_size=list(patch)),
        }
        methods = args.methods.split(",")
        plan = BenchPlan(
            data=str(root),
            methods=methods,
            format="volume",
            spacing=list(spacing),
            blocks=args.folds,
            cv=f"kfold:{args.folds}",
            holdout=0.2,
            time_budget_s=args.budget,
            options={m: o for m, o in options.items() if m in methods},
            workers=1,
            gallery=args.folds,
            command=f"python benchmarks/volumes_3d_vs_2d.py --budget {args.budget:g} --folds {args.folds}",
        )
        results = run_bench(plan, Path(args.out) / name)
        render_bench_report(Path(args.out) / name, results=results)
        tables.append((name, spacing, results))
    for name, spacing, results in tables:
        print(f"\n{name}: spacing (z, y, x) = {spacing} nm, {args.folds} folds along z, mean ± sd over folds")
        header = "".join(
            f"{m:>20}" for m in ("dice", "iou", "hd95 nm", "assd nm", "rand error", "pixel error")
        )
        print(f"{'method':<10}{header}{'s / block':>11}{'fit s':>8}{'params':>11}")
        for e in results["leaderboard"]:
            cells = "".join(
                f"{e.get(m, float('nan')):>11.4f} ± {e.get(m + '_sd', float('nan')):<6.4f}" for m in METRICS
            )
            print(
                f"{e['method']:<10}{cells}{e.get('seconds_per_image', float('nan')):>11.2f}"
                f"{e.get('fit_seconds', float('nan')):>8.0f}{e.get('num_parameters', 0):>11,}"
            )
        for t in results.get("paired_tests", []):
            print(f"  paired test: {t}")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s; reports: {args.out}/<volume>/report.html")


if __name__ == "__main__":
    main()
