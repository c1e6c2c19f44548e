"""Does the quality oracle help real masks? Cross-validated refinement, selection and label-free quality.

Per fold of a seeded KFold (ISBI 2012: 5 folds, membrane = class 0 scored; CVPPP A1: 4 folds, plant vs
background, plant = class 1 scored) the training part is split once more into *fit* (80 %) and *tune*
(20 %). Everything is learnt on fit and chosen on tune; the test fold is only scored:

* base methods fitted on fit: Otsu, watershed, a small U-Net (time budget), and the empty mask;
* a local quality oracle (:mod:`segscope.oracle.local`, full resolution) trained on fit only (degraded
  truths plus the Otsu / watershed maps of the fit images), checkpoint chosen on tune;
* per base method, the refinement settings (fixed-point or ascent, step, iterations, trust region;
  0 iterations always a candidate) chosen on tune (:func:`segscope.oracle.local_refine.tune_refinement`).

On the test fold: Dice / IoU (and the adapted Rand error of ISBI cells) before -> after refinement, a
one-sided Wilcoxon signed-rank test of Dice after > before over the test images of all folds, the
per-image method choice by predicted quality against the best single method, and the Pearson /
Spearman correlation of predicted with true Dice of the base methods' masks.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/oracle_refine_cv.py --data isbi
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/oracle_refine_cv.py --data cvppp
    .venv/bin/python benchmarks/oracle_refine_cv.py --data isbi --folds 1 --quick     # a smoke run
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
from sklearn.model_selection import KFold

import segscope
from segscope.data.splits import holdout_split
from segscope.io import write_json_atomic
from segscope.metrics import foreground_rand_error
from segscope.oracle.local import one_hot
from segscope.oracle.local_refine import refine_local, tune_refinement
from segscope.oracle.local_train import train_local_oracle
from segscope.oracle.quality import choose_per_image, oracle_train_images, true_quality

ROOT = Path(__file__).resolve().parents[1]
DATA = {
    "isbi": {"path": "isbi2012", "folds": 5, "scored": 0, "rand": True},
    "cvppp": {"path": "cvppp_a1", "folds": 4, "scored": 1, "rand": False},
}
BASES = ("otsu", "watershed", "unet", "empty")
GRID = [
    {"iterations": 0},
    *({"update": "fixed_point", "step": s, "iterations": n} for s in (0.5, 1.0) for n in (1, 2, 4)),
    *({"update": "ascent", "step": 1.0, "iterations": 6, "prior_weight": w} for w in (0.0, 1.0)),
]


def base_maps(methods: dict, image: np.ndarray, scored: int) -> dict[str, np.ndarray]:
    """``(2, H, W)`` class probabilities of every base method for one image, and the empty start (none
    of the ``scored`` class)."""
    out = {}
    for name, seg in methods.items():
        proba = seg.predict_proba(image) if hasattr(seg, "predict_proba") else None
        out[name] = one_hot(seg.predict(image), 2) if proba is None else np.asarray(proba, np.float32)
    out["empty"] = one_hot(np.full(image.shape[:2], 1 - scored), 2)
    return out


def scores(labels: np.ndarray, truth: np.ndarray, scored: int, rand: bool) -> dict[str, float]:
    out = {
        "dice": true_quality(labels, truth, [scored], "dice"),
        "iou": true_quality(labels, truth, [scored], "iou"),
    }
    if rand:
        out["rand_error"] = foreground_rand_error(labels, truth, foreground=1 - scored)
    return out


def fit_bases(fit, args) -> dict:
    methods = {
        "otsu": segscope.create_segmenter("otsu", num_classes=2).fit(fit, progress=False),
        "watershed": segscope.create_segmenter("watershed", num_classes=2).fit(fit, progress=False),
    }
    unet = segscope.create_segmenter(
        "unet",
        num_classes=2,
        in_channels=fit.load_image(0).shape[2],
        base_channels=8,
        epochs=1000,
        crop_size=128,
        device="cpu",
    )
    unet.fit(fit, time_budget_s=args.unet_budget, progress=False)
    methods["unet"] = unet
    return methods


def run_fold(ds, train_idx, test_idx, fold: int, args, spec: dict, tmp: Path) -> dict:
    t0 = time.perf_counter()
    train, test = ds.subset(sorted(train_idx)), ds.subset(sorted(test_idx))
    fit, tune = holdout_split(train, 0.2, args.seed)
    methods = fit_bases(fit, args)
    extra = {}
    for i in range(len(fit)):
        image = fit.load_image(i)
        extra[i] = [methods[m].predict_proba(image)[1] for m in ("otsu", "watershed")]
    run = train_local_oracle(
        fit,
        val=tune,
        out_dir=tmp / f"oracle{fold}",
        classes=[spec["scored"]],
        epochs=args.oracle_epochs,
        time_budget_s=None,
        samples_per_image=args.samples_per_image,
        extra_maps=extra,
        seed=args.seed,
        device="cpu",
    )
    oracle = run.oracle
    seen = set(oracle_train_images(tmp / f"oracle{fold}"))
    assert seen.isdisjoint(test.stems), "the fold's oracle saw a test image"
    t_oracle = time.perf_counter() - t0
    tune_cases = {b: [] for b in BASES}
    for i in range(min(len(tune), args.tune_images)):
        image, truth = tune.load_image(i), tune.load_mask(i)
        for b, m in base_maps(methods, image, spec["scored"]).items():
            tune_cases[b].append((image, m, truth))
    chosen = {b: tune_refinement(oracle, tune_cases[b], grid=GRID) for b in BASES}
    rows = []
    for i in range(len(test)):
        image, truth = test.load_image(i), test.load_mask(i)
        row = {"image": test.stems[i], "fold": fold}
        for b, m in base_maps(methods, image, spec["scored"]).items():
            labels = m.argmax(0)
            row[f"{b}_q"] = oracle.score_labels(image, labels)
            row.update(
                {f"{b}_{k}_before": v for k, v in scores(labels, truth, spec["scored"], spec["rand"]).items()}
            )
            settings = chosen[b][0]
            after = (
                labels if settings["iterations"] == 0 else refine_local(oracle, image, m, **settings).labels
            )
            row.update(
                {f"{b}_{k}_after": v for k, v in scores(after, truth, spec["scored"], spec["rand"]).items()}
            )
        rows.append(row)
        print(
            f"  fold {fold} {test.stems[i]}: "
            + "  ".join(f"{b} {row[f'{b}_dice_before']:.3f}->{row[f'{b}_dice_after']:.3f}" for b in BASES),
            flush=True,
        )
    return {
        "fold": fold,
        "train": list(fit.stems),
        "tune": list(tune.stems),
        "test": list(test.stems),
        "oracle_val": run.val_metrics,
        "oracle_epochs": len(run.history),
        "oracle_seconds": run.seconds,
        "oracle_parameters": sum(p.numel() for p in oracle.parameters()),
        "chosen": {b: chosen[b][0] for b in BASES},
        "tuning": {b: chosen[b][1] for b in BASES},
        "rows": rows,
        "seconds": time.perf_counter() - t0,
        "seconds_before_test": t_oracle,
    }


def summarise(rows: list[dict], rand: bool) -> tuple[dict, str]:
    keys = ["dice", "iou"] + (["rand_error"] if rand else [])
    summary: dict = {}
    lines = [f"{'start':<10}{'n':>4}  " + "  ".join(f"{k:>15}" for k in keys) + "  Dice up   Wilcoxon p"]
    for b in BASES:
        before = np.array([r[f"{b}_dice_before"] for r in rows])
        after = np.array([r[f"{b}_dice_after"] for r in rows])
        diff = after - before
        p = float(stats.wilcoxon(after, before, alternative="greater").pvalue) if np.any(diff != 0) else 1.0
        s = {
            k: (
                float(np.mean([r[f"{b}_{k}_before"] for r in rows])),
                float(np.mean([r[f"{b}_{k}_after"] for r in rows])),
            )
            for k in keys
        }
        s.update({"improved": float(np.mean(diff > 0)), "worse": float(np.mean(diff < 0)), "wilcoxon_p": p})
        summary[b] = s
        lines.append(
            f"{b:<10}{len(rows):>4}  "
            + "  ".join(f"{s[k][0]:.3f} -> {s[k][1]:.3f}".rjust(15) for k in keys)
            + f"  {s['improved']:>6.0%}   {p:.2g}"
        )
    methods = ("otsu", "watershed", "unet")
    picks = [choose_per_image({m: r[f"{m}_q"] for m in methods}) for r in rows]
    picked = np.array([r[f"{m}_dice_before"] for r, m in zip(rows, picks)])
    means = {m: float(np.mean([r[f"{m}_dice_before"] for r in rows])) for m in methods}
    best = max(means, key=means.get)
    ceiling = float(np.mean([max(r[f"{m}_dice_before"] for m in methods) for r in rows]))
    summary["selection"] = {
        "dice": float(picked.mean()),
        "best_single": best,
        "best_single_dice": means[best],
        "gain": float(picked.mean() - means[best]),
        "per_image_best_possible": ceiling,
        "chosen": {m: picks.count(m) for m in methods},
    }
    q = np.array([r[f"{m}_q"] for r in rows for m in methods])
    t = np.array([r[f"{m}_dice_before"] for r in rows for m in methods])
    summary["correlation"] = {
        "pooled": {
            "pearson": float(stats.pearsonr(q, t)[0]),
            "spearman": float(stats.spearmanr(q, t)[0]),
            "mae": float(np.abs(q - t).mean()),
            "n": len(q),
        },
        **{
            m: {
                "pearson": float(
                    stats.pearsonr([r[f"{m}_q"] for r in rows], [r[f"{m}_dice_before"] for r in rows])[0]
                ),
                "spearman": float(
                    stats.spearmanr([r[f"{m}_q"] for r in rows], [r[f"{m}_dice_before"] for r in rows])[0]
                ),
            }
            for m in methods
        },
    }
    sel = summary["selection"]
    lines.append("")
    lines.append(
        f"per-image choice by predicted Dice: {sel['dice']:.3f} vs best single ({best}) "
        f"{sel['best_single_dice']:.3f}: gain {sel['gain']:+.3f} (best possible {ceiling:.3f}); "
        f"chosen {sel['chosen']}"
    )
    c = summary["correlation"]["pooled"]
    lines.append(
        f"predicted vs true Dice of the base masks: pearson {c['pearson']:.3f} spearman "
        f"{c['spearman']:.3f} MAE {c['mae']:.3f} (n={c['n']}); per method "
        + ", ".join(f"{m} {summary['correlation'][m]['spearman']:.2f}" for m in methods)
        + " (spearman)"
    )
    return summary, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", choices=tuple(DATA), default="isbi")
    parser.add_argument("--folds", type=int, default=None, help="run only the first N folds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--oracle-epochs", type=int, default=2)
    parser.add_argument("--samples-per-image", type=int, default=12)
    parser.add_argument("--unet-budget", type=float, default=60.0)
    parser.add_argument("--tune-images", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1 oracle epoch, 4 samples, 20 s U-Net")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.oracle_epochs, args.samples_per_image, args.unet_budget, args.tune_images = 1, 4, 20, 2
    torch.set_num_threads(args.threads)
    spec = DATA[args.data]
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"oracle_refine_{args.data}.json")
    t0 = time.perf_counter()
    ds = segscope.open_dataset(ROOT.parent / "shared" / "data" / spec["path"])
    splits = list(KFold(spec["folds"], shuffle=True, random_state=args.seed).split(np.arange(len(ds))))
    folds = []
    with tempfile.TemporaryDirectory(prefix="oracle-cv-") as tmp:
        for k, (train_idx, test_idx) in enumerate(splits[: args.folds or len(splits)]):
            folds.append(run_fold(ds, train_idx, test_idx, k, args, spec, Path(tmp)))
            print(f"fold {k} done in {folds[-1]['seconds']:.0f} s; chosen {folds[-1]['chosen']}", flush=True)
    rows = [r for f in folds for r in f["rows"]]
    summary, table = summarise(rows, spec["rand"])
    print("\n" + table)
    result = {
        "paper": "Fernandes, Cruz & Cardoso, Deep image segmentation by quality inference, IJCNN 2018",
        "protocol": {**vars(args), "kfold": spec["folds"], "scored_class": spec["scored"], "grid": GRID},
        "summary": summary,
        "table": table,
        "folds": folds,
        "total_seconds": time.perf_counter() - t0,
    }
    write_json_atomic(out, json.loads(json.dumps(result, default=float)))
    print(f"\ntotal {result['total_seconds']:.0f} s; written to {out}")


if __name__ == "__main__":
    main()
