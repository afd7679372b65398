"""The cluster's budget (`Budget`) and the pacer that leases from it (`ClusterPacer`)."""

from __future__ import annotations

import itertools

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("ray")

from conftest import TEST_KEY

from aioupstage_ocr._config import RateLimit
from aioupstage_ocr.ray._budget import (
    Budget,
    ClusterPacer,
    Grant,
    LeaseRequest,
    budget_name,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _granted(budget: Budget, clock: Clock, holder: str, n: int) -> list[float]:
    """Absolute send times granted to `holder` for `n` requests."""
    grant = budget.lease(LeaseRequest(holder=holder, requests=n))
    return [clock.now + slot for slot in grant.slots]


def test_name_is_a_hash_never_the_key() -> None:
    name = budget_name(TEST_KEY, "ocr", "https://api.example/v1")
    assert TEST_KEY not in name
    assert "7f3a9c1e" not in name
    assert name == budget_name(TEST_KEY, "ocr", "https://api.example/v1")
    assert name != budget_name(TEST_KEY, "ocr-2", "https://api.example/v1")
    assert name != budget_name("other", "ocr", "https://api.example/v1")


def test_holders_share_one_rate_in_blocks_never_past_the_horizon() -> None:
    clock = Clock()
    budget = Budget(RateLimit(rps=20), horizon=0.5, clock=clock)
    times: list[float] = []
    for _ in range(40):  # four holders, asking for 8 each, every 0.1 s
        for holder in "abcd":
            got = _granted(budget, clock, holder, 8)
            assert all(t - clock.now <= 0.5 + 1e-9 for t in got)
            times += got
        clock.now += 0.1
    times.sort()
    span = times[-1] - times[0]
    # 20 a second, plus the burst of 2, whoever asked.
    assert len(times) <= 20 * span + 2 + 1e-6
    assert len(times) >= 20 * span - 2
    gaps = [b - a for a, b in itertools.pairwise(times[2:])]
    assert min(gaps) == pytest.approx(0.05)


def test_a_full_horizon_grants_nothing_and_says_when_to_ask() -> None:
    clock = Clock()
    budget = Budget(RateLimit(rps=10), horizon=0.5, clock=clock)
    assert len(_granted(budget, clock, "a", 100)) == 6  # burst 1 now, then 5 in 0.5 s
    grant = budget.lease(LeaseRequest(holder="b", requests=3))
    assert grant.slots == ()
    assert grant.retry_in == pytest.approx(0.1)


def test_a_dead_holders_lease_expires_by_itself() -> None:
    """A holder that vanished wastes at most the horizon; the others go on after it."""
    clock = Clock()
    budget = Budget(RateLimit(rps=10), horizon=0.5, clock=clock)
    dead = _granted(budget, clock, "dead", 100)
    clock.now = max(dead)  # its lease runs out unused
    alive = _granted(budget, clock, "alive", 3)
    assert alive[0] - clock.now <= 0.1 + 1e-9
    assert budget.stats()["holders"]["dead"]["granted"] == len(dead)


def test_retry_after_from_one_holder_pauses_every_other() -> None:
    clock = Clock()
    budget = Budget(RateLimit(rps=10), clock=clock)
    _granted(budget, clock, "a", 2)
    budget.lease(LeaseRequest(holder="a", requests=0, throttles=((0.05, 2.0),)))
    grant = budget.lease(LeaseRequest(holder="b", requests=1))
    assert grant.pause == pytest.approx(2.0)
    assert grant.slots == ()  # past the horizon: ask again later
    clock.now += 2.0
    assert _granted(budget, clock, "b", 1) == [pytest.approx(clock.now)]
    assert budget.stats()["throttles"] == 1
    assert budget.stats()["pauses"] == 1


def test_adaptive_rate_found_from_every_holders_429s() -> None:
    clock = Clock()
    budget = Budget(RateLimit(), clock=clock)
    assert budget.current_rate is None
    for _ in range(30):  # unlimited: all at once
        assert _granted(budget, clock, "a", 4) == [clock.now] * 4
        clock.now += 0.1
    grant = budget.lease(
        LeaseRequest(holder="b", requests=0, successes=(0.5,) * 20, throttles=((0.01, None),))
    )
    assert grant.rate is not None
    assert budget.current_rate == grant.rate
    assert budget.stats()["cuts"] == 1
    slots = _granted(budget, clock, "a", 5)
    assert slots[-1] > slots[0]


def test_pages_per_minute() -> None:
    clock = Clock()
    budget = Budget(RateLimit(ppm=600), clock=clock)  # 10 pages/s, a burst of 10
    first = budget.lease(LeaseRequest(holder="a", requests=0, pages=10))
    second = budget.lease(LeaseRequest(holder="b", requests=0, pages=20))
    assert first.pages_in == 0.0
    assert second.pages_in == pytest.approx(2.0)
    assert Budget(RateLimit(), clock=clock).lease(LeaseRequest("a", 0, 5)).pages_in is None


@settings(max_examples=50, deadline=None)
@given(
    rps=st.floats(min_value=1.0, max_value=100.0),
    steps=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 20), st.floats(0.0, 0.5)),
        min_size=1,
        max_size=60,
    ),
)
def test_never_more_than_the_rate_whoever_asks(
    rps: float, steps: list[tuple[int, int, float]]
) -> None:
    """In any window of W seconds at most burst + rps * W send times are granted."""
    clock = Clock()
    budget = Budget(RateLimit(rps=rps), clock=clock)
    burst = max(1.0, rps / 10)
    times: list[float] = []
    for holder, n, wait in steps:
        times += _granted(budget, clock, f"h{holder}", n)
        clock.now += wait
    times.sort()
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= burst + rps * (times[j] - start) + 1e-6


