"""Bulk runs at scale against the emulator with faults: whole results, bounded resources, pace.

Each test prints its measured figures (run pytest with `-s` to see them).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aioupstage_ocr import (
    AsyncUpstageOCR,
    BulkEvent,
    BulkItem,
    Limits,
    Polling,
    RateLimit,
    Retries,
)
from aioupstage_ocr.testing import (
    EmulatorThread,
    UpstageEmulator,
    emulated_text,
    make_image,
    make_pdf,
    page_text,
)

KEY = "bulk-scale-key"
FAST = Polling(initial=0.02, maximum=0.1, factor=1.5, jitter=0.1)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def texts(item: BulkItem) -> list[str]:
    assert item.result is not None, item
    return [page.text for page in item.result.pages]


def api_requests(emulator: UpstageEmulator) -> int:
    """Requests to the API host (everything but storage downloads)."""
    return sum(n for route, n in emulator.stats.requests.items() if route != "download")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
@pytest.mark.upstage_emulator(
    seed=11,
    error_rate=0.05,
    drop_rate=0.02,
    truncate_rate=0.05,
    fault_routes=("sync", "async", "status", "list", "download"),
    url_ttl=2.0,
    early_expiry_rate=0.1,
    early_expiry_ttl=0.0,
    rps=40,  # its 429s carry Retry-After (429s without: test_pace_settles_near_the_server_limit)
    retry_after=True,
    sync_latency=0.005,  # requests overlap at the server, so its peak concurrency means something
    batch_latency=0.01,
    workers=8,
)
async def test_faults_at_scale_every_page_right(upstage_emulator: EmulatorThread) -> None:
    """300 images and 10 multi-batch PDFs through 5xx, drops, cut bodies, dead links, 429s."""
    images = [make_image("png" if n % 3 else "jpeg", seed=1000 + n) for n in range(300)]
    pdfs = [make_pdf(101 + 3 * n) for n in range(10)]  # 101..128 pages: async in auto mode
    documents = [*images[:150], *pdfs, *images[150:]]
    expected = {sha(d): emulated_text(d) for d in images}
    expected |= {sha(d): [page_text(p) for p in range(1, 102 + 3 * n)] for n, d in enumerate(pdfs)}
    limits = Limits(max_connections=32, max_concurrency=8, max_open_documents=16)
    retries = Retries(attempts=10, initial=0.02, maximum=0.5, retry_after_max=0.5)
    kinds: dict[str, int] = {}

    def count(event: BulkEvent) -> None:
        kinds[event.kind] = kinds.get(event.kind, 0) + 1

    started = time.monotonic()
    async with AsyncUpstageOCR(
        KEY, base_url=upstage_emulator.base_url, limits=limits, retries=retries, polling=FAST
    ) as client:
        run = client.ocr_many(documents, on_event=count)
        items = [item async for item in run]
    elapsed = time.monotonic() - started

    stats = upstage_emulator.stats
    failures = [item for item in items if not item.ok]
    assert failures == []
    assert len(items) == len(documents)
    for item in items:
        assert item.sha256 is not None
        assert texts(item) == expected[item.sha256], item
        assert item.result is not None
        assert [page.index for page in item.result.pages] == list(range(len(item.result.pages)))
    assert {item.route for item in items if item.pages and item.pages > 100} == {"async"}
    assert all(stats.async_submissions[sha(d)] == 1 for d in pdfs)
    assert stats.downloads_with_auth == 0
    assert stats.peak_concurrency <= limits.max_concurrency
    # The faults did happen.
    # The seeded faults did happen (how many 429s the RPS limit sends depends on the machine).
    assert stats.errors_injected > 0
    assert stats.drops > 0
    assert stats.downloads_truncated > 0
    assert stats.downloads_expired > 0
    requests = api_requests(upstage_emulator)
    print(
        f"\nfaults: {len(items)} documents in {elapsed:.1f} s; {requests} API requests "
        f"({requests / elapsed:.1f}/s vs limit 40), 429s {stats.rate_limited} "
        f"({stats.rate_limited / requests:.1%}), injected 5xx {stats.errors_injected}, "
        f"drops {stats.drops}, truncated {stats.downloads_truncated}, expired links "
        f"{stats.downloads_expired}, peak concurrency {stats.peak_concurrency}/8; "
        f"run: retries {run.stats.retries}, pauses {run.stats.pauses}; events {kinds}"
    )


@pytest.mark.slow
@pytest.mark.upstage_emulator(sync_latency=0.005)
async def test_open_files_stay_bounded_over_2000_paths(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """2,000 paths from a generator: open descriptors and concurrency stay within the limits."""
    base = make_image("png", seed=7)
    count = 2000
    for n in range(count):
        (tmp_path / f"{n:05d}.png").write_bytes(base + f"#{n}".encode())

    def paths() -> Iterator[Path]:
        for n in range(count):
            yield tmp_path / f"{n:05d}.png"

    limits = Limits(max_connections=16, max_concurrency=8, max_open_documents=8)
    baseline = open_fds()
    peak = baseline
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, open_fds())
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    ok = 0
    async with AsyncUpstageOCR(KEY, base_url=upstage_emulator.base_url, limits=limits) as client:
        async for item in client.ocr_many(paths()):
            assert item.ok, item
            ok += 1
            peak = max(peak, open_fds()) if ok % 50 == 0 else peak
    done.set()
    await sampler
    elapsed = time.monotonic() - started
    # The emulator serves in this process: its sockets (one per client connection) count too.
    bound = baseline + 2 * limits.max_connections + limits.max_open_documents + 50
    print(
        f"\nfds: {count} paths in {elapsed:.1f} s; open descriptors baseline {baseline}, "
        f"peak {peak} (+{peak - baseline}, bound +{bound - baseline}); emulator peak "
        f"concurrency {upstage_emulator.stats.peak_concurrency}/{limits.max_concurrency}"
    )
    assert ok == count
    assert peak < bound
    assert peak - baseline < count // 10
    assert upstage_emulator.stats.peak_concurrency <= limits.max_concurrency


@pytest.mark.parametrize("client_rps", [None, 30.0], ids=["adaptive", "given"])
@pytest.mark.upstage_emulator(rps=30, retry_after=False)
async def test_pace_settles_near_the_server_limit(
    upstage_emulator: EmulatorThread, client_rps: float | None
) -> None:
    """With the server at 30 RPS, the client's pace settles near it; 429s stay a small share."""
    limit = 30.0
    documents = [make_image("png", seed=5000 + n) for n in range(110)]
    finished: list[float] = []

    def watch(event: BulkEvent) -> None:
        if event.kind == "finished":
            finished.append(time.monotonic())

    retries = Retries(attempts=10, initial=0.05, maximum=1.0)
    started = time.monotonic()
    async with AsyncUpstageOCR(
        KEY,
        base_url=upstage_emulator.base_url,
        retries=retries,
        rate=RateLimit(rps=client_rps),
    ) as client:
        items = [item async for item in client.ocr_many(documents, on_event=watch)]
    elapsed = time.monotonic() - started
    assert all(item.ok for item in items)
    requests = api_requests(upstage_emulator)
    throttled = upstage_emulator.stats.rate_limited
    # The server lets a burst of `limit` through at first; the settled pace is measured after it.
    settled_from, settled_to = finished[int(limit) + 10], finished[-1]
    settled = (len(finished) - int(limit) - 11) / (settled_to - settled_from)
    print(
        f"\npace ({'client rps ' + str(client_rps) if client_rps else 'adaptive'}): "
        f"{len(items)} documents in {elapsed:.1f} s; {requests} requests, "
        f"429s {throttled} ({throttled / requests:.1%}); settled rate {settled:.1f}/s = "
        f"{settled / limit:.2f} x the limit {limit:g}"
    )
    assert throttled / requests < 0.3


