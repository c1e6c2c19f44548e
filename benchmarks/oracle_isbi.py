"""Quality-inference oracle on ISBI 2012: how well it predicts quality, and what refinement does.

One held-out fold of a seeded KFold(5) over the 30 ISBI slices. The oracle (Fernandes, Cruz & Cardoso,
IJCNN 2018) is trained on the 24 training slices only (degraded membrane masks, images at 128x128, a
CPU time budget). On the 6 held-out slices we report

* the oracle's Pearson / Spearman correlation and MAE between predicted and true Dice of fresh
  degradations (and of the Otsu and U-Net masks),
* membrane Dice / IoU (foreground = class 0, membrane), pixel error and the adapted Rand error of the
  4-connected cell regions (segscope's ISBI metric), before vs after refinement, for (a) synthetically
  degraded true masks, (b) Otsu thresholding fitted on the training slices, (c) a small under-trained
  U-Net, and (d) ascent from an empty mask (the oracle alone).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/oracle_isbi.py            # ~10 min on one core
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/oracle_isbi.py --budget 60 --unet-budget 30   # quick
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import KFold

import segscope
from segscope.io import write_json_atomic
from segscope.metrics import foreground_rand_error, pixel_error
from segscope.oracle import degrade_mask, evaluate_oracle, refine_mask, segment_from_scratch, train_oracle
from segscope.oracle.degrade import soft_dice
from segscope.oracle.evaluate import agreement

ROOT = Path(__file__).resolve().parents[1]
MEMBRANE, CELL = 0, 1


def scores(p_membrane: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Hard (p >= 0.5) membrane Dice / IoU, pixel error and cell adapted Rand error of one map."""
    membrane = p_membrane >= 0.5
    truth = labels == MEMBRANE
    inter, total = float((membrane & truth).sum()), float(membrane.sum() + truth.sum())
    pred = np.where(membrane, MEMBRANE, CELL).astype(np.int64)
    return {
        "dice": 2 * inter / total if total else 1.0,
        "iou": inter / (total - inter) if total - inter else 1.0,
        "pixel_error": pixel_error(pred, labels),
        "rand_error": foreground_rand_error(pred, labels, foreground=CELL),
    }


