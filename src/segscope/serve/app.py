"""The FastAPI app behind ``segscope serve``: upload an image, run methods as jobs, refine, download.

Routes (JSON unless stated):

``GET /``                          the page (``static/index.html``); ``/static/*`` its script and style
``GET /api/info``                  methods, oracle, limits
``POST /api/images``               the raw image bytes (``Content-Type: image/png`` ...) -> ``image_id``
``GET /api/images/{id}.png``       the image as the methods see it
``POST /api/segment``              ``{image_id, method, prompt?}`` -> a job
``POST /api/refine``               ``{result_id, iterations?}`` -> a job (needs an oracle)
``GET /api/jobs/{id}``             state, progress, and the result once done
``POST /api/jobs/{id}/cancel``     stop it (at its next checkpoint; a one-call method's result is dropped)
``GET /api/results/{id}/labels.png`` / ``colour.png``   class indices / RGBA colour layer

Ids are hex digests or job numbers matched by pattern; nothing the client sends is used as a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from segscope.data.images import convert_channels
from segscope.errors import UserError
from segscope.prompts import Prompt
from segscope.serve.catalogue import Method, MethodCatalogue
from segscope.serve.jobs import Job, JobManager
from segscope.serve.results import LRUStore, Result, encode_png, result_key
from segscope.serve.uploads import UploadedImage, UploadError, check_content_type, decode_upload, safe_name

STATIC = Path(__file__).resolve().parent / "static"
HEX_ID = r"^[0-9a-f]{16}$"
JOB_ID = r"^j[0-9]{6}$"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Oracle:
    """The oracle's predicted quality of a label map, and refinement by its gradient ascent."""

    def __init__(self, oracle: Any) -> None:
        self.oracle = oracle
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        o = self.oracle
        return {"classes": list(o.classes), "num_classes": o.num_classes, "quality": o.quality}

    def fits(self, num_classes: int) -> bool:
        return self.oracle.num_classes == num_classes

    def _image(self, image: np.ndarray) -> np.ndarray:
        return convert_channels(image, self.oracle.in_channels)

    def quality(self, image: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, float] | None:
        if not self.fits(len(classes)):
            return None
        with self._lock:
            img = self._image(image)
            if getattr(self.oracle, "kind", "global") == "local":  # all classes judged in one pass
                from segscope.oracle.local import one_hot

                scores = self.oracle.class_scores(img, one_hot(labels, self.oracle.num_classes))
                return {classes[c]: round(float(scores[c]), 4) for c in self.oracle.classes}
            return {
                classes[c]: round(self.oracle.score(img, labels == c, class_index=c), 4)
                for c in self.oracle.classes
            }

    def refine(
        self, image: np.ndarray, labels: np.ndarray, iterations: int, job: Job
    ) -> tuple[np.ndarray, list[float]]:
        from segscope.oracle import refine_classes

        k = self.oracle.num_classes
        onehot = np.moveaxis(np.eye(k, dtype=np.float32)[labels], -1, 0)
        total, steps = max(iterations * len(self.oracle.classes), 1), [0]

        def on_step(i: int, q: float) -> None:
            steps[0] += 1
            job.checkpoint(steps[0] / total)

        if getattr(self.oracle, "kind", "global") == "local":
            from segscope.oracle.local_refine import refine_local

            with self._lock:
                r = refine_local(
                    self.oracle, self._image(image), onehot, iterations=min(iterations, 8), step=0.5
                )
            job.checkpoint(1.0)
            return r.labels.astype(np.int64), [round(float(q), 4) for q in r.estimates]
        with self._lock:
            proba, details = refine_classes(
                self.oracle, self._image(image), onehot, iterations=iterations, on_step=on_step
            )
        curve = details[self.oracle.classes[0]].quality
        return proba.argmax(0).astype(np.int64), [round(float(q), 4) for q in curve]


