"""PointNet part segmentation trained on a GENERATED set, tested on generated shapes and run on 16 real
ShapeNet-Part shapes.

Qi et al., "PointNet", CVPR 2017 report 83.7 instance mIoU on the full ShapeNet-Part test set; nothing here
is comparable to that number: the training shapes are procedural (segscope.points.shapes: labelled
primitives with random proportions, ShapeNet-Part's 16 categories and part numbering), not ShapeNet.
- Training: ``--per-category`` generated shapes per category (seed ``--seed``), PointNet (``--width``,
  ``--points`` per shape, Adam 1e-3, batch 32) for ``--time-budget`` seconds on the CPU; the checkpoint is
  chosen by instance mIoU on a generated val split (seed + 1000).
- Generated test: ``--test-per-category`` shapes from another seed (seed + 2000), never used for selection.
- Real shapes: the one ShapeNet-Part shape per category in ../shared/data/shapenet_part_sample, all of its
  points. Its IoU measures TRANSFER from synthetic shapes to real ones, with one shape per category.
IoU as the paper computes it: per shape the mean IoU over the category's parts (a part absent from both
prediction and truth counts 1), predictions restricted to the category's parts; instance mIoU = mean over
shapes, class mIoU = mean over categories.
The defaults (width 0.25, 1024 points) fit a 10-minute CPU budget; width 1.0 with 2048 points is the
paper's network (about 25 s a step on 2 cores, ~25 steps in 10 minutes). A full run takes about 11 minutes:

    .venv/bin/python benchmarks/pointnet_parts.py                     # --time-budget 600 (default)
    .venv/bin/python benchmarks/pointnet_parts.py --time-budget 20 --out /tmp/pn   # a smoke run
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from segscope.io import write_json_atomic, write_text_atomic
from segscope.points import (
    GENERATED_CATEGORIES,
    NUM_PARTS,
    PART_NAMES,
    PartSegmenter,
    TrainConfig,
    generate_set,
    load_shapenet_part,
    part_ious,
    train_part_segmenter,
)
from segscope.points.report import save_scatter_png
from segscope.points.train import evaluate_clouds

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "shapenet_part_sample"


def category_table(summary: dict) -> list[str]:
    lines = [f"  {'category':<11}{'shapes':>7}{'mIoU':>7}  part IoU"]
    for name, c in summary["per_category"].items():
        parts = ", ".join(f"{p} {v:.3f}" for p, v in c["part_iou"].items())
        lines.append(f"  {name:<11}{c['n_shapes']:>7}{c['miou']:>7.3f}  {parts}")
    lines.append(
        f"  instance mIoU {summary['instance_miou']:.3f} (mean over {summary['n_shapes']} shapes); "
        f"class mIoU {summary['class_miou']:.3f} (mean over {len(summary['per_category'])} categories)"
    )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time-budget", type=float, default=600.0, help="training seconds (default 600)")
    ap.add_argument("--per-category", type=int, default=64, help="generated training shapes per category")
    ap.add_argument("--val-per-category", type=int, default=8)
    ap.add_argument("--test-per-category", type=int, default=16)
    ap.add_argument("--points", type=int, default=1024, help="points per training shape (paper: 2048)")
    ap.add_argument("--width", type=float, default=0.25, help="channel multiplier (paper: 1.0)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real", default=str(SAMPLE), help="ShapeNet-Part folder of real shapes")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pointnet_parts"), help="pictures")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "pointnet_parts.txt"))
    args = ap.parse_args()
    started = time.monotonic()
    out = Path(args.out)
    train = generate_set(args.per_category, seed=args.seed)
    val = generate_set(args.val_per_category, seed=args.seed + 1000)
    test = generate_set(args.test_per_category, seed=args.seed + 2000)
    config = TrainConfig(
        points=args.points,
        batch_size=args.batch_size,
        width=args.width,
        time_budget_s=args.time_budget,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        run = train_part_segmenter(train, val, tmp, config, data={"source": "generated"}, progress=True)
        segmenter = PartSegmenter.from_run(tmp)
    best, last = run["best"], run["history"][-1]
    lines = [
        "PointNet part segmentation (Qi et al., CVPR 2017) trained on a GENERATED set of procedural shapes",
        f"settings: width {args.width} (paper 1.0), {args.points} points per training shape (paper 2048), "
        f"batch {args.batch_size}, Adam lr 1e-3, L_reg weight 0.001, seed {args.seed}, "
        f"{torch.get_num_threads()} threads",
        f"generated: {args.per_category} train / {args.val_per_category} val / {args.test_per_category} test "
        f"shapes per category x {len(GENERATED_CATEGORIES)} categories (seeds {args.seed}, "
        f"{args.seed + 1000}, {args.seed + 2000}), 2048 points each",
        f"training: {last['step']} steps, {last['epoch']} epochs in {last['seconds']:.0f} s (budget "
        f"{args.time_budget:.0f} s); kept step {best['step']} (val instance mIoU "
        f"{best['val_instance_miou']:.3f})",
        "",
        "Generated TEST split (seed never used for training or selection), predictions restricted to the "
        "category's parts:",
    ]
    summary, preds = evaluate_clouds(segmenter, test)
    lines += category_table(summary)
    for k, category in enumerate(GENERATED_CATEGORIES[:4]):
        i = next(j for j, c in enumerate(test) if c.category == category)
        save_scatter_png(
            out / f"generated_{k}_{category.lower()}.png",
            test[i].points,
            test[i].labels,
            preds[i],
            f"generated {category} (test)",
        )

    real = load_shapenet_part(args.real) if Path(args.real).is_dir() else []
    real_rows = []
    if real:
        real_summary, real_preds = evaluate_clouds(segmenter, real)
        lines += [
            "",
            "REAL ShapeNet-Part shapes (one per category, all points): this measures TRANSFER from the "
            "synthetic training shapes to real ones; per-shape mIoU and part IoU:",
        ]
        for cloud, pred in zip(real, real_preds):
            ious = part_ious(pred, cloud.labels, NUM_PARTS[cloud.category])
            covered = cloud.category in GENERATED_CATEGORIES
            parts = ", ".join(f"{p} {v:.3f}" for p, v in zip(PART_NAMES[cloud.category], ious))
            lines.append(
                f"  {cloud.category:<11}{len(cloud.points):>6} pts  mIoU {ious.mean():.3f}  {parts}"
                + ("" if covered else "  (category not generated)")
            )
            real_rows.append(
                {
                    "category": cloud.category,
                    "name": cloud.name,
                    "miou": float(ious.mean()),
                    "part_iou": ious.tolist(),
                    "covered": covered,
                }
            )
            save_scatter_png(
                out / f"real_{cloud.category.lower()}.png",
                cloud.points,
                cloud.labels,
                pred,
                f"real {cloud.category}: mIoU {ious.mean():.3f}",
            )
        lines.append(
            f"  mean over the {len(real)} real shapes (one per category, so instance = class mIoU): "
            f"{real_summary['instance_miou']:.3f}"
        )
    else:
        lines += ["", f"real shapes: {args.real} not found, skipped"]
    lines += ["", f"pictures (truth | prediction): {out}", f"total {time.monotonic() - started:.0f} s"]
    write_json_atomic(out / "pointnet_parts.json", {"generated_test": summary, "real": real_rows, "run": run})
    write_text_atomic(args.results, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
