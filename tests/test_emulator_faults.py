"""The emulator's pace and faults over real HTTP: limits, 5xx, drops, truncation, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest
from test_emulator import Api, assert_error_body, sha

from aioupstage_ocr.testing import (
    EmulatorConfig,
    EmulatorThread,
    UpstageEmulator,
    make_image,
    make_pdf,
)


@pytest.fixture
async def api(upstage_emulator: EmulatorThread) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, upstage_emulator)


async def test_rps_limit_with_retry_after(api: Api, upstage_emulator: EmulatorThread) -> None:
    """Over the RPS limit: 429 with an integer Retry-After and a JSON error; counted."""
    upstage_emulator.configure(rps=2)
    replies = [await api.requests() for _ in range(5)]
    statuses = [r.status for r in replies]
    assert statuses[:2] == [200, 200]
    assert statuses.count(429) >= 2
    limited = next(r for r in replies if r.status == 429)
    assert limited.headers["Retry-After"] == "1"
    assert "rate limit" in assert_error_body(limited, 429)["message"]
    assert upstage_emulator.stats.rate_limited == statuses.count(429)
    await asyncio.sleep(0.55)
    assert (await api.requests()).status == 200


async def test_rps_limit_without_retry_after(api: Api, upstage_emulator: EmulatorThread) -> None:
    """With retry_after off, the 429 carries no Retry-After."""
    upstage_emulator.configure(rps=1, retry_after=False)
    assert (await api.requests()).status == 200
    limited = await api.requests()
    assert limited.status == 429
    assert "Retry-After" not in limited.headers


async def test_rps_counts_submits_polls_and_lists_not_downloads(
    api: Api, upstage_emulator: EmulatorThread
) -> None:
    """Submits, polls and lists share the RPS budget; storage downloads do not."""
    done = await api.wait(await api.submit(make_pdf(1)))
    upstage_emulator.configure(rps=1)
    assert (await api.status(done["id"])).status == 200
    assert (await api.post(make_pdf(1))).status == 429
    url = done["batches"][0]["download_url"]
    assert [(await api.download(url)).status for _ in range(3)] == [200, 200, 200]


async def test_ppm_limit(api: Api, upstage_emulator: EmulatorThread) -> None:
    """Pages per minute: past the minute's budget a 429 says when the pages fit."""
    upstage_emulator.configure(ppm=10)
    assert (await api.post(make_pdf(6))).status == 200
    limited = await api.post(make_pdf(6), endpoint="async")
    assert limited.status == 429
    # 6 pages owed 36 s each way: the second 6 fit 12 s from now.
    assert limited.headers["Retry-After"] == "12"
    assert upstage_emulator.stats.async_submissions == {}


async def test_injected_errors(api: Api, upstage_emulator: EmulatorThread) -> None:
    """error_rate answers 5xx before doing the work; fault_routes narrows where."""
    upstage_emulator.configure(error_rate=1.0)
    reply = await api.post(make_pdf(1))
    assert reply.status in (500, 502, 503)
    assert_error_body(reply, reply.status)
    assert upstage_emulator.stats.errors_injected == 1
    assert upstage_emulator.stats.sync_submissions == {}
    assert (await api.requests()).status >= 500
    upstage_emulator.configure(fault_routes=("status",))
    assert (await api.post(make_pdf(1))).status == 200
    assert (await api.requests()).status == 200
    assert (await api.status("anything")).status >= 500