def create_app(
    catalogue: MethodCatalogue,
    *,
    oracle: Any = None,
    max_upload_bytes: int = 20 * 2**20,
    max_pixels: int = 40_000_000,
    job_timeout_s: float = 300.0,
    upload_timeout_s: float = 30.0,
    workers: int = 1,
    cache_bytes: int = 2**30,
):
    """The app for ``catalogue`` (and a :class:`~segscope.oracle.QualityOracle`, optional). Uploads and
    results are each kept in memory up to 64 / 512 items and ``cache_bytes`` (default 1 GiB)."""
    jobs = JobManager(workers=workers, timeout_s=job_timeout_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        jobs.shutdown()

    app = FastAPI(title="segscope", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    images: LRUStore[UploadedImage] = LRUStore(64, max_bytes=cache_bytes, nbytes=lambda im: im.pixels.nbytes)
    results: LRUStore[Result] = LRUStore(512, max_bytes=cache_bytes, nbytes=lambda r: r.nbytes)
    scorer = Oracle(oracle) if oracle is not None else None
    app.state.jobs, app.state.images, app.state.results = jobs, images, results

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    def not_found(what: str) -> JSONResponse:
        return JSONResponse(
            {"detail": f"{what} not found (it may have expired: upload the image again)"}, 404
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {
            "methods": catalogue.describe(),
            "oracle": scorer.describe() if scorer else None,
            "limits": {"max_upload_bytes": max_upload_bytes, "max_pixels": max_pixels},
        }

    @app.post("/api/images")
    async def upload(request: Request):
        name = safe_name(request.headers.get("x-filename"))
        check_content_type(request.headers.get("content-type"), name)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_upload_bytes:
            raise UploadError(
                413,
                f"{name}: {int(declared) / 2**20:.1f} MB is over the upload limit of "
                f"{max_upload_bytes / 2**20:.0f} MB",
            )

        async def read_body() -> bytes:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_upload_bytes:
                    raise UploadError(
                        413, f"{name}: over the upload limit of {max_upload_bytes / 2**20:.0f} MB"
                    )
                chunks.append(chunk)
            return b"".join(chunks)

        try:
            data = await asyncio.wait_for(read_body(), upload_timeout_s)
        except TimeoutError:
            raise UploadError(408, f"{name}: upload took longer than {upload_timeout_s:.0f} s") from None
        image = await asyncio.to_thread(decode_upload, data, name, max_pixels=max_pixels)
        images.put(image.image_id, images.get(image.image_id) or image)
        return image.info()

    @app.get("/api/images/{image_id}.png")
    def image_png(image_id: str = PathParam(pattern=HEX_ID)):
        image = images.get(image_id)
        if image is None:
            return not_found("image")
        pixels = image.pixels[..., 0] if image.pixels.shape[2] == 1 else image.pixels
        return Response(encode_png(pixels), media_type="image/png")

    def job_json(job: Job) -> dict[str, Any]:
        out = job.snapshot()
        if job.state == "done" and isinstance(job.result, Result):
            out["result"] = job.result.public()
        return out

    @app.post("/api/segment")
    def segment(payload: dict[str, Any]):
        unknown = sorted(set(payload) - {"image_id", "method", "prompt"})
        if unknown:
            raise UserError(f"unknown fields {unknown}")
        image = images.get(str(payload.get("image_id", "")))
        if image is None:
            return not_found("image")
        method = catalogue.get(str(payload.get("method", "")))
        if method is None:
            return not_found(f"method {str(payload.get('method'))[:40]!r}")
        prompt = Prompt.from_dict(payload.get("prompt"))
        if prompt is not None:
            if not set(prompt.kinds()) <= set(method.prompts):
                raise UserError(
                    f"{method.label} takes {' and '.join(method.prompts) or 'no'} prompts, "
                    f"not {' and '.join(sorted(prompt.kinds()))}"
                )
            prompt.check(image.pixels.shape, method.label)
        key = result_key(image.image_id, method.method_id, prompt.to_dict() if prompt else None)
        cached = results.get(key)
        if cached is not None:
            return job_json(jobs.finished(method.label, cached))
        return job_json(jobs.submit(method.label, lambda job: run_method(job, key, image, method, prompt)))

    def run_method(job: Job, key: str, image: UploadedImage, method: Method, prompt: Prompt | None) -> Result:
        start = time.perf_counter()
        labels = method.predict(image.pixels, prompt)
        seconds = time.perf_counter() - start
        job.checkpoint()
        quality = scorer.quality(image.pixels, labels, method.classes) if scorer else None
        title = method.label + (" + prompt" if prompt else "")
        result = Result(
            key,
            image.image_id,
            method.method_id,
            title,
            labels,
            method.classes,
            method.task,
            seconds,
            prompt.to_dict() if prompt else None,
            quality,
        )
        return results.put(key, result)

    @app.post("/api/refine")
    def refine(payload: dict[str, Any]):
        if scorer is None:
            raise UserError("no oracle: start segscope serve with --oracle ORACLE_DIR to refine")
        source = results.get(str(payload.get("result_id", "")))
        if source is None:
            return not_found("result")
        if not scorer.fits(len(source.classes)):
            raise UserError(
                f"the oracle scores {scorer.oracle.num_classes}-class maps, "
                f"{source.title} has {len(source.classes)} classes"
            )
        iterations = payload.get("iterations", 50)
        if not isinstance(iterations, int) or not 1 <= iterations <= 1000:
            raise UserError(f"iterations must be an integer in [1, 1000], got {iterations!r}")
        image = images.get(source.image_id)
        if image is None:
            return not_found("image")
        key = result_key(
            source.image_id,
            source.method_id,
            source.prompt,
            {"from": source.result_id, "iterations": iterations},
        )
        cached = results.get(key)
        if cached is not None:
            return job_json(jobs.finished(f"refine {source.title}", cached))

        def work(job: Job) -> Result:
            start = time.perf_counter()
            labels, curve = scorer.refine(image.pixels, source.labels, iterations, job)
            quality = scorer.quality(image.pixels, labels, source.classes)
            refined = Result(
                key,
                source.image_id,
                source.method_id,
                f"{source.title}, refined",
                labels,
                source.classes,
                source.task,
                time.perf_counter() - start,
                source.prompt,
                quality,
                source.result_id,
                source.quality,
                curve,
            )
            return results.put(key, refined)

        return job_json(jobs.submit(f"refine {source.title}", work))

    @app.get("/api/jobs/{job_id}")
    def job_state(job_id: str = PathParam(pattern=JOB_ID)):
        job = jobs.get(job_id)
        return job_json(job) if job is not None else not_found("job")

    @app.post("/api/jobs/{job_id}/cancel")
    def job_cancel(job_id: str = PathParam(pattern=JOB_ID)):
        job = jobs.get(job_id)
        if job is None:
            return not_found("job")
        job.cancel()
        return job_json(job)

    @app.get("/api/results/{result_id}/{kind}.png")
    def result_png(
        result_id: str = PathParam(pattern=HEX_ID), kind: str = PathParam(pattern=r"^(labels|colour)$")
    ):
        result = results.get(result_id)
        if result is None:
            return not_found("result")
        data = result.label_png() if kind == "labels" else result.colour_png()
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    return app
