"""A small aiohttp.web backend on one shared `AsyncUpstageOCR`.

    UPSTAGE_API_KEY=... [UPSTAGE_BASE_URL=http://127.0.0.1:8765/v1] python examples/webapp.py

- ``POST /ocr?filename=scan.pdf`` (the raw document as the body): awaits
  `client.ocr()`; JSON ``{"text", "pages", "request_id"}`` (``request_id``: the
  async request's id, or null when the sync endpoint answered).
- ``POST /bulk`` with JSON ``{"paths": [...]}``: starts an `ocr_many` run in the
  background; ``{"job": id}``. ``GET /bulk/{id}``: its progress and results.

The client is created when the app starts and closed when it stops
(`app.cleanup_ctx`); every handler and bulk job shares it (its limits, pacer and
connections), and a handler's `ocr()` goes ahead of a bulk run's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from aioupstage_ocr import AsyncUpstageOCR

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
    accepted: list[str] = []
    result = await request.app[CLIENT].ocr(body, filename=filename, on_accepted=accepted.append)
    return web.json_response(
        {
            "text": result.text,
            "pages": result.num_pages,
            "request_id": accepted[-1] if accepted else None,
        }
    )


async def _run(client: AsyncUpstageOCR, job: Job, paths: list[str]) -> None:
    try:
        async for item in client.ocr_many(paths):
            job.done.append(
                {
                    "source": str(item.source),
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
    payload = await request.json()
    paths = payload.get("paths") if isinstance(payload, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise web.HTTPBadRequest(text='send {"paths": ["a.pdf", ...]}')
    job_id = str(next(_ids))
    job = Job(total=len(paths))
    job.task = asyncio.create_task(_run(request.app[CLIENT], job, paths))
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
            web.post("/bulk", start_bulk),
            web.get("/bulk/{job}", bulk_status),
        ]
    )
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
