"""Tiled inference on a huge image: peak memory of an 8192 x 8192 RGB image through ``unet_resnet18``, and
tiled output against a whole-image pass where the whole image still fits.

    python benchmarks/large_image.py [--size 8192] [--tile 512] [--threads 2]

1. A mosaic of CamVid val frames (real street scenes) is written as a tiled, zlib-compressed TIFF, tile by
   tile (the script never holds the image whole).
2. ``segscope.inference.predict_large`` segments it in a child process run under ``/usr/bin/time -v``
   (peak RSS, wall time), once with MONAI-style Gaussian blending and once with the exact placement.
3. On a 1024 x 1024 crop: softmax probabilities of the tiled passes against one whole-image pass, and the
   streamed blend against the in-memory ``sliding_window``.

The network is randomly initialised (BatchNorm statistics randomised too): memory and the equality of
tiled and whole-image outputs do not depend on what the weights learned.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid" / "val"


def make_model(classes: int = 11):
    import torch
    from tests.conftest import randomise_batchnorm

    from segscope.models.segmenter import DeepSegmenter

    torch.manual_seed(0)
    seg = DeepSegmenter("unet_resnet18", classes, in_channels=3)
    randomise_batchnorm(seg.model)
    seg.model.eval()
    return seg


def write_mosaic(path: Path, size: int, tile: int = 512) -> None:
    """A ``size``-square RGB mosaic of CamVid val frames as a tiled TIFF, written tile by tile."""
    import tifffile
    from PIL import Image

    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(CAMVID.glob("*.png"))[:16]]
    fh, fw = frames[0].shape[:2]

    def tiles():
        for y in range(0, size, tile):
            for x in range(0, size, tile):
                block = np.empty((tile, tile, 3), np.uint8)
                for r in range(y // fh, (y + tile - 1) // fh + 1):  # the mosaic cells the tile overlaps
                    for c in range(x // fw, (x + tile - 1) // fw + 1):
                        frame = frames[(r * 7 + c) % len(frames)]
                        y0, y1 = max(y, r * fh), min(y + tile, (r + 1) * fh)
                        x0, x1 = max(x, c * fw), min(x + tile, (c + 1) * fw)
                        block[y0 - y : y1 - y, x0 - x : x1 - x] = frame[
                            y0 - r * fh : y1 - r * fh, x0 - c * fw : x1 - c * fw
                        ]
                yield block

    tifffile.imwrite(
        path, tiles(), shape=(size, size, 3), dtype=np.uint8, tile=(tile, tile), compression="zlib"
    )


def child(args: argparse.Namespace) -> None:
    import time

    import torch

    from segscope.inference.large_predict import TileSpec, predict_large

    torch.set_num_threads(args.threads)
    seg = make_model()
    spec = TileSpec(tile=args.tile, overlap=0.25, batch=args.batch, mode=args.mode, halo=args.halo)
    t = time.perf_counter()
    predict_large(seg, args.image, args.out, spec, preview=Path(args.out).with_suffix(".png"), progress=False)
    print(json.dumps({"seconds": time.perf_counter() - t}))


def measure(image: Path, out: Path, mode: str, args: argparse.Namespace) -> dict:
    cmd = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        __file__,
        "--child",
        "--image",
        str(image),
        "--out",
        str(out),
    ]
    cmd += [
        "--mode",
        mode,
        "--tile",
        str(args.tile),
        "--batch",
        str(args.batch),
        "--threads",
        str(args.threads),
    ]
    if args.halo is not None:
        cmd += ["--halo", str(args.halo)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
    return {"mode": mode, "peak_rss_gb": rss_kb / 1024**2, "seconds": seconds}


def equality(image_path: Path, args: argparse.Namespace) -> list[tuple[str, float]]:
    import torch

    from segscope.data.torch_dataset import image_to_tensor
    from segscope.inference.large_image import open_image_reader
    from segscope.inference.large_predict import TileSpec, stream_segmenter
    from segscope.inference.sliding_window import sliding_window
    from segscope.inference.streaming import receptive_radius

    torch.set_num_threads(args.threads)
    seg = make_model()
    with open_image_reader(image_path) as reader:
        crop = reader.read(2048, 3072, 2048, 3072)
    x = image_to_tensor(crop, seg.mean, seg.std)[None]
    model = seg.inference_model()
    with torch.inference_mode():
        whole = model(x)[0].softmax(0)
        memory = sliding_window(model, x, args.tile, overlap=0.25, batch_size=args.batch)[0].softmax(0)
    radius = receptive_radius(seg.model, 3, 1024)
    rows = [("receptive radius (px, autograd)", float(radius))]

    def streamed(spec) -> torch.Tensor:
        from segscope.inference.large_image import ImageReader

        parts = []
        stream_segmenter(seg, ImageReader(crop), spec, lambda y0, l: parts.append(l.clone()), progress=False)
        return torch.cat(parts, 1).softmax(0)

    blend = streamed(TileSpec(tile=args.tile, overlap=0.25, batch=args.batch))
    rows.append(("blend (streamed) vs in-memory sliding_window", float((blend - memory).abs().max())))
    rows.append(("blend vs whole image", float((blend - whole).abs().max())))
    for halo in (64, 128, None):
        exact = streamed(TileSpec(tile=256, mode="exact", halo=halo))
        name = f"exact, halo {halo if halo is not None else f'{radius} (auto)'} vs whole image"
        rows.append((name, float((exact - whole).abs().max())))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--halo", type=int, default=None)
    p.add_argument("--modes", default="blend,exact")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--image", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="blend", help=argparse.SUPPRESS)
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory(prefix="segscope-large-") as tmp:
        image = Path(tmp) / "mosaic.tif"
        write_mosaic(image, args.size)
        print(f"{args.size}x{args.size} RGB tiled TIFF: {image.stat().st_size / 1e6:.0f} MB on disk, "
              f"{args.size**2 * 3 / 1e9:.2f} GB decoded")  # fmt: skip
        for name, diff in equality(image, args):
            print(f"{name:48s} {diff:.2e}" if "radius" not in name else f"{name:48s} {diff:.0f}")
        print(f"{'mode':6s} {'tile':>5s} {'peak RSS GB':>12s} {'seconds':>8s}")
        for mode in args.modes.split(","):
            r = measure(image, Path(tmp) / f"labels_{mode}.tif", mode, args)
            print(f"{mode:6s} {args.tile:5d} {r['peak_rss_gb']:12.2f} {r['seconds']:8.0f}")


if __name__ == "__main__":
    main()
