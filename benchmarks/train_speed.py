"""Training steps per second: segscope's Trainer against a plain PyTorch loop, same model, same batches.

For each model, thread count (1, 2) and precision (fp32, bf16 autocast) both loops train the same
architecture (built by segscope, same seed) on CamVid train at 176x240, batch 8, AdamW:

* plain: the peer scripts' loop (``../shared/benchmarks/peer_camvid_smp.py``) - images decoded and resized
  once into one tensor, random flips, ``cross_entropy``, ``zero_grad / backward / step``;
* segscope: ``create_segmenter(...).fit(...)`` - the whole engine: dataset decoding per sample, light
  augmentation, poly schedule, channels-last, gradient checks, checkpoints at each epoch.

Each loop runs a warm-up epoch of ``--steps`` steps, then a timed one of ``--steps`` steps; the ratio
segscope / plain of steps per second is measured in this run (run it alone on the machine).

    python benchmarks/train_speed.py --steps 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segscope.data import open_dataset
from segscope.data.torch_dataset import resize_pair
from segscope.factory import create_model, create_segmenter

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "camvid"
SIZE = (176, 240)
BATCH = 8
MODELS = ("unet_resnet18", "segnet_vgg16")


def plain_loop_seconds(name: str, x: torch.Tensor, y: torch.Tensor, steps: int, bf16: bool) -> float:
    """Seconds for ``steps`` optimizer steps of the peer's loop, after ``steps`` warm-up steps."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=11, in_channels=3).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    t0 = 0.0
    for step in range(2 * steps):
        if step == steps:
            t0 = time.perf_counter()
        idx = torch.randint(0, len(x), (BATCH,))
        xb, yb = x[idx], y[idx]
        if torch.rand(1) < 0.5:
            xb, yb = xb.flip(-1), yb.flip(-1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(xb), yb, ignore_index=11)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def segscope_seconds(name: str, train, steps: int, bf16: bool) -> float:
    """Seconds of the second of two ``steps``-step epochs of ``segscope``'s Trainer (its own log)."""
    seg = create_segmenter(
        name,
        num_classes=11,
        in_channels=3,
        epochs=2,
        samples_per_epoch=BATCH * steps,
        batch_size=BATCH,
        lr=1e-3,
        resize=list(SIZE),
        augment="light",
        amp=bf16,
        device="cpu",
    )
    with tempfile.TemporaryDirectory() as tmp:
        seg.fit(train, out_dir=tmp, progress=False)
    first, second = seg.history[0]["time_s"], seg.history[1]["time_s"]
    return second - first


def load_tensors(train) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain loop's preloaded, normalised train tensors (as the peer script)."""
    xs, ys = [], []
    for i in range(len(train)):
        image, mask = resize_pair(train.load_image(i), train.load_mask(i), SIZE)
        xs.append(image)
        ys.append(mask)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.5) / 0.25, torch.from_numpy(np.stack(ys)).long()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="timed steps (after as many warm-up steps)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    train = open_dataset(DATA, split="train")
    x, y = load_tensors(train)
    header = f"{'model':<16}{'threads':>8}{'precision':>10}{'plain steps/s':>15}{'segscope steps/s':>18}"
    print(header + f"{'ratio':>7}")
    for name in args.models.split(","):
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            for bf16 in (False, True):
                plain = args.steps / plain_loop_seconds(name, x, y, args.steps, bf16)
                ours = args.steps / segscope_seconds(name, train, args.steps, bf16)
                precision = "bf16" if bf16 else "fp32"
                row = f"{name:<16}{threads:>8}{precision:>10}{plain:>15.3f}{ours:>18.3f}"
                print(row + f"{ours / plain:>6.2f}x")


if __name__ == "__main__":
    main()
