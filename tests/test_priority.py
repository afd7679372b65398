"""Handlers before bulk: a request handler's calls pass a bulk run's queue, which keeps
a share of 1 in 4 and never starves."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioupstage_ocr import AsyncUpstageOCR, RateLimit
from aioupstage_ocr._concurrency import AdaptiveConcurrency
from aioupstage_ocr._priority import (
    BULK,
    BULK_SHARE,
    HANDLER,
    PriorityLock,
    Turns,
    current,
    later,
    level_of,
    place,
    rank,
    running_as,
)
from aioupstage_ocr._ratelimit import TokenBucket
from aioupstage_ocr.testing import EmulatorThread, make_image


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=200))
def test_turns_give_bulk_one_in_four_while_both_wait(waiting: list[tuple[bool, bool]]) -> None:
    """Whoever alone waits is served; while both wait, never more than 3 handler grants
    in a row, and bulk never gets two in a row."""
    turns = Turns()
    streak, last = 0, None
    for handlers, bulk in waiting:
        level = turns.pick(handlers, bulk)
        if not handlers and not bulk:
            assert level is None
            streak, last = 0, None
            continue
        if not (handlers and bulk):
            assert level == (HANDLER if handlers else BULK)
            streak, last = 0, level
            continue
        assert level is not None
        if level == HANDLER:
            streak += 1
            assert streak <= BULK_SHARE - 1
        else:
            assert last != BULK or streak == 0
            streak = 0
        last = level


def test_priority_names_and_the_context() -> None:
    assert (level_of("handler"), level_of("bulk")) == (HANDLER, BULK)
    with pytest.raises(ValueError, match="priority"):
        level_of("urgent")  # type: ignore[arg-type]
    assert current() == HANDLER
    with running_as(BULK):
        assert current() == BULK
    assert current() == HANDLER


async def test_lock_serves_handlers_first_and_bulk_its_share() -> None:
    lock = PriorityLock()
    order: list[str] = []

    async def waiter(name: str, level: int) -> None:
        with running_as(level):
            async with lock:
                order.append(name)
                await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        await lock.__aenter__()
        for n in range(4):
            group.start_soon(waiter, f"b{n}", BULK)
        await anyio.wait_all_tasks_blocked()
        for n in range(6):
            group.start_soon(waiter, f"h{n}", HANDLER)
        await anyio.wait_all_tasks_blocked()
        assert lock.waiting() == 10
        await lock.__aexit__(None, None, None)
    assert order == ["h0", "h1", "h2", "b0", "h3", "h4", "h5", "b1", "b2", "b3"]


async def test_lock_granted_to_a_cancelled_waiter_goes_to_the_next() -> None:
    """A waiter cancelled right after the lock was handed to it hands it on."""
    lock = PriorityLock()
    got: list[str] = []

    async def waiter(name: str) -> None:
        async with lock:
            got.append(name)

    async with anyio.create_task_group() as group:
        await lock.__aenter__()
        first = asyncio.create_task(waiter("first"))
        await anyio.wait_all_tasks_blocked()
        group.start_soon(waiter, "second")
        await anyio.wait_all_tasks_blocked()
        await lock.__aexit__(None, None, None)  # handed to "first" ...
        first.cancel()  # ... cancelled before it ran
        with pytest.raises(asyncio.CancelledError):
            await first
    assert got == ["second"]
    assert lock.waiting() == 0
    with anyio.fail_after(1):
        async with lock:  # free again
            pass


async def test_window_wakes_handlers_first_and_bulk_its_share() -> None:
    window = AdaptiveConcurrency(1, initial=1)
    held = await window.acquire()
    order: list[str] = []

    async def waiter(name: str, level: int) -> None:
        with running_as(level):
            slot = await window.acquire(upload=True)
        order.append(name)
        await anyio.lowlevel.checkpoint()
        window.release(slot)

    async with anyio.create_task_group() as group:
        for n in range(3):
            group.start_soon(waiter, f"b{n}", BULK)
        await anyio.wait_all_tasks_blocked()
        for n in range(4):
            group.start_soon(waiter, f"h{n}", HANDLER)
        await anyio.wait_all_tasks_blocked()
        window.release(held)
    assert order == ["h0", "h1", "h2", "b0", "h3", "b1", "b2"]
    assert window.in_flight == 0


@given(st.lists(st.booleans(), max_size=60))
def test_place_keeps_ranks_in_order_and_each_first_come(ranks: list[bool]) -> None:
    """Waiters placed one by one: every rank-0 one before every later one, each rank in
    the order they came."""

    class W:
        def __init__(self, n: int, r: int) -> None:
            self.n, self.rank = n, r

    queue: deque[W] = deque()
    for n, is_later in enumerate(ranks):
        place(queue, W(n, int(is_later)))
    expected = [n for n, r in enumerate(ranks) if not r] + [n for n, r in enumerate(ranks) if r]
    assert [w.n for w in queue] == expected


async def test_later_requests_wait_behind_the_others_of_their_class() -> None:
    """A bulk run's sync uploads (`later()`) queued at the lock and the window: an
    async submit or poll of the same class that comes after goes before them; a handler's
    class still comes first."""
    lock = PriorityLock()
    window = AdaptiveConcurrency(1, initial=1)
    held = await window.acquire()
    at_lock: list[str] = []
    at_window: list[str] = []

    async def locking(name: str, level: int, is_later: bool) -> None:
        with running_as(level), later() if is_later else contextlib.nullcontext():
            assert rank() == int(is_later)
            async with lock:
                at_lock.append(name)
                await anyio.lowlevel.checkpoint()

    async def windowed(name: str, level: int, is_later: bool) -> None:
        with running_as(level), later() if is_later else contextlib.nullcontext():
            slot = await window.acquire(upload=is_later, polls_follow=not is_later)
        at_window.append(name)
        await anyio.lowlevel.checkpoint()
        window.release(slot)

    for target, release in ((locking, lock.__aexit__), (windowed, None)):
        async with anyio.create_task_group() as group:
            if release is not None:
                await lock.__aenter__()
            for n in range(3):
                group.start_soon(target, f"sync{n}", BULK, True)
            await anyio.wait_all_tasks_blocked()
            group.start_soon(target, "submit", BULK, False)
            await anyio.wait_all_tasks_blocked()
            group.start_soon(target, "handler", HANDLER, True)
            await anyio.wait_all_tasks_blocked()
            if release is not None:
                await release(None, None, None)
            else:
                window.release(held)
    assert at_lock == ["handler", "submit", "sync0", "sync1", "sync2"]
    assert at_window == ["handler", "submit", "sync0", "sync1", "sync2"]
    assert rank() == 0


async def test_bucket_serves_a_handler_before_bulk_already_waiting() -> None:
    bucket = TokenBucket(rate=200.0)
    await bucket.acquire()  # empty: every acquire below waits its 5 ms
    order: list[str] = []

    async def waiter(name: str, level: int) -> None:
        with running_as(level):
            await bucket.acquire()
        order.append(name)

    async with anyio.create_task_group() as group:
        for n in range(6):
            group.start_soon(waiter, f"b{n}", BULK)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(waiter, "h", HANDLER)
    assert order.index("h") <= 1  # b0 may hold the lock already, asleep for its token


@pytest.mark.upstage_emulator(rps=20, sync_latency=0.05)
async def test_a_handler_call_passes_a_rate_limited_bulk_run(
    upstage_emulator: EmulatorThread, api_key: str
) -> None:
    """During a bulk run held to 20 RPS, a handler's `ocr()` waits for a request or two
    of the run, not for the window of them queued at the pacer; the run finishes."""
    images = [make_image("png", seed=n) for n in range(120)]
    done: list[int] = []
    async with AsyncUpstageOCR(
        api_key, base_url=upstage_emulator.base_url, rate=RateLimit(rps=20)
    ) as client:

        async def bulk() -> None:
            async for item in client.ocr_many(images):
                assert item.error is None
                done.append(item.index)

        async with anyio.create_task_group() as group:
            group.start_soon(bulk)
            while len(done) < 30:  # noqa: ASYNC110 - until the run is well under way
                await anyio.sleep(0.01)
            passed: list[int] = []
            for n in range(3):
                before = len(done)
                result = await client.ocr(make_image("png", seed=1000 + n), filename=f"h{n}.png")
                assert result.num_pages == 1
                passed.append(len(done) - before)
        assert len(done) == 120
    assert max(passed) <= 4, passed
