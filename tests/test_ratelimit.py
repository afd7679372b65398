"""Pacing: token bucket, AIMD and the Pacer gate."""

from __future__ import annotations

import itertools

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from aioupstage_ocr import AsyncUpstageOCR
from aioupstage_ocr._config import RateLimit
from aioupstage_ocr._ratelimit import (
    AdaptiveRate,
    HeaderBudget,
    Pacer,
    TokenBucket,
    loop_time,
    parse_reset,
)
from aioupstage_ocr._retry import set_testing
from aioupstage_ocr.testing import EmulatorThread, make_image


class FakeClock:
    """Virtual time: `sleep` advances it at once (sound while one task sleeps at a time)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await anyio.lowlevel.checkpoint()


async def test_bucket_long_run_rate() -> None:
    """N acquisitions at rate r take (N - capacity) / r after the initial burst."""
    clock = FakeClock()
    bucket = TokenBucket(5.0, 2.0, clock=clock, sleep=clock.sleep)
    for _ in range(52):
        await bucket.acquire()
    assert clock.now == pytest.approx(50 / 5.0)


async def test_bucket_long_run_rate_concurrent() -> None:
    """Concurrent callers share the rate: 30 at 10/s, burst 1, take 2.9 s."""
    clock = FakeClock()
    bucket = TokenBucket(10.0, 1.0, clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def one() -> None:
        await bucket.acquire()
        times.append(clock.now)

    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(one)
    assert clock.now == pytest.approx(2.9)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g == pytest.approx(0.1) for g in gaps)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=100.0),
    capacity=st.floats(min_value=1.0, max_value=20.0),
    steps=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.0, max_value=3.0)),
        min_size=1,
        max_size=40,
    ),
)
async def test_bucket_never_grants_more_than_allowed(
    rate: float, capacity: float, steps: list[tuple[float, float]]
) -> None:
    """By time t the bucket grants at most capacity + rate * t, and waits no longer than needed."""
    clock = FakeClock()
    bucket = TokenBucket(rate, capacity, clock=clock, sleep=clock.sleep)
    granted = 0.0
    idle = 0.0
    for fraction, gap in steps:
        clock.now += gap
        idle += gap
        cost = fraction * capacity
        await bucket.acquire(cost)
        granted += cost
        assert granted <= capacity + rate * clock.now + 1e-6
    # Liveness: the time spent waiting is at most what the costs require.
    assert clock.now <= idle + granted / rate + 1e-6


async def test_bucket_fifo_and_big_cost_not_starved() -> None:
    """Waiters are served in arrival order; a big cost in the queue passes in its turn."""
    clock = FakeClock()
    bucket = TokenBucket(2.0, 4.0, clock=clock, sleep=clock.sleep)
    await bucket.acquire(4.0)  # empty it so everyone queues
    costs = [1.0, 1.0, 10.0, 1.0, 0.5, 1.0]
    order: list[int] = []

    async def one(i: int) -> None:
        await bucket.acquire(costs[i])
        order.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(len(costs)):
            tg.start_soon(one, i)
            await anyio.lowlevel.checkpoint()
    assert order == list(range(len(costs)))
    # 14.5 tokens at 2/s; the 10 waits for a full bucket (4) and goes 6 into debt.
    assert clock.now == pytest.approx(14.5 / 2.0)


async def test_bucket_set_rate_at_runtime() -> None:
    """set_rate changes the spacing from then on."""
    clock = FakeClock()
    bucket = TokenBucket(1.0, 1.0, clock=clock, sleep=clock.sleep)
    await bucket.acquire()
    await bucket.acquire()
    assert clock.now == pytest.approx(1.0)
    bucket.set_rate(10.0)
    await bucket.acquire()
    assert clock.now == pytest.approx(1.1)
    assert bucket.rate == 10.0


async def test_bucket_cost_over_capacity_passes_in_real_time() -> None:
    """A 117-page document under ppm=100 goes through at once (into debt), no deadlock."""
    bucket = TokenBucket(100 / 60, 100 / 60)
    with anyio.fail_after(1):
        await bucket.acquire(117)


async def test_bucket_cancelled_waiter_frees_the_queue() -> None:
    """A waiter cancelled while queued takes nothing and blocks no one."""
    bucket = TokenBucket(20.0, 1.0)
    await bucket.acquire()
    with anyio.move_on_after(0.01):
        await bucket.acquire()
    with anyio.fail_after(1):
        await bucket.acquire()


@pytest.mark.parametrize(
    ("rate", "capacity", "cost"),
    [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (float("inf"), 1.0, 1.0), (1.0, 1.0, -1.0)],
)
async def test_bucket_rejects_bad_numbers(rate: float, capacity: float, cost: float) -> None:
    """Non-positive or infinite rates and capacities, and negative costs, are refused."""
    with pytest.raises(ValueError, match="must be"):
        await TokenBucket(rate, capacity).acquire(cost)


def _traffic(aimd: AdaptiveRate, clock: FakeClock, *, sent: int, accepted: int) -> None:
    """`sent` starts and `accepted` successes spread evenly over the first second."""
    for i in range(sent):
        clock.now = i / sent
        aimd.note_start(clock.now)
    for i in range(accepted):
        clock.now = i / accepted
        aimd.on_success(started=clock.now)
    clock.now = 1.0


def test_aimd_unlimited_until_first_429() -> None:
    """No limit before a 429; the first 429 sets the pace to 0.9 x what was accepted."""
    clock = FakeClock()
    aimd = AdaptiveRate(clock=clock)
    assert [aimd.current_rate, aimd.bucket, aimd.ceiling] == [None, None, None]
    _traffic(aimd, clock, sent=20, accepted=10)  # the service took 10 of 20 per second
    assert aimd.on_throttled(started=0.95)
    assert aimd.ceiling == pytest.approx(10.0)
    assert aimd.current_rate == pytest.approx(9.0)
    assert aimd.bucket is not None
    assert aimd.bucket.rate == pytest.approx(9.0)


def test_aimd_ceiling_falls_back_to_the_send_rate() -> None:
    """With no success in the window, the send rate marks the ceiling."""
    clock = FakeClock()
    aimd = AdaptiveRate(clock=clock)
    _traffic(aimd, clock, sent=20, accepted=0)
    assert aimd.on_throttled(started=0.95)
    assert aimd.ceiling == pytest.approx(20.0)


def test_aimd_cuts_once_per_window() -> None:
    """429s from requests started before the last cut are ignored; a later one cuts again."""
    clock = FakeClock()
    aimd = AdaptiveRate(clock=clock)
    _traffic(aimd, clock, sent=20, accepted=10)
    assert aimd.on_throttled(started=0.9)
    first = aimd.current_rate
    for started in (0.2, 0.5, 0.95, 0.99):  # in flight when the cut happened
        clock.now += 0.01
        assert not aimd.on_throttled(started)
    assert aimd.current_rate == first
    assert aimd.cuts == 1
    clock.now = 2.0
    aimd.note_start(1.5)
    assert aimd.on_throttled(started=1.5)
    assert aimd.cuts == 2
    assert aimd.current_rate is not None
    assert first is not None
    assert aimd.current_rate < first


def test_aimd_regains_the_ceiling_in_about_10_s_then_probes() -> None:
    """At full use the rate climbs back to the ceiling in ~10 s, then probes past it."""
    clock = FakeClock()
    aimd = AdaptiveRate(clock=clock)
    _traffic(aimd, clock, sent=20, accepted=20)
    aimd.on_throttled(started=1.0)
    assert aimd.current_rate == pytest.approx(18.0)
    aimd.on_success(started=0.5)  # sent before the cut: no credit
    assert aimd.current_rate == pytest.approx(18.0)
    elapsed = 0.0
    rates: list[float] = []
    while (rate := aimd.current_rate) is not None and rate < 20.0:
        elapsed += 1 / rate  # one success per slot at the current rate
        aimd.on_success(started=1.0)
        rates.append(aimd.current_rate or 0.0)
    assert rates == sorted(rates)
    assert 9.0 < elapsed < 11.0
    assert aimd.current_rate == pytest.approx(20.0)  # stops at the ceiling first...
    probe_time = 0.0
    while (rate := aimd.current_rate) is not None and rate < 21.0:
        probe_time += 1 / rate
        aimd.on_success(started=1.0)
    assert probe_time < 2.0  # ... then climbs past it ~5 % per second


def test_aimd_capped_and_floored() -> None:
    """Growth stops at max_rate; repeated cuts stop at min_rate."""
    clock = FakeClock()
    aimd = AdaptiveRate(clock=clock, max_rate=15.0)
    _traffic(aimd, clock, sent=20, accepted=10)
    aimd.on_throttled(started=1.0)
    for _ in range(2000):
        aimd.on_success(started=1.5)
    assert aimd.current_rate == 15.0
    for t in range(3, 80):
        clock.now = float(t) * 10  # past the window: nothing accepted lately
        aimd.on_throttled(started=clock.now)
    assert aimd.current_rate == pytest.approx(0.1)


async def test_pacer_no_limit_never_sleeps() -> None:
    """With no rps, ppm or adaptive, acquire never sleeps, even after 429s without Retry-After."""
    clock = FakeClock()
    pacer = Pacer(adaptive=False, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        started = await pacer.acquire(pages=5)
        pacer.on_throttled(started, None)
        pacer.on_success(started)
    assert clock.sleeps == []
    assert pacer.current_rate is None
    assert pacer.stats.throttles == 1000


async def test_pacer_adaptive_paces_after_a_429() -> None:
    """The default pacer runs free, then spaces requests at the cut rate."""
    clock = FakeClock()
    pacer = Pacer.from_config(RateLimit(), clock=clock, sleep=clock.sleep)
    for _ in range(10):
        started = await pacer.acquire()
        clock.now += 0.1
    assert clock.sleeps == []
    pacer.on_throttled(started, None)
    rate = pacer.current_rate
    assert rate is not None
    assert rate == pytest.approx(9.0, rel=0.2)  # 0.9 x the ~10/s sent, none accepted
    before = clock.now
    for _ in range(11):
        await pacer.acquire()
    assert clock.now - before == pytest.approx(10 / rate)
    assert pacer.stats.cuts == 1


async def test_pacer_fixed_rps_and_ppm() -> None:
    """rps spaces every request; ppm spaces pages, and a big document still passes."""
    clock = FakeClock()
    pacer = Pacer.from_config(RateLimit(rps=2, ppm=120), clock=clock, sleep=clock.sleep)
    assert pacer.current_rate == 2
    await pacer.acquire()
    await pacer.acquire()
    assert clock.now == pytest.approx(0.5)
    await pacer.acquire(pages=117)  # 2 pages/s, 2 saved up: goes now, 115 into debt
    assert clock.now == pytest.approx(1.0)
    await pacer.acquire()  # a poll does not wait behind the page debt
    assert clock.now == pytest.approx(1.5)
    await pacer.acquire(pages=1)  # waits out the debt
    assert clock.now == pytest.approx(0.5 + 116 / 2, rel=0.01)


async def test_pacer_retry_after_pauses_every_sender() -> None:
    """A Retry-After holds all concurrent senders until the deadline, then releases them."""
    pauses: list[float] = []
    pacer = Pacer(adaptive=False, on_pause=pauses.append)
    started = await pacer.acquire()
    pacer.on_throttled(started, 0.3)
    deadline = pacer.paused_until
    pacer.on_throttled(started, 0.1)  # a shorter one does not shorten the pause
    assert pacer.paused_until == deadline
    done: list[float] = []

    async def sender() -> None:
        await pacer.acquire()
        done.append(anyio.current_time())

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(sender)
    assert len(done) == 5
    assert all(deadline <= t < deadline + 0.5 for t in done)
    assert pauses == [0.3]
    stats = pacer.stats
    assert (stats.throttles, stats.pauses) == (2, 1)
    assert stats.paused_seconds == pytest.approx(0.3)


async def test_pacer_pause_holds_the_rps_bucket() -> None:
    """After a pause, a fixed rps resumes at its pace rather than in a burst."""
    clock = FakeClock()
    pacer = Pacer(rps=10, clock=clock, sleep=clock.sleep)
    started = await pacer.acquire()
    pacer.on_throttled(started, 5.0)
    assert pacer.paused_until == 5.0
    times = [await pacer.acquire() for _ in range(3)]
    assert times == pytest.approx([5.0, 5.1, 5.2])
    assert pacer.current_rate == 10  # a fixed rps is not cut


async def test_pacer_pause_capped_and_skipped_in_testing() -> None:
    """A Retry-After pause is capped at max_pause, and skipped in testing mode."""
    clock = FakeClock()
    pauses: list[float] = []
    pacer = Pacer(adaptive=False, max_pause=2.0, on_pause=pauses.append, clock=clock)
    pacer.on_throttled(0.0, 3600.0)
    assert pacer.paused_until == 2.0
    assert pauses == [2.0]
    clock.now = 10.0
    with set_testing(True):
        pacer.on_throttled(10.0, 30.0)
    assert pacer.paused_until == 2.0
    assert pacer.stats.throttles == 2


async def test_pacer_acquire_pages_alone() -> None:
    """acquire_pages takes page tokens only; the RPS slot comes with acquire()."""
    clock = FakeClock()
    pacer = Pacer(rps=1, ppm=60, clock=clock, sleep=clock.sleep)
    await pacer.acquire_pages(3)  # 1 page/s, 1 saved: 2 into debt
    await pacer.acquire()
    assert clock.now == 0.0
    await pacer.acquire_pages(1)
    assert clock.now == pytest.approx(3.0)
    await Pacer(adaptive=False, clock=clock, sleep=clock.sleep).acquire_pages(1000)
    assert clock.now == pytest.approx(3.0)


async def test_loop_time_is_anyio_time() -> None:
    """The default clock reads the same clock as anyio.current_time()."""
    assert loop_time() == pytest.approx(anyio.current_time(), abs=0.01)


async def test_pacer_rps_bucket_absorbs_a_late_sender() -> None:
    """A sender late by less than a tenth of a second keeps its slots: no lost throughput."""
    clock = FakeClock()
    pacer = Pacer(rps=40.0, clock=clock, sleep=clock.sleep)
    for _ in range(4):  # the bucket starts full: 4 = 40 rps x 0.1 s
        await pacer.acquire()
    assert clock.sleeps == []
    clock.now += 0.075  # a late sender: 3 slots went by
    for _ in range(3):
        await pacer.acquire()
    assert clock.sleeps == []  # all three still there
    await pacer.acquire()
    assert clock.sleeps == [pytest.approx(0.025)]


# --------------------------------------------------------------------------- rate-limit headers


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("1.5", 1.5), ("0", 0.0)],
)
def test_reset_values_are_read(text: str, seconds: float) -> None:
    assert parse_reset(text, 1_700_000_000.0) == pytest.approx(seconds)


def test_reset_as_an_epoch_time_and_unreadable_ones() -> None:
    assert parse_reset("1700000012", 1_700_000_000.0) == pytest.approx(12.0)
    for text in ("soon", "5 s", "-1", "1x", ""):
        assert parse_reset(text, 0.0) is None


@pytest.mark.parametrize(
    "headers",
    [
        {
            "x-ratelimit-limit-requests": "10",
            "x-ratelimit-remaining-requests": "4",
            "x-ratelimit-reset-requests": "2s",
        },
        {"RateLimit-Limit": "10", "RateLimit-Remaining": "4", "RateLimit-Reset": "2"},
        {"RateLimit-Limit": "10", "RateLimit-Remaining": "4", "RateLimit-Policy": "10;w=2"},
    ],
)
def test_header_budget_is_a_bucket_refilled_as_the_reset_says(headers: dict[str, str]) -> None:
    """4 left of 10, full in 2 s: 2 go at once (2 kept back), then one per (2 / 6) s, less 5 %."""
    budget = HeaderBudget()
    budget.update(CIMultiDict(headers), 0.0, 1_700_000_000.0)
    assert budget.remaining == 4
    for _ in range(2):
        assert budget.delay(0.0) == 0.0
        budget.spend(0.0)
    rate = 0.95 * 6 / 2
    assert budget.delay(0.0) == pytest.approx(1 / rate)
    budget.spend(1 / rate)
    assert budget.delay(1 / rate) == pytest.approx(1 / rate)


def test_header_budget_counts_what_went_out_after_the_answered_request() -> None:
    """An answer cannot count the requests sent after the one it answers."""
    budget = HeaderBudget()
    for t in (0.0, 0.1, 0.2, 0.3):
        budget.spend(t)
    budget.update(
        CIMultiDict({"RateLimit-Limit": "10", "RateLimit-Remaining": "5", "RateLimit-Reset": "1"}),
        0.4,
        0.0,
        sent_at=0.1,
    )
    assert budget.remaining == 3  # 5 less the two sent at 0.2 and 0.3


def test_header_budget_without_a_limit_spreads_what_is_left() -> None:
    budget = HeaderBudget()
    budget.update(CIMultiDict({"RateLimit-Remaining": "6", "RateLimit-Reset": "2"}), 0.0, 0.0)
    assert budget.delay(0.0) == 0.0
    budget.spend(0.0)
    assert budget.delay(0.0) == pytest.approx(2 / 3)  # 2 s left / 3 left (2 kept back)
    budget.spend(0.7)
    budget.spend(1.4)
    assert budget.delay(1.4) == pytest.approx(0.6)  # 0.6 s left / 1 left
    budget.spend(1.5)
    assert budget.delay(1.5) == pytest.approx(0.5)  # none left: until the reset at 2.0
    assert budget.delay(2.0) == 0.0


def test_header_budget_is_free_above_half_and_without_headers() -> None:
    budget = HeaderBudget()
    assert budget.delay(0.0) == 0.0
    budget.update(CIMultiDict({"content-type": "application/json"}), 0.0, 0.0)
    assert budget.remaining is None
    budget.update(
        CIMultiDict(
            {"RateLimit-Limit": "100", "RateLimit-Remaining": "60", "RateLimit-Reset": "1"}
        ),
        0.0,
        0.0,
    )
    assert budget.delay(0.0) == 0.0


async def test_pacer_waits_out_an_empty_budget() -> None:
    clock = FakeClock()
    pacer = Pacer(adaptive=False, clock=clock, sleep=clock.sleep)
    pacer.on_headers(
        CIMultiDict({"RateLimit-Limit": "5", "RateLimit-Remaining": "0", "RateLimit-Reset": "3"}),
        0.0,
    )
    started = await pacer.acquire()
    assert started == pytest.approx(3 * 3 / 5 / 0.95)  # 3 refilled (2 kept back): 5 per 3 s
    assert pacer.stats.throttles == 0


@pytest.mark.parametrize("family", ["x-ratelimit", "ratelimit"])
async def test_headers_pace_before_any_429(family: str, retry_testing: None) -> None:
    """The service says what is left: a bulk run over its limit gets no 429 at all;
    without the headers, the same run finds the limit from 429s."""
    base = make_image("png", seed=3)
    for headers in (family, None):
        with EmulatorThread(rps=10, sync_latency=0.05, rate_headers=headers) as emulator:
            async with AsyncUpstageOCR("key", base_url=emulator.base_url) as client:
                documents = [base + f"#{n}".encode() for n in range(40)]
                async for item in client.ocr_many(documents):
                    assert item.ok
            throttled = emulator.stats.rate_limited
        if headers is not None:
            assert throttled == 0
        else:
            assert throttled > 0


async def test_pacer_counts_requests_waiting_for_the_rate_limit() -> None:
    """`queued()`: requests held for an RPS slot (given, or learnt from a 429) or for the
    budget the service's headers leave; none while nothing waits."""

    async def stuck(seconds: float) -> None:
        await anyio.sleep_forever()

    clock = FakeClock()
    given = Pacer.from_config(RateLimit(rps=2), clock=clock, sleep=stuck)
    learnt = Pacer.from_config(RateLimit(), clock=clock, sleep=stuck)
    for _ in range(10):
        started = await learnt.acquire()
        clock.now += 0.1
    learnt.on_throttled(started, None)
    told = Pacer(adaptive=False, clock=clock, sleep=stuck)
    told.on_headers(
        CIMultiDict({"RateLimit-Limit": "5", "RateLimit-Remaining": "0", "RateLimit-Reset": "3"}),
        0.0,
    )
    for pacer in (given, learnt, told):
        assert pacer.queued() == 0
        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(pacer.acquire)
            for _ in range(10):
                await anyio.lowlevel.checkpoint()
            assert pacer.queued() >= 4, pacer
            group.cancel_scope.cancel()
    assert Pacer(adaptive=False).queued() == 0
