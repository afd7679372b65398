"""A small aiohttp.web backend on one shared `AsyncUpstageOCR`.

    UPSTAGE_API_KEY=... [UPSTAGE_BASE_URL=http://127.0.0.1:8765/v1] python examples/webapp.py

- ``POST /ocr?filename=scan.pdf[&timeout=30]`` (the raw document as the body):
  awaits `client.ocr()`; JSON ``{"text", "pages", "request_id"}`` (``request_id``:
  the async request's id, or null when the sync endpoint answered). Past the
  deadline, 504 with the ``request_ids`` that go on (``GET /requests/{id}``
  collects one without paying again); a document the client refuses, 400.
- ``GET /requests/{id}``: waits for an async request; its result.
- ``POST /bulk`` (multipart, one ``document`` field per file): starts an
  `ocr_many` run of the uploads in the background; ``{"job": id}``.
  ``GET /bulk/{id}``: its progress and results.

The client is created when the app starts and closed when it stops
(`app.cleanup_ctx`); every handler and bulk job shares it (its limits, pacer and
connections), and a handler's `ocr()` goes ahead of a bulk run's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from aioupstage_ocr import AsyncUpstageOCR, DocumentError, OCRTimeoutError

CLIENT = web.AppKey("client", AsyncUpstageOCR)
JOBS = web.AppKey("jobs", dict)


@dataclass
class Job:
    """One background `ocr_many` run: its items as they finish."""

    total: int
    done: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    error: str | None = None
    task: asyncio.Task[None] | None = None


async def _client_ctx(app: web.Application) -> AsyncIterator[None]:
    options: dict[str, Any] = {}
    if base_url := os.environ.get("UPSTAGE_BASE_URL"):
        options["base_url"] = base_url
    async with AsyncUpstageOCR(os.environ.get("UPSTAGE_API_KEY"), **options) as client:
        app[CLIENT] = client
        yield
        for job in app[JOBS].values():
            if job.task is not None:
                job.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job.task


async def upload(request: web.Request) -> web.Response:
    body = await request.read()
    if not body:
        raise web.HTTPBadRequest(text="send the document as the request body")
    filename = request.query.get("filename", "upload.pdf")
    timeout = float(request.query["timeout"]) if "timeout" in request.query else None
    accepted: list[str] = []
    try:
        result = await request.app[CLIENT].ocr(
            body, filename=filename, timeout=timeout, on_accepted=accepted.append
        )
    except OCRTimeoutError as exc:
        return web.json_response(
            {"error": "timeout", "request_ids": list(exc.request_ids)}, status=504
        )
    except DocumentError as exc:
        return web.json_response({"error": type(exc).__name__, "reason": str(exc)}, status=400)
    return web.json_response(
        {
            "text": result.text,
            "pages": result.num_pages,
            "request_id": accepted[-1] if accepted else None,
        }
    )


async def wait_for(request: web.Request) -> web.Response:
    result = await request.app[CLIENT].wait(request.match_info["request_id"])
    return web.json_response({"text": result.text, "pages": result.num_pages})


async def _run(client: AsyncUpstageOCR, job: Job, uploads: list[io.BytesIO]) -> None:
    try:
        async for item in client.ocr_many(uploads):  # at bulk priority: handlers go first
            job.done.append(
                {
                    "source": uploads[item.index].name,
                    "text": item.result.text if item.result is not None else None,
                    "pages": item.result.num_pages if item.result is not None else None,
                    "request_id": item.request_id,
                    "error": type(item.error).__name__ if item.error is not None else None,
                }
            )
    except Exception as exc:  # noqa: BLE001 - told to whoever polls the job
        job.error = type(exc).__name__
    finally:
        job.finished = True


_ids = itertools.count(1)


async def start_bulk(request: web.Request) -> web.Response:
    uploads: list[io.BytesIO] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name != "document":
            continue
        upload = io.BytesIO(await part.read())
        upload.name = part.filename or f"upload-{len(uploads)}"
        uploads.append(upload)
    if not uploads:
        raise web.HTTPBadRequest(text="send the files as multipart fields named 'document'")
    job_id = str(next(_ids))
    job = Job(total=len(uploads))
    job.task = asyncio.create_task(_run(request.app[CLIENT], job, uploads))
    request.app[JOBS][job_id] = job
    return web.json_response({"job": job_id}, status=202)


async def bulk_status(request: web.Request) -> web.Response:
    job = request.app[JOBS].get(request.match_info["job"])
    if job is None:
        raise web.HTTPNotFound()
    return web.json_response(
        {
            "total": job.total,
            "completed": len(job.done),
            "finished": job.finished,
            "error": job.error,
            "items": job.done,
        }
    )


def make_app() -> web.Application:
    app = web.Application(client_max_size=100 * 1024 * 1024)
    app[JOBS] = {}
    app.cleanup_ctx.append(_client_ctx)
    app.add_routes(
        [
            web.post("/ocr", upload),
            web.get("/requests/{request_id}", wait_for),
            web.post("/bulk", start_bulk),
            web.get("/bulk/{job}", bulk_status),
        ]
    )
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
