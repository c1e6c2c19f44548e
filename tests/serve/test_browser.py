"""End to end in a real browser: the server on a free port, Debian's chromium driven by Playwright.

Uploads an ISBI 2012 slice, runs a trained run and Otsu, checks both overlays render, prompts GrabCut
with a box drawn by the mouse, moves the opacity slider, and checks the page logged no console error.
Set SEGSCOPE_SCREENSHOT=path.png to keep the screenshot.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)"),
]
SAMPLE = Path(__file__).resolve().parents[2] / "src" / "segscope" / "sample" / "isbi2012_sample" / "images"
OVERLAYS_READY = """n => {
  const imgs = [...document.querySelectorAll('.result img.overlay')];
  return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


@pytest.fixture
def server(tiny_run):
    import uvicorn

    from segscope.serve import MethodCatalogue, create_app

    app = create_app(MethodCatalogue([tiny_run], classical=["otsu", "grabcut", "random_walker"]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(10)


def test_page_segments_compares_and_prompts(server, tmp_path):
    isbi = SHARED_DATA / "isbi2012" / "images" / "00.png"
    image = isbi if isbi.is_file() else sorted(SAMPLE.iterdir())[0]
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        # the test's own wait_for_function predicates are evaluated as strings, which the page's CSP
        # forbids; the app's scripts do not need the bypass (the CSP is asserted in test_api)
        page = browser.new_context(bypass_csp=True, viewport={"width": 1300, "height": 1000}).new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server)
        page.wait_for_selector("input[name=method]")
        assert (
            page.is_checked("input[value=otsu]") and page.locator("input[name=method]:checked").count() == 2
        )
        page.set_input_files("#file", str(image))
        page.wait_for_function("() => !document.querySelector('#run').disabled")
        page.click("#run")
        page.wait_for_function(OVERLAYS_READY, arg=2, timeout=60_000)
        titles = page.locator(".result figcaption b").all_inner_texts()
        assert sorted(titles) == ["otsu", "unet_small (unet)"]
        legend = page.locator(".result .legend").first.inner_text()
        assert "%" in legend

        # a box drawn on the input prompts GrabCut, which then re-runs on it
        page.check("input[value=grabcut]")
        page.check("input[name=tool][value=box]")
        box = page.locator("#input-canvas").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7, steps=5)
        page.mouse.up()
        page.wait_for_function(OVERLAYS_READY, arg=3, timeout=60_000)
        assert "grabcut + prompt" in page.locator(".result figcaption b").all_inner_texts()

        page.fill("#opacity", "20")
        page.dispatch_event("#opacity", "input")
        opacity = page.eval_on_selector(".result img.overlay", "i => getComputedStyle(i).opacity")
        assert float(opacity) == pytest.approx(0.2)
        shot = Path(os.environ.get("SEGSCOPE_SCREENSHOT", tmp_path / "serve.png"))
        page.screenshot(path=str(shot), full_page=True)
        assert errors == [], errors  # before the bad upload below, whose 400 the console reports

        bad = tmp_path / "notes.png"
        bad.write_text("not an image")
        page.set_input_files("#file", str(bad))
        page.wait_for_selector("#message:not([hidden])")
        assert "notes.png: cannot read image" in page.inner_text("#message")
        browser.close()
    assert shot.stat().st_size > 10_000