async def test_cluster_pacers_share_one_budget_in_few_round_trips() -> None:
    """Three clients' pacers, 60 requests at 200/s: one rate, far fewer leases than requests."""
    budget = Budget(RateLimit(rps=200))
    leases: list[LeaseRequest] = []

    async def lease(request: LeaseRequest) -> Grant:
        leases.append(request)
        await anyio.sleep(0.002)  # a round trip
        return budget.lease(request)

    pacers = [ClusterPacer(lease, holder=f"p{i}") for i in range(3)]
    starts: list[float] = []

    async def send(pacer: ClusterPacer) -> None:
        started = await pacer.acquire()
        starts.append(started)
        pacer.on_success(started)

    async with anyio.create_task_group() as group:
        for i in range(60):
            group.start_soon(send, pacers[i % 3])
    assert len(starts) == 60
    assert sum(r.requests for r in leases) >= 60
    assert len(leases) < 30
    assert budget.stats()["holders"].keys() == {"p0", "p1", "p2"}
    # Successes ride on the next lease: nothing is sent for them alone.
    await pacers[0].acquire()
    assert leases[-1].successes


async def test_a_429_pauses_this_client_at_once_and_the_cluster_next() -> None:
    budget = Budget(RateLimit(rps=1000))

    async def lease(request: LeaseRequest) -> Grant:
        return budget.lease(request)

    first, second = ClusterPacer(lease, holder="a"), ClusterPacer(lease, holder="b")
    started = await first.acquire()
    pauses: list[float] = []
    first.pause_listeners.append(pauses.append)
    first.on_throttled(started, 0.2)
    assert pauses == [0.2]
    assert first.paused_until > started
    second_started: list[float] = []

    async def later() -> None:
        await anyio.sleep(0.02)  # after the first one's lease reported the 429
        second_started.append(await second.acquire())

    async with anyio.create_task_group() as group:
        group.start_soon(first.acquire)  # leases (reporting the 429), waits the pause out
        group.start_soon(later)
    assert budget.stats()["throttles"] == 1
    assert budget.stats()["pauses"] == 1
    assert second.stats.pauses == 1
    assert second_started[0] >= first.paused_until - 0.01
