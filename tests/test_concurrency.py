"""The in-flight window: grows while latency holds, shrinks on queueing and push-back."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import anyio
import pytest

from aioupstage_ocr import AsyncUpstageOCR, Limits
from aioupstage_ocr._concurrency import AdaptiveConcurrency, Slot
from aioupstage_ocr.testing import EmulatorThread, make_image


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Service:
    """A service of `capacity` servers, `latency` s a call, first come first served.

    Driven in virtual time: the client keeps its window full, and each step
    answers the request that finishes first.
    """

    window: AdaptiveConcurrency
    clock: FakeClock
    capacity: int
    latency: float
    jitter: float = 0.0
    seed: int = 0
    queued: int = 0
    sent: int = 0
    answered: int = 0
    limits: list[int] = field(default_factory=list)
    _free: list[float] = field(default_factory=list)
    _pending: list[tuple[float, int, Slot, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._free = [0.0] * self.capacity
        self._rng = random.Random(self.seed)

    async def _fill(self) -> None:
        while self.window.in_flight < self.window.limit:
            slot = await self.window.acquire()
            now = self.clock.now
            slot.sent(now, self.window.in_flight)
            start = max(now, heapq.heappop(self._free))
            if start > now:
                self.queued += 1
            work = self.latency * (1 + self._rng.uniform(-self.jitter, self.jitter))
            heapq.heappush(self._free, start + work)
            heapq.heappush(self._pending, (start + work, self.sent, slot, now))
            self.sent += 1

    async def run(self, answers: int) -> None:
        for _ in range(answers):
            await self._fill()
            finish, _, slot, sent = heapq.heappop(self._pending)
            self.clock.now = finish
            self.window.release(slot, latency=finish - sent, key="sync")
            self.answered += 1
            self.limits.append(self.window.limit)


async def test_slow_start_grows_to_the_ceiling_while_latency_holds() -> None:
    """No queue at the service: the window doubles each round trip up to the ceiling."""
    clock = FakeClock()
    window = AdaptiveConcurrency(64, initial=4, clock=clock)
    service = Service(window, clock, capacity=1000, latency=0.3)
    await service.run(4)
    assert window.limit == 8  # one per answer while full: doubled in one round trip
    await service.run(200)
    assert window.limit == 64
    assert window.cuts == 0


@pytest.mark.parametrize(("capacity", "jitter"), [(4, 0.0), (8, 0.03), (16, 0.03), (24, 0.02)])
async def test_found_window_settles_at_the_service_capacity(capacity: int, jitter: float) -> None:
    """Latency grows with the queue past capacity: the window settles there, rarely past it."""
    clock = FakeClock()
    window = AdaptiveConcurrency(128, clock=clock)
    service = Service(window, clock, capacity=capacity, latency=0.3, jitter=jitter, seed=capacity)
    await service.run(500)  # find it
    started, queued, answered = clock.now, service.queued, service.answered
    await service.run(4000)
    settled = service.limits[-3000:]
    assert capacity - 2 <= min(settled)
    assert max(settled) <= capacity + 2
    throughput = (service.answered - answered) / (clock.now - started)
    assert throughput >= 0.9 * capacity / 0.3
    assert (service.queued - queued) / (service.sent - answered) <= 0.05


async def test_push_back_shrinks_once_per_burst() -> None:
    """A 429 cuts the window; the 429s of requests already out at the cut do not cut again."""
    clock = FakeClock()
    window = AdaptiveConcurrency(32, initial=20, clock=clock)
    slots = [await window.acquire() for _ in range(20)]
    for slot in slots:
        slot.sent(clock.now, 20)
    clock.now = 1.0
    window.release(slots[0], pushed_back=True)
    assert window.limit == 14  # 20 x 0.7
    for slot in slots[1:]:
        window.release(slot, pushed_back=True)
    assert window.limit == 14
    assert window.cuts == 1
    later = await window.acquire()
    later.sent(clock.now, 1)
    clock.now = 2.0
    window.release(later, pushed_back=True)
    assert window.limit == 9  # 14 x 0.7: sent after the cut, so it counts


async def test_a_window_not_full_does_not_grow() -> None:
    """A client with little to send learns nothing about more."""
    clock = FakeClock()
    window = AdaptiveConcurrency(64, initial=16, clock=clock)
    for _ in range(100):
        slot = await window.acquire()
        slot.sent(clock.now, window.in_flight)
        clock.now += 0.3
        window.release(slot, latency=0.3, key="sync")
    assert window.limit == 16


async def test_uploads_leave_a_slot_and_waiters_go_in_order() -> None:
    """Uploads take all slots but one; the status fetch takes it; freed slots go FIFO."""
    window = AdaptiveConcurrency(3, initial=3)
    window.release(await window.acquire())  # a status fetch was asked for: async work is open
    uploads = [await window.acquire(upload=True) for _ in range(2)]
    order: list[str] = []

    async def wait(name: str, upload: bool) -> None:
        slot = await window.acquire(upload=upload)
        order.append(name)
        window.release(slot)

    async with anyio.create_task_group() as group:
        group.start_soon(wait, "upload-3", True)
        await anyio.wait_all_tasks_blocked()
        status = await window.acquire()  # passes the held upload: it has a slot of its own
        assert window.in_flight == 3
        group.start_soon(wait, "upload-4", True)
        group.start_soon(wait, "status-2", False)
        await anyio.wait_all_tasks_blocked()
        assert order == []
        window.release(status)  # frees the last slot: the status fetch, not an upload
        await anyio.wait_all_tasks_blocked()
        assert order == ["status-2"]
        for slot in uploads:
            window.release(slot)
    assert order == ["status-2", "upload-3", "upload-4"]
    assert window.in_flight == 0


async def test_sync_only_uploads_take_every_slot_until_a_status_fetch() -> None:
    """With only sync uploads asked for, uploads may fill the window; from the first
    other request on (a status fetch, an async submit), they leave it a slot."""
    window = AdaptiveConcurrency(4, initial=4)
    uploads = [await window.acquire(upload=True, polls_follow=False) for _ in range(4)]
    assert window.in_flight == 4
    for slot in uploads:
        window.release(slot)
    window.release(await window.acquire())
    uploads = [await window.acquire(upload=True) for _ in range(3)]
    with anyio.move_on_after(0.05) as waited:
        uploads.append(await window.acquire(upload=True))
    assert waited.cancelled_caught
    assert window.in_flight == 3
    for slot in uploads:
        window.release(slot)


@pytest.mark.upstage_emulator(sync_latency=0.2)
async def test_a_sync_bulk_run_fills_its_ceiling(
    api_key: str, upstage_emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sync uploads alone (beside the key probe, which no status fetch follows) keep
    every slot: at `max_concurrency=6`, 6 uploads are out at once."""
    most = 0
    take = AdaptiveConcurrency._take

    def counting(self: AdaptiveConcurrency, upload: bool) -> None:
        nonlocal most
        take(self, upload)
        most = max(most, self._uploads)

    monkeypatch.setattr(AdaptiveConcurrency, "_take", counting)
    base = make_image("png", seed=2)
    documents = [base + f"#{n}".encode() for n in range(36)]
    async with AsyncUpstageOCR(
        api_key, base_url=upstage_emulator.base_url, limits=Limits(max_concurrency=6)
    ) as client:
        async for item in client.ocr_many(documents):
            assert item.ok
    assert most == 6
    assert upstage_emulator.stats.requests["list"] == 1  # the key probe went beside them


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    window = AdaptiveConcurrency(1, initial=1)
    held = await window.acquire()
    with anyio.move_on_after(0.01):
        await window.acquire()
    window.release(held)
    assert window.in_flight == 0
    again = await window.acquire()
    window.release(again)
    assert window.in_flight == 0


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveConcurrency(0)
    with pytest.raises(ValueError, match="backoff"):
        AdaptiveConcurrency(8, backoff=1.5)


