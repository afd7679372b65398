"""What users write instead of this client: the comparisons (child-process targets).

Written plainly, as from the API reference, with no more care than such
scripts usually get:

- `sync_sequential`: `requests.post(...)` per file, one after another.
- `sync_thread_pool`: the same call in a 16-thread pool; on a 429, `time.sleep(1)`
  and again.
- `sync_gather`: one aiohttp task per document under `asyncio.gather`, no limit
  of its own (aiohttp's default connector still holds 100 connections); on a
  429, sleep `Retry-After` (or 1 s) and again.
- `async_seed`: submit, then `get status; if completed: download every batch
  (without the Authorization header, which the storage host refuses), merge;
  sleep(5)`; one document after another, or in a thread pool.
- `bare_aiohttp`: the floor for any aiohttp client in scenario 3: the same
  multipart POST and JSON parse, under a semaphore, and nothing else.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import orjson
import requests

from ._documents import paths
from ._harness import API_KEY
from ._profile import Profiled

__all__ = ["async_seed", "bare_aiohttp", "sync_gather", "sync_sequential", "sync_thread_pool"]

AUTH = {"Authorization": f"Bearer {API_KEY}"}


# --------------------------------------------------------------------------- sync


def _post_sync(url: str, path: str) -> requests.Response:
    with open(path, "rb") as f:
        return requests.post(url, headers=AUTH, files={"document": f}, data={"model": "ocr"})


def sync_sequential(params: dict[str, Any]) -> dict[str, Any]:
    """Submit one, read it, next."""
    url = params["base_url"] + "/document-digitization"
    started = time.perf_counter()
    first = None
    ok = 0
    for path in paths(params["folder"], params["pattern"], params["count"]):
        response = _post_sync(url, path)
        response.raise_for_status()
        if response.json()["pages"]:
            ok += 1
        if first is None:
            first = time.perf_counter() - started
    return {
        "ok": ok,
        "failed": params["count"] - ok,
        "first_result_s": first,
        "wall_s": time.perf_counter() - started,
    }


def sync_thread_pool(params: dict[str, Any]) -> dict[str, Any]:
    """16 threads; a 429 means `time.sleep(1)` and again."""
    url = params["base_url"] + "/document-digitization"
    started = time.perf_counter()
    seen_429 = 0

    def one(path: str) -> bool:
        nonlocal seen_429
        while True:
            response = _post_sync(url, path)
            if response.status_code == 429:
                seen_429 += 1
                time.sleep(1)
                continue
            response.raise_for_status()
            return bool(response.json()["pages"])

    with ThreadPoolExecutor(max_workers=params.get("threads", 16)) as pool:
        done = list(pool.map(one, paths(params["folder"], params["pattern"], params["count"])))
    ok = sum(done)
    return {
        "ok": ok,
        "failed": len(done) - ok,
        "client_rate_limited": seen_429,
        "wall_s": time.perf_counter() - started,
    }


async def _gather(params: dict[str, Any]) -> dict[str, Any]:
    url = params["base_url"] + "/document-digitization"
    seen_429 = 0

    async def one(session: aiohttp.ClientSession, path: str) -> bool:
        nonlocal seen_429
        while True:
            with open(path, "rb") as f:  # noqa: ASYNC230 - as such scripts do
                data = f.read()
            form = aiohttp.FormData()
            form.add_field("model", "ocr")
            form.add_field("document", data, filename=path.rsplit("/", 1)[-1])
            async with session.post(url, data=form, headers=AUTH) as response:
                if response.status == 429:
                    seen_429 += 1
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                response.raise_for_status()
                body = await response.json()
                return bool(body["pages"])

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        done = await asyncio.gather(
            *(one(session, p) for p in paths(params["folder"], params["pattern"], params["count"]))
        )
    ok = sum(done)
    return {
        "ok": ok,
        "failed": len(done) - ok,
        "client_rate_limited": seen_429,
        "wall_s": time.perf_counter() - started,
    }


def sync_gather(params: dict[str, Any]) -> dict[str, Any]:
    """One task per document, all at once."""
    return asyncio.run(_gather(params))


# --------------------------------------------------------------------------- async


def _seed_one(base: str, path: str, poll_every: float, done_at: dict[str, float]) -> dict[str, Any]:
    """Submit, poll every `poll_every` s, download each batch, merge."""
    with open(path, "rb") as f:
        response = requests.post(
            base + "/document-digitization/async",
            headers=AUTH,
            files={"document": f},
            data={"model": "ocr"},
        )
    response.raise_for_status()
    request_id = response.json()["request_id"]
    while True:
        status = requests.get(
            f"{base}/document-digitization/requests/{request_id}", headers=AUTH
        ).json()
        if status["status"] == "completed":
            pages: list[Any] = []
            for batch in sorted(status["batches"], key=lambda b: b["start_page"]):
                pages += requests.get(batch["download_url"]).json()["pages"]
            for number, page in enumerate(pages):
                page["id"] = number
            done_at[request_id] = time.time()
            return {"pages": pages}
        if status["status"] == "failed":
            raise RuntimeError(status["failure_message"])
        time.sleep(poll_every)


def async_seed(params: dict[str, Any]) -> dict[str, Any]:
    """The submit / poll / download loop, sequential (`threads` 1) or in a thread pool."""
    base, every = params["base_url"], params.get("poll_every", 5.0)
    documents = paths(params["folder"], params["pattern"], params["count"])
    started = time.perf_counter()
    finished: list[float] = []
    done_at: dict[str, float] = {}

    def one(path: str) -> int:
        merged = _seed_one(base, path, every, done_at)
        finished.append(time.perf_counter() - started)
        return len(merged["pages"])

    threads = params.get("threads", 1)
    if threads == 1:
        counts = [one(path) for path in documents]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            counts = list(pool.map(one, documents))
    pages = sum(counts)
    return {
        "ok": len(counts),
        "failed": params["count"] - len(counts),
        "pages": pages,
        "first_result_s": min(finished) if finished else None,
        "done_at": done_at,
        "wall_s": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------- the floor


async def _bare(params: dict[str, Any]) -> dict[str, Any]:
    url = params["base_url"] + "/document-digitization"
    limit = asyncio.Semaphore(params.get("concurrency", 16))
    ok = 0

    async def one(session: aiohttp.ClientSession, path: str) -> None:
        nonlocal ok
        async with limit:
            with open(path, "rb") as f:  # noqa: ASYNC230 - a floor: the cheapest read there is
                data = f.read()
            form = aiohttp.FormData()
            form.add_field("model", "ocr")
            form.add_field(
                "document", data, filename=path.rsplit("/", 1)[-1], content_type="image/png"
            )
            async with session.post(url, data=form, headers=AUTH) as response:
                body = await response.read()
            if response.status == 200 and orjson.loads(body)["pages"]:
                ok += 1

    folder, pattern = params["folder"], params["pattern"]
    figures: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        warmup = int(params.get("warmup", 0))
        if warmup:
            warm = paths(folder, pattern, warmup, first=params.get("warmup_first", 0))
            await asyncio.gather(*(one(session, p) for p in warm))
            figures["warmup_ok"], ok = ok, 0
        cpu0, loop0 = time.process_time(), time.thread_time()
        started = time.perf_counter()
        documents = paths(folder, pattern, params["count"], first=params.get("first", 0))
        with Profiled(params.get("profile_text")) as profiled:
            await asyncio.gather(*(one(session, p) for p in documents))
        figures.update(profiled.figures)
        figures["wall_s"] = time.perf_counter() - started
        figures["cpu_s"] = time.process_time() - cpu0
        figures["loop_cpu_s"] = time.thread_time() - loop0
    figures.update(ok=ok, failed=params["count"] - ok)
    return figures


def bare_aiohttp(params: dict[str, Any]) -> dict[str, Any]:
    """The same HTTP exchanges under a semaphore, timed after a warm-up."""
    return asyncio.run(_bare(params))
