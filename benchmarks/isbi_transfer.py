"""Transfer learning without network access: an encoder trained on CamVid, fine-tuned on 3 ISBI slices,
against the same network from scratch.

Source task: the U-Net-ResNet18 of ``benchmarks/camvid_imbalance.py --recipes ce`` (CamVid street scenes,
RGB; its run directory ``runs/camvid_ce``). Its encoder is loaded into a one-channel U-Net-ResNet18
(first convolution summed over RGB, :func:`segscope.models.encoders.base.adapt_input_conv`); the decoder
starts from scratch. Target task: ISBI 2012 membranes with only 3 labelled training slices; the other 27
slices are the test set. Every arm gets the same steps, seed, augmentation (``em``), crops and
schedule; the pretrained arms differ only in their initialisation, encoder freezing and encoder learning
rate. Repeated over several random 3-slice subsets; mean ± sd over subsets.

    python benchmarks/isbi_transfer.py [--source runs/camvid_ce] [--subsets 3] [--epochs 40]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import segscope
from segscope.evaluation import evaluate_segmenter
from segscope.io import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "isbi2012"
OUT = ROOT / "benchmarks" / "results" / "isbi_transfer.json"
RECIPE = dict(augment="em", crop_size=256, batch_size=8, samples_per_epoch=24, lr=2e-3, amp=True, loss="ce")


def arms(source: Path) -> dict[str, dict]:
    return {
        "scratch": {},
        "camvid encoder, fine-tuned": dict(pretrained=str(source), encoder_lr_scale=0.3),
        "camvid encoder, frozen 1/4, then fine-tuned": dict(
            pretrained=str(source), freeze_encoder_epochs=-1, encoder_lr_scale=0.3
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--source", default=str(ROOT / "runs" / "camvid_ce"), help="segscope run to transfer from"
    )
    ap.add_argument("--subsets", type=int, default=3, help="random 3-slice training subsets")
    ap.add_argument("--train-slices", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=40, help="epochs of 3 steps (24 crops of 256x256)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    source = Path(args.source)
    if not (source / "model.safetensors").is_file():
        raise SystemExit(
            f"{source}: no model.safetensors; run benchmarks/camvid_imbalance.py --recipes ce first"
        )
    full = segscope.open_dataset(DATA)
    rows = []
    for subset in range(args.subsets):
        order = np.random.default_rng(subset).permutation(len(full))
        train = full.subset(sorted(order[: args.train_slices].tolist()))
        test = full.subset(sorted(order[args.train_slices :].tolist()))
        for arm, extra in arms(source).items():
            if extra.get("freeze_encoder_epochs") == -1:
                extra = {**extra, "freeze_encoder_epochs": args.epochs // 4}
            seg = segscope.create_segmenter(
                "unet_resnet18",
                num_classes=2,
                in_channels=1,
                epochs=args.epochs,
                seed=subset,
                **RECIPE,
                **extra,
            )
            t0 = time.perf_counter()
            seg.fit(train, progress=False)
            fit_s = time.perf_counter() - t0
            m = evaluate_segmenter(seg, test, progress=False)
            row = {
                "subset": subset,
                "train": train.stems,
                "arm": arm,
                "pixel_error": m["pixel_error"],
                "rand_error": m["rand_error"],
                "fit_seconds": round(fit_s, 1),
            }
            rows.append(row)
            print(
                f"subset {subset} {arm:<44} pixel error {row['pixel_error']:.4f}  Rand error "
                f"{row['rand_error']:.4f}  ({fit_s:.0f} s)",
                flush=True,
            )
    summary = {}
    print(f"\n{'arm':<46}{'pixel error':>20}{'Rand error':>20}")
    for arm in arms(source):
        pe = np.array([r["pixel_error"] for r in rows if r["arm"] == arm])
        re = np.array([r["rand_error"] for r in rows if r["arm"] == arm])
        summary[arm] = {"pixel_error": [pe.mean(), pe.std()], "rand_error": [re.mean(), re.std()]}
        print(f"{arm:<46}{pe.mean():>12.4f} ± {pe.std():.4f}{re.mean():>12.4f} ± {re.std():.4f}")
    write_json_atomic(
        OUT,
        {
            "recipe": RECIPE,
            "epochs": args.epochs,
            "source": str(source),
            "rows": rows,
            "summary": json.loads(json.dumps(summary, default=float)),
        },
    )


if __name__ == "__main__":
    main()