@pytest.mark.upstage_emulator(capacity=4, sync_latency=0.1)
async def test_a_bulk_run_finds_the_emulator_capacity(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """A service that queues past 4 at once: the client's window comes down from 16 to it."""
    base = make_image("png", seed=1)
    documents = [base + f"#{n}".encode() for n in range(120)]
    async for item in client.ocr_many(documents):
        assert item.ok
    window = client._transport.concurrency
    print(f"window {window!r}; queued {upstage_emulator.stats.queued} of 120")
    assert window.cuts >= 1
    assert 2 <= window.limit <= 8


@pytest.mark.parametrize("ceiling", [16, 64])
async def test_latency_noise_without_a_queue_does_not_shrink_the_window(ceiling: int) -> None:
    """Latency jittering +/- 8 % with no queue behind it: a cut it causes is undone.

    Such noise passes the delay threshold now and then. A queue of our own
    would shrink with the window; this latency does not, so the window goes
    back (before this check the window averaged 5.5 of 16 and 38 of 64).
    """
    clock = FakeClock()
    window = AdaptiveConcurrency(ceiling, clock=clock)
    service = Service(window, clock, capacity=1000, latency=0.3, jitter=0.08, seed=3)
    await service.run(1500)
    assert window.cuts >= 1  # the noise did set the signal off
    assert window._undone >= 1
    assert sum(service.limits) / len(service.limits) >= 0.9 * ceiling
    assert service.queued == 0
