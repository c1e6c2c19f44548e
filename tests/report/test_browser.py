"""Render a real bench report in headless Chromium and check that it displays."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from segscope.bench import BenchPlan, run_bench
from tests.bench.test_bench import MeanThreshold  # noqa: F401  (registers the test methods)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
def test_report_renders_with_every_image(disc_dataset: Path, tmp_path: Path):
    plan = BenchPlan(
        data=str(disc_dataset),
        methods=["test_mean_threshold", "test_darker", "test_broken"],
        cv="kfold:2",
        workers=1,
        gallery=2,
    )
    run_bench(plan, tmp_path / "bench", progress=False)
    url = (tmp_path / "bench" / "report.html").as_uri()
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    broken = int(re.search(r'data-broken-images="(\d+)"', dom).group(1))
    assert images >= 5 and broken == 0  # heat map, 2 confusion matrices, 2 gallery rows
    assert dom.count("<tr>") >= 3 and "test_mean_threshold" in dom and "always fails" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1000,1400",
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 10  # not a blank page
