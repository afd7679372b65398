"""This client's measured runs (child-process targets of `run_child`).

`client_bulk(params)`: `client.ocr_many(paths)` over a generator of paths
(or the list `params["paths"]`, in its order),
results consumed and dropped, timed from the first path taken to the last
item; optionally after a warm-up run, under pyinstrument (`profile_text`: where
the text profile goes), or watching how long each async request waits for its
first status (`trace_polls`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

from aioupstage_ocr import AsyncUpstageOCR, BulkEvent, BulkRun, Limits, Polling, RateLimit

from ._documents import paths
from ._harness import API_KEY
from ._profile import Profiled

__all__ = ["client_bulk", "client_handlers"]


def _client(params: dict[str, Any]) -> AsyncUpstageOCR:
    rate = RateLimit(rps=params["rps"]) if params.get("rps") else RateLimit()
    return AsyncUpstageOCR(
        API_KEY,
        base_url=params["base_url"],
        rate=rate,
        limits=Limits(**params.get("limits", {})),
        polling=Polling(**params.get("polling", {})),
    )


class _PollTrace:
    """`on_event` hook: per async request, from its submit to the first status seen.

    The scheduler polls a new request at once, so this is how long its first
    status fetch waited for a slot (behind other requests of the client).
    """

    def __init__(self) -> None:
        self.submitted: dict[int, float] = {}
        self.first_status: dict[int, float] = {}

    def __call__(self, event: BulkEvent) -> None:
        if event.index is None:
            return
        if event.kind == "submitted" and event.request_id is not None:
            self.submitted[event.index] = time.monotonic()
        elif event.kind == "pages" and event.index not in self.first_status:
            self.first_status[event.index] = time.monotonic()

    def figures(self) -> dict[str, Any]:
        waits = sorted(
            self.first_status[i] - self.submitted[i]
            for i in self.first_status
            if i in self.submitted
        )
        if not waits:
            return {}
        return {
            "first_poll_wait_mean_s": sum(waits) / len(waits),
            "first_poll_wait_max_s": waits[-1],
        }


async def _drain(run: BulkRun, started: float) -> dict[str, Any]:
    ok = failed = 0
    first: float | None = None
    errors: Counter[str] = Counter()
    done_at: dict[str, float] = {}  # async request id -> when its result was in hand (epoch)
    async with run:
        async for item in run:
            if first is None:
                first = time.perf_counter() - started
            if item.request_id is not None:
                done_at[item.request_id] = time.time()
            if item.ok:
                ok += 1
            else:
                failed += 1
                errors[f"{type(item.error).__name__}: {item.error}"[:200]] += 1
    stats = run.stats
    return {
        "ok": ok,
        "failed": failed,
        "first_result_s": first,
        "errors": dict(errors.most_common(3)),
        "client_retries": stats.retries,
        "client_rate_limited": stats.rate_limited,
        "client_pauses": stats.pauses,
        "client_paused_s": round(stats.paused_seconds, 3),
        "done_at": done_at,
    }


def _open_fds() -> int | None:
    """Open file descriptors of this process, where `/proc` tells."""
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


async def _run(params: dict[str, Any]) -> dict[str, Any]:
    folder, pattern = params["folder"], params["pattern"]
    mode = params.get("mode", "auto")
    figures: dict[str, Any] = {}
    async with _client(params) as client:
        warmup = int(params.get("warmup", 0))
        if warmup:
            documents = paths(folder, pattern, warmup, first=params.get("warmup_first", 0))
            warm = await _drain(client.ocr_many(documents, mode=mode), time.perf_counter())
            figures["warmup_ok"] = warm["ok"]
        import psutil  # type: ignore[import-untyped]

        figures["rss_before"] = psutil.Process().memory_info().rss
        documents = (
            iter(params["paths"])
            if "paths" in params
            else paths(folder, pattern, params["count"], first=params.get("first", 0))
        )
        trace = _PollTrace() if params.get("trace_polls") else None
        cpu0, loop0 = time.process_time(), time.thread_time()
        started = time.perf_counter()
        with Profiled(params.get("profile_text")) as profiled:
            run = client.ocr_many(documents, mode=mode, on_event=trace)
            figures.update(await _drain(run, started))
        if trace is not None:
            figures.update(trace.figures())
        figures["wall_s"] = time.perf_counter() - started
        figures["cpu_s"] = time.process_time() - cpu0
        figures["loop_cpu_s"] = time.thread_time() - loop0
        figures["fds_at_end"] = _open_fds()
        figures["found_concurrency"] = client._transport.concurrency.limit
    figures.update(profiled.figures)
    return figures


def client_bulk(params: dict[str, Any]) -> dict[str, Any]:
    """One bulk run of this client; see the module docstring."""
    return asyncio.run(_run(params))


async def _handlers(client: AsyncUpstageOCR, documents: list[str]) -> list[float]:
    """`ocr()` of each document at once, as request handlers would; each one's seconds."""

    async def one(path: str) -> float:
        started = time.perf_counter()
        await client.ocr(path)
        return time.perf_counter() - started

    return list(await asyncio.gather(*(one(path) for path in documents)))


async def _run_handlers(params: dict[str, Any]) -> dict[str, Any]:
    folder, pattern, count = params["folder"], params["pattern"], params["count"]
    calls = int(params["handlers"])
    idle_docs = list(paths(folder, pattern, calls, first=count))
    busy_docs = list(paths(folder, pattern, calls, first=count + calls))
    figures: dict[str, Any] = {}
    async with _client(params) as client:
        figures["idle_s"] = await _handlers(client, idle_docs)
        if params.get("bulk_alone", True):
            started = time.perf_counter()
            alone = await _drain(client.ocr_many(paths(folder, pattern, count)), started)
            figures["bulk_alone_s"] = time.perf_counter() - started
            figures["bulk_alone_ok"] = alone["ok"]
        done = 0
        started = time.perf_counter()

        async def bulk() -> dict[str, Any]:
            nonlocal done
            run = client.ocr_many(paths(folder, pattern, count, first=count + 2 * calls))
            ok = 0
            async for item in run:
                done += 1
                ok += item.error is None
            return {"ok": ok, "failed": done - ok}

        task = asyncio.create_task(bulk())
        while done < count * params.get("start_at", 0.25) and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        figures["handlers_started_at_done"] = done
        figures["busy_s"] = await _handlers(client, busy_docs)
        figures["handlers_ended_at_done"] = done
        figures.update(await task)
        figures["bulk_busy_s"] = time.perf_counter() - started
        figures["wall_s"] = figures["bulk_busy_s"]
    return figures


def client_handlers(params: dict[str, Any]) -> dict[str, Any]:
    """Handler calls on an idle client, then during a bulk run on the same client."""
    return asyncio.run(_run_handlers(params))
