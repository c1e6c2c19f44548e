"""BSDS500 boundary benchmark: classical boundary maps against the human ceiling, ODS / OIS / AP.

Every image of ``../shared/data/bsds500`` (60 train images, 4-8 human annotations each) is scored with
:mod:`segscope.metrics.boundary_benchmark` against all its annotations at once, matching tolerance 0.0075
of the image diagonal (the official benchmark's), ``--thresholds`` thresholds evenly spaced in (0, 1). The
human row scores every annotation against the other annotations of its image (leave one annotator out).
Nothing is tuned: the methods run with their fixed defaults (:mod:`segscope.classical.edges`).

    python benchmarks/bsds_boundaries.py [--thresholds 25] [--limit N]     # alone on the machine

Anchors (BSDS500 *test*, 200 images, official code; Arbeláez et al. TPAMI 2011): humans F about 0.80;
gPb-owt-ucm ODS 0.73 / OIS 0.76 / AP 0.73; Canny ODS about 0.60. These 60 train images are not that set.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from segscope.classical.edges import EDGE_METHODS
from segscope.data.annotators import MultiAnnotatorDataset
from segscope.metrics.boundary_benchmark import boundary_counts, human_counts, ods_ois_ap

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "bsds500"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thresholds", type=int, default=25)
    ap.add_argument("--limit", type=int, help="first N images only (smoke run)")
    ap.add_argument("--methods", default=",".join(EDGE_METHODS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bsds_boundaries.json"))
    args = ap.parse_args()
    data = MultiAnnotatorDataset(DATA)
    n = min(len(data), args.limit or len(data))
    thresholds = np.linspace(0, 1, args.thresholds + 2)[1:-1]
    truths = [data.load_boundaries(i) for i in range(n)]
    print(f"{n} images, {sum(len(t) for t in truths)} annotations, {len(thresholds)} thresholds")
    rows: dict[str, dict] = {}
    t0 = time.perf_counter()
    human = ods_ois_ap([human_counts(t) for t in tqdm(truths, desc="human", leave=False)], np.array([0.5]))
    rows["human (leave one annotator out)"] = {**human, "seconds_per_image": (time.perf_counter() - t0) / n}
    methods = args.methods.split(",")
    counts: dict[str, list[np.ndarray]] = {name: [] for name in methods}
    seconds = dict.fromkeys(methods, 0.0)
    for i in tqdm(range(n), desc="methods", leave=False):
        image = data.load_image(i)  # decoded once for every method
        for name in methods:
            t0 = time.perf_counter()
            soft = EDGE_METHODS[name](image)
            seconds[name] += time.perf_counter() - t0
            counts[name].append(boundary_counts(soft, truths[i], thresholds))
    for name in methods:
        rows[name] = {**ods_ois_ap(counts[name], thresholds), "seconds_per_image": seconds[name] / n}
    print(f"{'method':<34}{'ODS F':>7}{'P':>7}{'R':>7}{'OIS F':>7}{'AP':>7}{'s/image':>9}")
    for name, r in rows.items():
        ap_text = f"{r['ap']:>7.3f}" if name in EDGE_METHODS else f"{'-':>7}"
        print(
            f"{name:<34}{r['ods_f']:>7.3f}{r['ods_precision']:>7.3f}{r['ods_recall']:>7.3f}{r['ois_f']:>7.3f}"
            f"{ap_text}{r['seconds_per_image']:>9.2f}"
        )
    Path(args.out).write_text(
        json.dumps({"images": n, "thresholds": len(thresholds), "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