def threshold_masks(train) -> dict[int, list[tuple[int, np.ndarray]]]:
    """Classical-method outputs for the oracle's pool: dark-pixel thresholds (Otsu-like membrane maps)
    of every *training* slice at a few quantiles and smoothings."""
    from scipy import ndimage

    out = {}
    for i in range(len(train)):
        grey = train.load_image(i)[..., 0].astype(np.float32)
        masks = []
        for sigma in (0.0, 2.0):
            g = ndimage.gaussian_filter(grey, sigma) if sigma else grey
            masks += [(MEMBRANE, (g < np.quantile(g, q)).astype(np.float32)) for q in (0.15, 0.25, 0.35)]
        out[i] = masks
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "isbi2012"))
    parser.add_argument("--fold", type=int, default=0, help="which of the 5 folds is held out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=240, help="oracle training seconds")
    parser.add_argument("--unet-budget", type=float, default=90, help="U-Net training seconds")
    parser.add_argument("--samples-per-image", type=int, default=40)
    parser.add_argument("--base-channels", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=50, help="refinement steps (max)")
    parser.add_argument("--scratch-iterations", type=int, default=150)
    parser.add_argument("--degraded-per-image", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="hard-negative rounds (0: plain oracle)")
    parser.add_argument(
        "--no-method-masks", action="store_true", help="do not add intensity-threshold masks to the pool"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "oracle_isbi.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    ds = segscope.open_dataset(args.data)
    folds = list(KFold(5, shuffle=True, random_state=args.seed).split(np.arange(len(ds))))
    train_idx, test_idx = folds[args.fold]
    train, test = ds.subset(sorted(train_idx)), ds.subset(sorted(test_idx))
    print(f"fold {args.fold}: train {len(train)} slices, held out {test.stems}")

    with tempfile.TemporaryDirectory(prefix="oracle-isbi-") as tmp:
        t0 = time.perf_counter()
        run = train_oracle(
            train,
            out_dir=Path(tmp) / "oracle",
            classes=[MEMBRANE],
            size=args.size,
            samples_per_image=args.samples_per_image,
            epochs=1000,
            time_budget_s=args.budget,
            base_channels=args.base_channels,
            seed=args.seed,
            device="cpu",
            extra_masks=None if args.no_method_masks else threshold_masks(train),
            hard_negative_rounds=args.rounds,
        )
        oracle = run.oracle
        oracle_seconds = time.perf_counter() - t0
    held_out = evaluate_oracle(oracle, test, samples_per_image=16, seed=args.seed + 99)
    print(
        f"oracle: {len(run.history)} epochs in {oracle_seconds:.0f} s; held-out degraded masks: "
        f"pearson {held_out['pearson']:.3f} spearman {held_out['spearman']:.3f} MAE {held_out['mae']:.3f}"
    )

    t0 = time.perf_counter()
    otsu = segscope.create_segmenter("otsu", num_classes=2).fit(train, progress=False)
    otsu_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    unet = segscope.create_segmenter(
        "unet",
        num_classes=2,
        in_channels=1,
        base_channels=8,
        epochs=1000,
        crop_size=128,
        augment="em",
        device="cpu",
    )
    unet.fit(train, time_budget_s=args.unet_budget, progress=False)
    unet_seconds = time.perf_counter() - t0

    rows: dict[str, list[dict]] = {"degraded": [], "otsu": [], "unet": [], "scratch": []}
    opts = {"class_index": MEMBRANE, "iterations": args.iterations}
    for i in range(len(test)):
        image, labels = test.load_image(i), test.load_mask(i)
        truth = labels == MEMBRANE
        starts = []
        for k in range(args.degraded_per_image):
            d = degrade_mask(truth, rng=np.random.default_rng([args.seed, 7, i, k]), scale=512 / args.size)
            starts.append(("degraded", d.mask))
        starts.append(("otsu", otsu.predict_proba(image)[MEMBRANE]))
        starts.append(("unet", unet.predict_proba(image)[MEMBRANE]))
        for name, start in starts:
            r = refine_mask(oracle, image, start, **opts)
            rows[name].append(_row(test.stems[i], start, r, labels))
        r = segment_from_scratch(
            oracle, image, init="empty", class_index=MEMBRANE, iterations=args.scratch_iterations
        )
        rows["scratch"].append(_row(test.stems[i], np.zeros(truth.shape, np.float32), r, labels))
        print(f"  {test.stems[i]} done ({time.perf_counter() - t_start:.0f} s)")

    method_agreement = {
        name: agreement(
            np.array([r["q_before"] for r in rows[name]]),
            np.array([r["true_dice_before"] for r in rows[name]]),
        )
        for name in ("degraded", "otsu", "unet")
    }
    summary = {name: _summary(rs) for name, rs in rows.items()}
    table = _table(summary)
    print()
    print(table)
    result = {
        "paper": "Fernandes, Cruz & Cardoso, Deep image segmentation by quality inference, IJCNN 2018",
        "protocol": {
            "data": args.data,
            "fold": args.fold,
            "kfold": 5,
            "seed": args.seed,
            "train": list(train.stems),
            "test": list(test.stems),
            "foreground": "membrane (class 0)",
            "quality": "dice",
            "size": args.size,
            "threads": args.threads,
            **{k: v for k, v in vars(args).items() if k not in ("data", "out", "seed", "fold", "size")},
        },
        "oracle": {
            "epochs": len(run.history),
            "seconds": oracle_seconds,
            "samples": args.samples_per_image * len(train),
            "held_out_degraded": held_out,
            "on_method_masks": method_agreement,
        },
        "fit_seconds": {"otsu": otsu_seconds, "unet": unet_seconds},
        "summary": summary,
        "per_image": rows,
        "table": table,
        "total_seconds": time.perf_counter() - t_start,
    }
    write_json_atomic(args.out, json.loads(json.dumps(result, default=float)))
    print(f"\ntotal {result['total_seconds']:.0f} s; written to {args.out}")


def _row(stem: str, start: np.ndarray, r, labels: np.ndarray) -> dict:
    before, after = scores(start, labels), scores(r.mask, labels)
    return {
        "image": stem,
        "q_before": r.initial_quality,
        "q_after": r.final_quality,
        "true_dice_before": soft_dice(start, labels == MEMBRANE),
        "steps": r.best_iteration,
        **{f"{k}_before": v for k, v in before.items()},
        **{f"{k}_after": v for k, v in after.items()},
    }


def _summary(rows: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {"n": len(rows)}
    for key in rows[0]:
        if key != "image":
            out[key] = float(np.nanmean([r[key] for r in rows]))
    out["dice_improved_fraction"] = float(np.mean([r["dice_after"] > r["dice_before"] for r in rows]))
    out["rand_improved_fraction"] = float(
        np.mean([r["rand_error_after"] < r["rand_error_before"] for r in rows])
    )
    return out


def _table(summary: dict[str, dict[str, float]]) -> str:
    names = ("pred q", "Dice", "IoU", "pixel err", "Rand err")
    head = f"{'start':<10}{'n':>3}  " + "  ".join(f"{n:>13}" for n in names) + f"  {'Dice up':>7}"
    lines = [head, "-" * len(head)]
    for name, s in summary.items():
        cells = [
            f"{s[f'{k}_before']:.3f}->{s[f'{k}_after']:.3f}"
            for k in ("dice", "iou", "pixel_error", "rand_error")
        ]
        lines.append(
            f"{name:<10}{int(s['n']):>3}  {s['q_before']:.3f}->{s['q_after']:.3f}  "
            + "  ".join(f"{c:>13}" for c in cells)
            + f"  {s['dice_improved_fraction']:>6.0%}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
