"""A bench report in headless Chromium: every image decodes, sorting works, the page is not blank."""

import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
# Clicks the pixel_error header once (ascending), then records the method order and the header text.
CLICK_SORT = """<script>
window.addEventListener('load', () => {
  const table = document.getElementById('leaderboard');
  const th = [...table.tHead.rows[0].cells].find(c => c.textContent.startsWith('pixel_error'));
  th.click();
  document.body.dataset.order = [...table.tBodies[0].rows].map(r => r.cells[1].textContent).join(',');
  document.body.dataset.header = th.textContent;
});
</script></body>"""


def _chromium(*args: str, profile: Path) -> str:
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    return done.stdout


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)")
def test_report_displays_in_chromium(small_bench, tmp_path: Path):
    out, results = small_bench
    report = out / "report.html"
    probe = tmp_path / "probe.html"  # the report plus a script that clicks a header
    probe.write_text(report.read_text().replace("</body>", CLICK_SORT))
    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri(), profile=tmp_path / "p1")
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    broken = int(re.search(r'data-broken-images="(\d+)"', dom).group(1))
    assert images == 16 and broken == 0
    by_error = sorted(results["leaderboard"], key=lambda e: e["pixel_error"])
    assert re.search(r'data-order="([^"]*)"', dom).group(1) == ",".join(e["method"] for e in by_error)
    assert re.search(r'data-header="([^"]*)"', dom).group(1).endswith("▲")
    assert '<table class="sortable" id="leaderboard">' in dom and "always fails" in dom

    shot = tmp_path / "shot.png"
    _chromium("--window-size=1200,1600", f"--screenshot={shot}", report.as_uri(), profile=tmp_path / "p2")
    pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("L"), np.float64)
    assert pixels.shape == (1600, 1200)
    assert pixels.std() > 20  # text, tables and figures, not a blank page
    assert (pixels < 100).mean() > 0.01  # dark pixels: text and images were drawn