async def test_dropped_submit_was_taken(api: Api, upstage_emulator: EmulatorThread) -> None:
    """A dropped async submit gets no answer, yet the service took it (ambiguous submit)."""
    upstage_emulator.configure(drop_rate=1.0, fault_routes=("async", "sync"))
    data = make_pdf(2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post(data, endpoint="async")
    assert upstage_emulator.stats.async_submissions[sha(data)] == 1
    assert upstage_emulator.stats.drops == 1
    listed = (await api.requests()).json()["requests"]
    assert len(listed) == 1
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post(data)
    assert upstage_emulator.stats.sync_submissions[sha(data)] == 1


async def test_truncated_download(api: Api, upstage_emulator: EmulatorThread) -> None:
    """A truncated download declares its full length, sends part and closes."""
    done = await api.wait(await api.submit(make_pdf(3)))
    url = done["batches"][0]["download_url"]
    upstage_emulator.configure(truncate_rate=1.0)
    with pytest.raises(aiohttp.ClientPayloadError):
        await api.download(url)
    assert upstage_emulator.stats.downloads_truncated == 1
    upstage_emulator.configure(truncate_rate=0.0)
    assert (await api.download(url)).status == 200


async def test_download_faults(api: Api, upstage_emulator: EmulatorThread) -> None:
    """With `download` in fault_routes, storage answers 5xx with an XML body."""
    done = await api.wait(await api.submit(make_pdf(1)))
    upstage_emulator.configure(error_rate=1.0, fault_routes=("download",))
    reply = await api.download(done["batches"][0]["download_url"])
    assert reply.status >= 500
    assert reply.body.startswith(b"<?xml")


async def test_early_expiry(api: Api, upstage_emulator: EmulatorThread) -> None:
    """early_expiry_rate hands out links that are expired at once."""
    upstage_emulator.configure(early_expiry_rate=1.0)
    done = await api.wait(await api.submit(make_pdf(1)))
    reply = await api.download(done["batches"][0]["download_url"])
    assert reply.status == 403
    assert b"Request has expired" in reply.body


async def test_outage_refuses_then_recovers(api: Api, upstage_emulator: EmulatorThread) -> None:
    """During an outage connections are refused; afterwards the same port answers."""
    assert (await api.requests()).status == 200  # a kept-alive connection exists
    upstage_emulator.outage(0.4)
    during = upstage_emulator.in_outage
    assert during
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.requests()
    async with aiohttp.ClientSession() as fresh:
        with pytest.raises(aiohttp.ClientConnectorError):
            await Api(fresh, upstage_emulator).requests()
    await asyncio.sleep(0.6)
    assert not upstage_emulator.in_outage
    assert (await api.requests()).status == 200


async def test_peak_concurrency_and_latency(api: Api, upstage_emulator: EmulatorThread) -> None:
    """Concurrent calls are counted at their peak; sync_latency holds each answer."""
    upstage_emulator.configure(sync_latency=0.3)
    started = time.monotonic()
    replies = await asyncio.gather(*(api.post(make_image(seed=n)) for n in range(5)))
    assert time.monotonic() - started >= 0.3
    assert [r.status for r in replies] == [200] * 5
    stats = upstage_emulator.stats
    assert stats.peak_concurrency == 5
    assert stats.in_flight == 0
    assert stats.uploads == 5
    assert stats.requests["sync"] == 5
    assert stats.statuses[200] == 5


async def test_no_upload_counted_without_posts(api: Api, upstage_emulator: EmulatorThread) -> None:
    """Polls and lists upload nothing; every POST to an OCR route counts as an upload."""
    await api.requests()
    await api.status("x")
    assert upstage_emulator.stats.uploads == 0
    await api.post(make_pdf(1), headers={})
    assert upstage_emulator.stats.uploads == 1
    assert upstage_emulator.stats.upload_bytes > 0


async def _run_scenario(seed: int) -> list[tuple[Any, ...]]:
    """A fixed sequence of calls against a fresh emulator with faults; what each got."""
    config = EmulatorConfig(
        seed=seed,
        error_rate=0.3,
        drop_rate=0.25,
        truncate_rate=0.5,
        batch_failure_rate=0.3,
        batch_latency=0.005,
        fault_routes=("sync", "async", "status", "list"),
    )
    outcomes: list[tuple[Any, ...]] = []
    async with UpstageEmulator(config) as emulator, aiohttp.ClientSession() as session:
        api = Api(session, emulator)
        documents = [make_pdf(n) for n in (1, 2, 12, 3, 1, 2, 12, 3)]
        for document in documents:
            for endpoint in ("sync", "async"):
                try:
                    reply = await api.post(document, endpoint=endpoint)
                    outcomes.append((endpoint, reply.status))
                except aiohttp.ServerDisconnectedError:
                    outcomes.append((endpoint, "dropped"))
        async with asyncio.timeout(10):
            await emulator.wait_idle()
        for request_id in emulator.request_ids():
            data = None
            while data is None:
                try:
                    reply = await api.status(request_id)
                except aiohttp.ServerDisconnectedError:
                    outcomes.append(("status", "dropped"))
                    continue
                outcomes.append(("status", reply.status))
                if reply.status == 200:
                    data = reply.json()
            outcomes.append(("request", request_id, data["status"]))
            for batch in sorted(data["batches"], key=lambda b: b["id"]):
                if batch["download_url"]:
                    try:
                        outcomes.append(
                            ("download", (await api.download(batch["download_url"])).status)
                        )
                    except aiohttp.ClientPayloadError:
                        outcomes.append(("download", "truncated"))
    return outcomes


async def test_seeded_faults_replay() -> None:
    """The same seed meets the same faults in the same places; another seed does not."""
    first = await _run_scenario(7)
    assert first == await _run_scenario(7)
    assert first != await _run_scenario(8)
    kinds = {o[1] for o in first if o[0] != "request"}
    assert {"dropped", "truncated", 200} < kinds
    assert kinds & {500, 502, 503}
    assert any(o[0] == "request" and o[2] == "failed" for o in first)


async def test_no_tasks_leak() -> None:
    """Leaving the context cancels workers and timers mid-request."""
    before = asyncio.all_tasks()
    async with UpstageEmulator(batch_latency=5.0, start_delay=0.0) as emulator:
        async with aiohttp.ClientSession() as session:
            api = Api(session, emulator)
            await api.submit(make_pdf(30))
        await asyncio.sleep(0.05)
        assert emulator._requests
    await asyncio.sleep(0)
    leaked = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert leaked == set()


async def test_retry_after_as_http_date(api: Api, upstage_emulator: EmulatorThread) -> None:
    """retry_after_date sends Retry-After as an HTTP date a whole second or more ahead."""
    upstage_emulator.configure(rps=1, retry_after_date=True)
    await api.requests()
    limited = await api.requests()
    assert limited.status == 429
    when = parsedate_to_datetime(limited.headers["Retry-After"])
    ahead = when.timestamp() - time.time()
    assert 0 < ahead <= 2


async def test_sync_timeout_504(api: Api, upstage_emulator: EmulatorThread) -> None:
    """A sync call slower than sync_timeout answers 504 at the timeout."""
    upstage_emulator.configure(sync_latency=30.0, sync_timeout=0.2)
    started = time.monotonic()
    reply = await api.post(make_pdf(1))
    assert 0.2 <= time.monotonic() - started < 5
    assert "timed out" in assert_error_body(reply, 504)["message"]
