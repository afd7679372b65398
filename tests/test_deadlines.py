"""`ocr()` inside a request handler: one deadline for the whole call, and a cancel that
leaves nothing behind and nothing paid twice."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time

import anyio
import psutil
import pytest

from aioupstage_ocr import AsyncUpstageOCR, OCRTimeoutError, Polling
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf

POLLING = Polling(initial=0.05, maximum=0.2, factor=1.5, jitter=0.1)
#: What a deadline may overrun: 0.1 s plus one poll interval (the longest, `maximum`).
SLACK = 0.1 + POLLING.maximum


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pdf(tag: object, pages: int = 2) -> bytes:
    """A PDF of its own content (so each is its own document to the emulator)."""
    return make_pdf([f"document {tag} page {n}" for n in range(1, pages + 1)])


def client_for(emulator: EmulatorThread, api_key: str) -> AsyncUpstageOCR:
    return AsyncUpstageOCR(api_key, base_url=emulator.base_url, polling=POLLING)


@pytest.mark.upstage_emulator(batch_latency=30.0)
async def test_deadline_on_an_async_document_carries_its_request_id(
    upstage_emulator: EmulatorThread, api_key: str
) -> None:
    """The deadline ends polling in time; the error names the request, which goes on."""
    document = pdf(101, 3)
    seen: list[str] = []
    async with client_for(upstage_emulator, api_key) as client:
        started = time.monotonic()
        with pytest.raises(OCRTimeoutError) as caught:
            await client.ocr(
                document, filename="slow.pdf", mode="async", timeout=0.5, on_accepted=seen.append
            )
        elapsed = time.monotonic() - started
        assert 0.5 <= elapsed <= 0.5 + SLACK
        error = caught.value
        assert isinstance(error, TimeoutError)
        assert error.request_id is not None
        assert error.request_ids == (error.request_id,) == tuple(seen)
        assert "slow.pdf" in str(error)
        assert error.request_id in str(error)
        status = await client.get_request(error.request_id)  # the request goes on
        assert status.status in ("submitted", "started")
    assert upstage_emulator.stats.async_submissions[sha(document)] == 1


@pytest.mark.upstage_emulator(sync_latency=1.5)
async def test_deadline_on_a_sync_call_has_no_request(
    upstage_emulator: EmulatorThread, api_key: str
) -> None:
    """A sync call past the deadline is cut off; there is no request to wait for."""
    async with client_for(upstage_emulator, api_key) as client:
        started = time.monotonic()
        with pytest.raises(OCRTimeoutError) as caught:
            await client.ocr(make_image("png", seed=7), filename="a.png", timeout=0.3)
        assert time.monotonic() - started <= 0.3 + SLACK
    # The emulator still works on the call the client gave up: let it end before the
    # next test shares the emulator.
    with anyio.fail_after(10):
        while upstage_emulator.stats.in_flight:  # noqa: ASYNC110 - the emulator's own count
            await anyio.sleep(0.05)
    assert caught.value.request_id is None
    assert caught.value.request_ids == ()
    assert "a.png" in str(caught.value)


async def test_no_deadline_hit_is_no_error(upstage_emulator: EmulatorThread, api_key: str) -> None:
    """A call that ends in time returns its result; the callback saw the async id."""
    seen: list[str] = []
    async with client_for(upstage_emulator, api_key) as client:
        result = await client.ocr(
            pdf(5), filename="b.pdf", mode="async", timeout=30, on_accepted=seen.append
        )
    assert result.num_pages == 2
    assert len(seen) == 1


@pytest.mark.upstage_emulator(sync_latency=0.05, batch_latency=0.2, latency_jitter=0.5)
async def test_100_random_cancels_leave_nothing_and_pay_nothing_twice(
    upstage_emulator: EmulatorThread, api_key: str
) -> None:
    """Handlers cancelled at random moments: no task left, no file or socket left open,
    and waiting for the ids they were given pays no async document twice."""
    rng = random.Random(15)
    documents = [
        (pdf(1000 + n), "async") if n % 2 else (make_image("png", seed=n), "sync")
        for n in range(100)
    ]
    process = psutil.Process()
    before_tasks = set(asyncio.all_tasks())
    fds_before = process.num_fds()
    accepted: dict[str, str] = {}  # request id -> sha256 of its document
    cancelled = finished = 0
    async with client_for(upstage_emulator, api_key) as client:

        async def handler(n: int) -> None:
            data, mode = documents[n]
            await client.ocr(
                data,
                filename=f"{n}.{'pdf' if mode == 'async' else 'png'}",
                mode=mode,  # type: ignore[arg-type]
                on_accepted=lambda request_id: accepted.__setitem__(request_id, sha(data)),
            )

        tasks = [asyncio.create_task(handler(n)) for n in range(100)]
        for task in tasks:
            await asyncio.sleep(rng.uniform(0, 0.01))
            if rng.random() < 0.9:
                task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, asyncio.CancelledError):
                cancelled += 1
            elif outcome is None:
                finished += 1
            else:
                raise outcome
        assert cancelled >= 30
        assert cancelled + finished == 100
        await anyio.wait_all_tasks_blocked()
        assert set(asyncio.all_tasks()) <= before_tasks
        # The app then waits for the ids it was given: each document paid once.
        for request_id in accepted:
            assert (await client.wait(request_id)).num_pages == 2
    assert set(asyncio.all_tasks()) <= before_tasks
    # Sockets closed by the client are closed by the emulator's thread (same process) as
    # soon as it reads the end: wait for that, then nothing may be left open.
    with anyio.move_on_after(5):
        while process.num_fds() > fds_before:  # noqa: ASYNC110 - no event tells an fd closed
            await anyio.sleep(0.05)
    assert process.num_fds() <= fds_before
    stats = upstage_emulator.stats
    for digest in set(accepted.values()):
        assert stats.async_submissions[digest] == 1
    assert all(count <= 1 for count in stats.async_submissions.values())
