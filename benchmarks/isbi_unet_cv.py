"""ISBI 2012, 5-fold cross-validation through ``segscope bench``: U-Net, the classical methods and the
segmentation-models-pytorch Unet-ResNet18 peer, on identical folds with the same trainer and budget.

Folds: sklearn ``KFold(5, shuffle=True, random_state=0)`` over the 30 labelled slices (the bench's
``kfold:5``). Deep models get the same recipe and CPU time budget per fold; classical methods tune their
few parameters on the training folds. Scores on the held-out slices: pixel error and adapted Rand error
of the cell components (ISBI style), mean ± sd over folds, plus fit time per fold. The bench report
(``benchmarks/results/isbi_bench/report.html``) shows the leaderboard, paired tests and overlays.

    python benchmarks/isbi_unet_cv.py [--budget 150] [--methods otsu,watershed,unet,...]

Anchor: U-Net paper, hidden ISBI test set — pixel error 0.0611, Rand error 0.0382 (after 10 h on a GPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import segscope
from segscope.bench import BenchPlan, run_bench

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


def register_peer() -> None:
    """The peer, registered under a name so the bench runs it exactly like a segscope model."""
    import segmentation_models_pytorch as smp

    if "smp_unet_resnet18" not in segscope.REGISTRY:

        @segscope.register("smp_unet_resnet18", family="deep", paper="peer: segmentation-models-pytorch")
        def smp_unet(num_classes: int = 2, in_channels: int = 3):
            """segmentation-models-pytorch Unet('resnet18', encoder_weights=None) — the peer."""
            return smp.Unet("resnet18", encoder_weights=None, in_channels=in_channels, classes=num_classes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=150.0, help="training seconds per fold and deep model")
    ap.add_argument("--methods", default="otsu,adaptive_threshold,watershed,unet,smp_unet_resnet18")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "isbi_bench"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    register_peer()
    deep = {"unet": dict(RECIPE, base_channels=16), "smp_unet_resnet18": dict(RECIPE)}
    plan = BenchPlan(
        data=str(DATA),
        methods=args.methods.split(","),
        cv="kfold:5",
        time_budget_s=args.budget,
        options=deep,
        workers=1,
        gallery=3,
        command="python benchmarks/isbi_unet_cv.py " + f"--budget {args.budget:g} --methods {args.methods}",
    )
    results = run_bench(plan, args.out)
    print(f"\n{'method':<20}{'pixel error':>18}{'Rand error':>18}{'fit s/fold':>12}{'parameters':>12}")
    for e in results["leaderboard"]:
        print(
            f"{e['method']:<20}{e['pixel_error']:>9.4f} ± {e['pixel_error_sd']:.4f}"
            f"{e['rand_error']:>9.4f} ± {e['rand_error_sd']:.4f}"
            f"{e['fit_seconds']:>12.1f}{e['num_parameters']:>12,}"
        )
    for t in results["paired_tests"]:
        print(
            f"Wilcoxon {t['best']} vs {t['other']}: n={t['n']}, median diff {t['median_difference']:+.4f}, "
            f"p={t['p_value']:.3g}"
        )
    print("anchor (U-Net paper, hidden test set): pixel error 0.0611, Rand error 0.0382")
    print(f"report: {Path(args.out) / 'report.html'}")


if __name__ == "__main__":
    main()
