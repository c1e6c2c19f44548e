"""Fixtures of the web-app tests: an app over classical methods, PNG bytes, a job poller."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def half_image(h: int = 40, w: int = 60) -> np.ndarray:
    """Dark left half (30), bright right half (200): Otsu splits it exactly at the middle column."""
    image = np.full((h, w), 30, np.uint8)
    image[:, w // 2 :] = 200
    return image


def wait(client, job: dict, timeout: float = 30.0) -> dict:
    """Poll ``/api/jobs/{id}`` until the job is final."""
    deadline = time.monotonic() + timeout
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout} s"
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['job_id']}").json()
    return job


def upload(client, array: np.ndarray, name: str = "img.png") -> dict:
    r = client.post(
        "/api/images", content=png_bytes(array), headers={"content-type": "image/png", "x-filename": name}
    )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def make_client():
    from fastapi.testclient import TestClient

    from segscope.serve import MethodCatalogue, create_app

    clients = []

    def make(run_dirs=(), classical=("otsu", "grabcut", "random_walker"), **options):
        client = TestClient(create_app(MethodCatalogue(list(run_dirs), classical=list(classical)), **options))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    from segscope import create_segmenter, open_dataset
    from tests.conftest import write_folder_dataset

    root = tmp_path_factory.mktemp("serve_run")
    data = write_folder_dataset(root / "discs", n=2, size=48)
    seg = create_segmenter(
        "unet_small", num_classes=2, epochs=1, batch_size=2, samples_per_epoch=2, augment="none", device="cpu"
    )
    seg.fit(open_dataset(data), out_dir=root / "unet", progress=False)
    return root / "unet"
