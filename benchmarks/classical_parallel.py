"""Speed-up of ``predict_many(images, workers=2)`` (spawn process pool) over a serial ``predict`` loop.

Both sides predict the same ISBI 2012 slices (512x512) with the same untuned method; the parallel time
includes starting the pool (each spawned worker imports segscope). The label maps must be identical.
On a machine whose cores are busy with other work the ratio understates the speed-up.

    .venv/bin/python benchmarks/classical_parallel.py [--method random_walker] [--images 12] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "isbi2012"


def main(argv: list[str] | None = None) -> int:
    import segscope

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="random_walker", help="classical method (default random_walker)")
    p.add_argument("--images", type=int, default=12, help="ISBI slices to predict (default 12)")
    p.add_argument("--workers", type=int, default=2, help="pool processes (default 2)")
    p.add_argument("--repeats", type=int, default=1, help="timing repeats; the best is kept (default 1)")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"ISBI 2012 not found at {DATA}", file=sys.stderr)
        return 1
    ds = segscope.open_dataset(DATA)
    images = [ds.load_image(i) for i in range(min(args.images, len(ds)))]
    seg = segscope.create_segmenter(args.method, num_classes=2)
    serial_s, parallel_s = float("inf"), float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        serial = [seg.predict(im) for im in images]
        serial_s = min(serial_s, time.perf_counter() - t0)
        t0 = time.perf_counter()
        parallel = seg.predict_many(images, workers=args.workers)
        parallel_s = min(parallel_s, time.perf_counter() - t0)
    same = all(np.array_equal(a, b) for a, b in zip(serial, parallel))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.method}: {len(images)} ISBI slices 512x512, {os.cpu_count()} cores, load average {load:.1f}"
    )
    print(f"serial loop          {serial_s:8.2f} s  ({serial_s / len(images):.2f} s/image)")
    print(f"predict_many(w={args.workers})    {parallel_s:8.2f} s  (pool start-up included)")
    print(f"speed-up             {serial_s / parallel_s:8.2f}x   identical label maps: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
