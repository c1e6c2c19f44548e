"""Jobs: progress, cancel, timeout; refinement by the oracle through the API; a trained run on the page;
the ``serve`` command's own checks."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from segscope.cli.main import main
from segscope.serve.jobs import Cancelled, Job, JobManager
from tests.oracle.helpers import DiceOracle, disc, grey_image
from tests.serve.conftest import upload, wait


def settle(job, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while job.state in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.01)
    return job


def test_stepped_job_reports_progress_and_stops_when_cancelled():
    jobs = JobManager(workers=1)
    steps, halfway = [], threading.Event()

    def work(job):
        for i in range(1000):
            job.checkpoint(i / 1000)
            steps.append(i)
            if i == 10:
                halfway.set()
            time.sleep(0.002)
        return "finished"

    job = jobs.submit("slow", work)
    assert halfway.wait(5)
    assert job.snapshot()["progress"] > 0
    job.cancel()
    settle(job)
    time.sleep(0.05)
    assert job.state == "cancelled" and job.result is None
    assert len(steps) < 1000  # the work stopped at its next checkpoint
    jobs.shutdown()


def test_one_call_job_cancelled_or_timed_out_drops_its_result():
    jobs = JobManager(workers=1, timeout_s=0.2)
    release = threading.Event()
    blocked = jobs.submit("one call", lambda job: release.wait(5) and "labels")
    queued = jobs.submit("queued", lambda job: "never")
    time.sleep(0.3)
    assert blocked.snapshot()["state"] == "failed" and "timed out after 0 s" in blocked.message
    release.set()
    settle(queued)
    assert queued.state == "failed" and queued.result is None  # it timed out in the queue: never ran
    assert blocked.result is None
    jobs.shutdown()
    job = Job("j000001", "x", timeout_s=60)
    job.checkpoint(0.5)  # running on: no exception
    job.cancel()
    with pytest.raises(Cancelled):
        job.checkpoint(0.6)
    assert job.state == "cancelled"


def test_refine_raises_true_dice_with_a_toy_oracle(make_client):
    size = 48
    target = disc(size, 14)  # what the oracle scores against
    image = grey_image(disc(size, 8))  # the image shows a smaller disc: otsu's mask is too small
    client = make_client(oracle=DiceOracle(target, size=32))
    info = upload(client, image[..., 0])
    job = wait(
        client, client.post("/api/segment", json={"image_id": info["image_id"], "method": "otsu"}).json()
    )
    result = job["result"]
    before = result["quality"]["object"]

    def true_dice(labels):
        m = labels == 1
        return 2 * (m & target).sum() / (m.sum() + target.sum())

    labels0 = np.asarray(Image.open(io.BytesIO(client.get(result["labels_url"]).content)))
    refine = client.post("/api/refine", json={"result_id": result["result_id"], "iterations": 40}).json()
    refined = wait(client, refine)
    assert refined["state"] == "done", refined
    r = refined["result"]
    labels1 = np.asarray(Image.open(io.BytesIO(client.get(r["labels_url"]).content)))
    assert r["refined_from"] == result["result_id"] and r["quality_before"] == {"object": before}
    assert r["quality"]["object"] > before + 0.1
    assert true_dice(labels1) > true_dice(labels0) + 0.1  # the toy oracle's quality is the true Dice
    assert len(r["quality_curve"]) > 1
    bad = client.post("/api/refine", json={"result_id": result["result_id"], "iterations": 0})
    assert bad.status_code == 400 and "iterations" in bad.json()["detail"]


def test_a_trained_run_is_offered_without_its_path(make_client, tiny_run):
    import segscope

    client = make_client(run_dirs=[tiny_run], classical=())
    info = client.get("/api/info")
    (method,) = info.json()["methods"]
    assert method["kind"] == "run" and method["label"] == "unet_small (unet)" and method["prompts"] == []
    assert str(tiny_run) not in info.text
    image = grey_image(disc(48, 10))
    meta = upload(client, image[..., 0])
    job = wait(
        client,
        client.post("/api/segment", json={"image_id": meta["image_id"], "method": method["id"]}).json(),
    )
    labels = np.asarray(Image.open(io.BytesIO(client.get(job["result"]["labels_url"]).content)))
    np.testing.assert_array_equal(labels, segscope.load(tiny_run).predict(image))  # the run, rebuilt


def test_serve_command_checks_its_arguments(tmp_path, capsys, monkeypatch):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run directory not found" in err
    assert main(["serve", "--classical", "otsu,unet_small"]) == 2
    assert "unet_small is not a classical method" in capsys.readouterr().err
    assert main(["serve", "--classical", "none"]) == 2
    assert "nothing to serve" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
    calls = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append(kw))
    assert main(["serve", "--host", "0.0.0.0", "--port", "8123", "--classical", "otsu"]) == 0
    captured = capsys.readouterr()
    assert "warning: binding to 0.0.0.0" in captured.err and "http://0.0.0.0:8123/" in captured.out
    assert calls[0]["host"] == "0.0.0.0" and calls[0]["port"] == 8123
    assert main(["serve", "--classical", "otsu"]) == 0
    assert "warning" not in capsys.readouterr().err  # localhost by default: no warning


def test_caches_are_bounded_in_items_and_bytes():
    from segscope.serve.results import LRUStore

    store = LRUStore(3, max_bytes=10, nbytes=len)
    for key in "abc":
        store.put(key, b"xxx")  # 9 bytes
    assert len(store) == 3 and store.bytes == 9
    store.get("a")  # a is now the most recently used
    store.put("d", b"xx")  # 11 bytes: b, the least recently used, goes
    assert store.get("b") is None and store.get("a") == b"xxx" and store.bytes == 8
    store.put("e", b"x" * 50)  # one item over the budget is still kept (alone)
    assert len(store) == 1 and store.get("e") is not None


def test_a_local_oracle_scores_and_refines_in_the_app():
    import torch

    from segscope.oracle.local import LocalQualityOracle
    from segscope.serve.app import Oracle
    from segscope.serve.jobs import Job

    torch.manual_seed(0)
    local = LocalQualityOracle(1, num_classes=2, base_channels=2, depth=1).eval()
    image = np.random.default_rng(0).integers(0, 255, (24, 24, 1), dtype=np.uint8)
    labels = np.zeros((24, 24), np.int64)
    labels[5:15, 6:18] = 1
    scores = Oracle(local).quality(image, labels, ["background", "object"])
    assert set(scores) == {"object"}
    assert scores["object"] == pytest.approx(local.score_labels(image, labels), abs=1e-4)
    refined, curve = Oracle(local).refine(image, labels, 3, Job("j", "refine", 10.0))
    assert refined.shape == labels.shape and len(curve) == 4