@pytest.mark.upstage_emulator(start_delay=0.1, batch_latency=0.002, workers=32)
async def test_expired_links_cost_one_refetch_per_request(
    upstage_emulator: EmulatorThread,
) -> None:
    """All of a request's links dead at once: one status re-fetch serves every batch."""
    pdfs = [make_pdf(101 + 7 * n) for n in range(5)]  # 11 to 13 batches each
    triggered: set[str] = set()

    def expire_when_complete(event: BulkEvent) -> None:
        # The status that shows every batch done starts their downloads; expire those links.
        if (
            event.kind == "pages"
            and event.request_id not in triggered
            and event.pages_completed == event.pages_total
            and event.pages_downloaded == 0
        ):
            assert event.request_id is not None
            triggered.add(event.request_id)
            upstage_emulator.expire_links()

    polling = Polling(initial=0.3, maximum=0.6, factor=1.5, jitter=0.1)
    async with AsyncUpstageOCR(KEY, base_url=upstage_emulator.base_url, polling=polling) as client:
        run = client.ocr_many(pdfs, on_event=expire_when_complete)
        items = [item async for item in run]

    stats = upstage_emulator.stats
    assert all(item.ok for item in items)
    for item in items:
        assert texts(item) == [page_text(p) for p in range(1, (item.pages or 0) + 1)]
    assert triggered == {item.request_id for item in items}
    batches = {item.request_id: math.ceil((item.pages or 0) / 10) for item in items}
    assert stats.downloads_expired >= sum(batches.values())
    for request_id, count in batches.items():
        assert request_id is not None
        # submitted + complete + one re-fetch, plus at most one for each other trigger
        assert stats.polls[request_id] <= 3 + len(triggered)
        assert stats.polls[request_id] < count
    print(
        f"\nexpired links: {stats.downloads_expired} dead-link downloads over "
        f"{len(items)} requests of {sorted(batches.values())} batches; polls per request "
        f"{sorted(stats.polls.values())}"
    )
