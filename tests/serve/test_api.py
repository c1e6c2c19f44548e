"""The web app's API through FastAPI's test client: uploads refused for the right reason, results correct
against hand-computed label maps, cached, prompted and refined."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import io
import struct
import time
import zlib

import numpy as np
from PIL import Image

from tests.serve.conftest import half_image, png_bytes, upload, wait


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels with almost no pixel data (a bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def post_image(client, data: bytes, content_type: str = "image/png", name: str = "x.png"):
    return client.post(
        "/api/images", content=data, headers={"content-type": content_type, "x-filename": name}
    )


def test_good_upload_round_trips_pixels_and_names_no_path(make_client):
    client = make_client()
    image = np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    info = upload(client, image, name="../../etc/passwd.png")
    assert info["width"] == 50 and info["height"] == 30 and info["channels"] == 3
    assert info["name"] == "passwd.png"  # the client's path is cut to a base name, used only in messages
    again = upload(client, image, name="other.png")
    assert again["image_id"] == info["image_id"]  # same pixels, same id: results are shared
    shown = np.asarray(Image.open(io.BytesIO(client.get(f"/api/images/{info['image_id']}.png").content)))
    np.testing.assert_array_equal(shown, image)


def test_refused_uploads_say_why_in_one_line(make_client):
    client = make_client(max_upload_bytes=5000, max_pixels=1_000_000)
    cases = [
        (post_image(client, b"hello", "text/plain"), 415, "unsupported content type text/plain"),
        (post_image(client, b"not an image at all", "image/png"), 400, "not a recognised image format"),
        (post_image(client, png_bytes(half_image())[:60]), 400, "cannot read image"),  # truncated
        (post_image(client, b""), 400, "empty"),
        (post_image(client, b"\0" * 6000), 413, "upload limit"),
        (
            post_image(client, png_claiming(2000, 1000)),
            400,
            "2000x1000 = 2.0 megapixels, over the limit of 1.0",
        ),
    ]
    for response, status, text in cases:
        detail = response.json()["detail"]
        assert response.status_code == status, detail
        assert text in detail and "\n" not in detail, detail


def test_decompression_bomb_is_refused_from_its_header(make_client):
    client = make_client()
    start = time.perf_counter()
    r = post_image(client, png_claiming(40_000, 40_000), name="bomb.png")  # 1.6 gigapixels claimed
    assert r.status_code == 400 and "bomb.png: image too large" in r.json()["detail"]
    assert time.perf_counter() - start < 2.0  # refused from the header, nothing decoded
    gif = io.BytesIO()
    Image.fromarray(half_image()).save(gif, format="GIF")
    r = post_image(client, gif.getvalue(), "image/png")  # a GIF sent as PNG: the format is checked too
    assert r.status_code == 400 and "GIF images are not accepted" in r.json()["detail"]


def test_segment_gives_the_hand_computed_map_and_caches_it(make_client):
    client = make_client()
    info = upload(client, half_image())
    job = wait(
        client, client.post("/api/segment", json={"image_id": info["image_id"], "method": "otsu"}).json()
    )
    assert job["state"] == "done", job
    result = job["result"]
    labels = np.asarray(Image.open(io.BytesIO(client.get(result["labels_url"]).content)))
    expected = np.zeros((40, 60), np.uint8)
    expected[:, 30:] = 1
    np.testing.assert_array_equal(labels, expected)
    legend = {c["name"]: c["fraction"] for c in result["legend"]}
    assert legend == {"background": 0.5, "object": 0.5}
    colour = np.asarray(Image.open(io.BytesIO(client.get(result["colour_url"]).content)))
    assert colour.shape == (40, 60, 4)
    assert (colour[:, :30, 3] == 0).all() and (colour[:, 30:, 3] == 255).all()  # background left clear
    again = client.post("/api/segment", json={"image_id": info["image_id"], "method": "otsu"}).json()
    assert again["state"] == "done" and again["message"] == "cached"
    assert again["result"]["result_id"] == result["result_id"]


def test_a_box_prompt_reaches_grabcut(make_client):
    client = make_client()
    image = np.full((60, 90, 3), 20, np.uint8)
    image[15:45, 10:35] = (230, 60, 40)  # object A, inside the box
    image[15:45, 55:80] = (230, 60, 40)  # object B, same colour, outside it
    info = upload(client, image)
    prompt = {"box": [4, 8, 42, 52]}
    job = client.post(
        "/api/segment", json={"image_id": info["image_id"], "method": "grabcut", "prompt": prompt}
    )
    job = wait(client, job.json())
    assert job["state"] == "done", job
    labels = np.asarray(Image.open(io.BytesIO(client.get(job["result"]["labels_url"]).content)))
    a, b = labels[15:45, 10:35], labels[15:45, 55:80]
    assert a.mean() > 0.9 and b.mean() < 0.05
    assert job["result"]["prompt"]["box"] == [4, 8, 42, 52] and "prompt" in job["result"]["title"]


def test_bad_requests_are_one_line_and_never_paths(make_client):
    client = make_client()
    info = upload(client, half_image())
    iid = info["image_id"]
    r = client.post("/api/segment", json={"image_id": iid, "method": "otsu", "prompt": {"box": [1, 1, 9, 9]}})
    assert r.status_code == 400 and "takes no prompts" in r.json()["detail"]
    r = client.post(
        "/api/segment", json={"image_id": iid, "method": "grabcut", "prompt": {"box": [0, 0, 99, 9]}}
    )
    assert r.status_code == 400 and "not inside the 60x40 image" in r.json()["detail"]
    r = client.post("/api/segment", json={"image_id": iid, "method": "/etc/passwd"})
    assert r.status_code == 404
    r = client.post("/api/segment", json={"image_id": "0" * 16, "method": "otsu"})
    assert r.status_code == 404 and "upload the image again" in r.json()["detail"]
    r = client.post("/api/segment", json={"image_id": iid, "method": "otsu", "path": "/tmp"})
    assert r.status_code == 400 and "unknown fields ['path']" in r.json()["detail"]
    assert client.get("/api/images/..%2F..%2Fetc%2Fpasswd.png").status_code in (404, 422)
    assert client.get("/static/../serve/app.py").status_code == 404
    assert client.get("/api/jobs/j999999").status_code == 404
    r = client.post("/api/refine", json={"result_id": "0" * 16})
    assert r.status_code == 400 and "--oracle" in r.json()["detail"]


def test_page_is_served_with_a_strict_content_security_policy(make_client):
    client = make_client()
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe" not in csp
    assert "http" not in page.text.replace("http-equiv", "")  # nothing loaded from elsewhere
    for name in ("app.js", "style.css"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and "http://" not in asset.text and "https://" not in asset.text
    info = client.get("/api/info").json()
    assert [m["id"] for m in info["methods"]] == ["otsu", "grabcut", "random_walker"]
    assert {m["id"]: m["prompts"] for m in info["methods"]}["grabcut"] == ["box", "points"]
