"""Client-side pacing: how fast requests and pages go out.

- `TokenBucket`: "N per second" with a small burst, fair (FIFO); a cost over
  the capacity still passes (the balance goes into debt).
- `AdaptiveRate`: AIMD, finds the pace from 429s when no `rps` is set.
- `HeaderBudget`: what the service's rate-limit headers say is left, spent
  evenly until the window resets.
- `Pacer`: the one gate every API request passes, built from `RateLimit`:
  the RPS limit (fixed or adaptive), the PPM budget, the budget the headers
  tell, and the pause that a `Retry-After` puts on every sender.

Every piece reads time from `clock` and waits with `sleep` (by default the
event loop's clock, as `anyio.current_time` gives it, and `anyio.sleep`), so
tests can drive them with a fake clock.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio

from ._config import DEFAULT_RATE, DEFAULT_RETRIES, RateLimit
from ._priority import PriorityLock
from ._retry import is_testing

__all__ = [
    "AdaptiveRate",
    "Clock",
    "HeaderBudget",
    "Pacer",
    "PacerStats",
    "Sleep",
    "TokenBucket",
    "loop_time",
    "parse_reset",
]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Float slack when comparing a refilled balance with the cost it must cover.
_EPSILON = 1e-9


def loop_time() -> float:
    """The running event loop's clock: `anyio.current_time()`, read fast on asyncio.

    `acquire` reads it for every request; anyio's own lookup of the backend
    costs about ten times the read itself.
    """
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:  # another backend (trio)
        return anyio.current_time()


def _check_rate(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


class TokenBucket:
    """`rate` tokens per second, at most `capacity` saved up; `acquire(cost)` takes `cost`.

    Waiters are served first come, first served within their class (`_priority`:
    a request handler's before a bulk run's, which keeps 1 grant in 4). A cost over the capacity
    waits for a full bucket, then takes it all and leaves a debt that the
    next callers wait out, so the long-run rate holds and nothing deadlocks.
    """

    # Algorithm: token bucket. The balance refills continuously at `rate`, up to
    # `capacity`. The caller holding the FIFO lock waits until the balance covers
    # min(cost, capacity) (and any `hold` has passed), then subtracts the full
    # cost; only that caller sleeps, the rest queue on the lock in arrival order.
    # By time t at most `capacity + rate * t` is granted, plus the excess of the
    # largest cost over `capacity` (the deepest debt).

    __slots__ = (
        "_capacity",
        "_clock",
        "_hold_until",
        "_lock",
        "_rate",
        "_sleep",
        "_tokens",
        "_updated",
    )

    def __init__(
        self,
        rate: float,
        capacity: float = 1.0,
        *,
        clock: Clock = loop_time,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        _check_rate("rate", rate)
        _check_rate("capacity", capacity)
        self._rate = float(rate)
        self._capacity = float(capacity)
        self._tokens = self._capacity  # starts full
        self._updated: float | None = None  # clock time of the last refill
        self._hold_until = -math.inf
        self._clock = clock
        self._sleep = sleep
        self._lock = PriorityLock()

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self._rate:g}, capacity={self._capacity:g})"

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self._rate

    @property
    def capacity(self) -> float:
        """The most tokens saved up (the burst)."""
        return self._capacity

    def set_rate(self, rate: float) -> None:
        """Change the refill rate from now on (what was earned so far is kept)."""
        _check_rate("rate", rate)
        if self._updated is not None:
            self._refill(self._clock())
        self._rate = float(rate)

    def queued(self) -> int:
        """Requests waiting for a token now (the one sleeping for it included)."""
        return self._lock.queued()

    def hold(self, until: float) -> None:
        """Grant nothing before clock time `until` (the latest hold wins)."""
        self._hold_until = max(self._hold_until, until)

    def _refill(self, now: float) -> None:
        if self._updated is None:
            self._updated = now
            return
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._updated = now

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait for `cost` tokens, after everyone who asked before."""
        if not (cost >= 0 and math.isfinite(cost)):
            raise ValueError(f"cost must be a non-negative finite number, got {cost!r}")
        if cost == 0:
            return
        need = min(cost, self._capacity)
        async with self._lock:
            while True:
                now = self._clock()
                self._refill(now)
                delay = self._hold_until - now
                if self._tokens < need - _EPSILON:
                    delay = max(delay, (need - self._tokens) / self._rate)
                if delay <= 0:
                    break
                await self._sleep(delay)
            self._tokens -= cost


class AdaptiveRate:
    """A requests-per-second limit found from 429s: cut on a 429, grow slowly on success.

    `current_rate` is None (unlimited) until the first 429: with no rate given,
    pacing costs nothing until the service pushes back, and the concurrency
    limit bounds that first burst.
    """

    # Algorithm: AIMD (additive increase, multiplicative decrease) with a
    # remembered ceiling, after TCP CUBIC's W_max. A 429 from a request that
    # started after the last cut marks the `ceiling`: the pace the service
    # accepted over the last `window` seconds (successes per second; the send
    # rate if none succeeded), or the current limit if lower. The rate drops to
    # `decrease` x ceiling. 429s from requests already in flight at the cut are
    # ignored, so one burst of 429s is one cut. Each later success adds
    # `slope / rate`, so at full use the rate climbs `slope` per second: below
    # the ceiling slope = `increase` x ceiling (regaining it in
    # (1 - decrease) / increase seconds, 10 s with the defaults: a 429, and the
    # whole-client pause of its Retry-After, comes rarely); above it,
    # slope = `probe` x rate, to find a limit that was raised.

    __slots__ = (
        "_accepted",
        "_bucket",
        "_ceiling",
        "_clock",
        "_cut_at",
        "_cuts",
        "_decrease",
        "_increase",
        "_max_rate",
        "_min_rate",
        "_probe",
        "_rate",
        "_sleep",
        "_starts",
        "_window",
    )

    def __init__(
        self,
        *,
        decrease: float = 0.9,
        increase: float = 0.01,
        probe: float = 0.05,
        min_rate: float = 0.1,
        max_rate: float | None = None,
        window: float = 2.0,
        clock: Clock = loop_time,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be in (0, 1), got {decrease!r}")
        _check_rate("increase", increase)
        _check_rate("probe", probe)
        _check_rate("min_rate", min_rate)
        _check_rate("window", window)
        if max_rate is not None and max_rate < min_rate:
            raise ValueError(f"max_rate {max_rate!r} is below min_rate {min_rate!r}")
        self._decrease = decrease
        self._increase = increase
        self._probe = probe
        self._min_rate = min_rate
        self._max_rate = max_rate
        self._window = window
        self._clock = clock
        self._sleep = sleep
        self._rate: float | None = None
        self._ceiling = math.inf
        self._bucket: TokenBucket | None = None
        self._cut_at = -math.inf
        self._cuts = 0
        self._starts: deque[float] = deque(maxlen=512)
        self._accepted: deque[float] = deque(maxlen=512)

    def __repr__(self) -> str:
        return f"AdaptiveRate(current_rate={self._rate!r}, cuts={self._cuts})"

    @property
    def current_rate(self) -> float | None:
        """Requests per second allowed now; None before the first 429 (unlimited)."""
        return self._rate

    @property
    def ceiling(self) -> float | None:
        """The pace the service accepted when it last said 429 (None before any)."""
        return None if math.isinf(self._ceiling) else self._ceiling

    @property
    def cuts(self) -> int:
        """How many times a 429 cut the rate."""
        return self._cuts

    def queued(self) -> int:
        """Requests waiting for the learnt rate now (0 before the first 429)."""
        return self._bucket.queued() if self._bucket is not None else 0

    @property
    def bucket(self) -> TokenBucket | None:
        """The token bucket pacing at `current_rate` (None while unlimited)."""
        return self._bucket

    def note_start(self, now: float) -> None:
        """Record that a request started at clock time `now` (feeds the measured send rate)."""
        self._starts.append(now)

    def measured_rate(self, now: float) -> float:
        """Requests per second started over the last `window` seconds (0 when none)."""
        return self._rate_of(self._starts, now)

    def accepted_rate(self, now: float) -> float:
        """Successes per second over the last `window` seconds (0 when none)."""
        return self._rate_of(self._accepted, now)

    def _rate_of(self, times: deque[float], now: float) -> float:
        horizon = now - self._window
        while times and times[0] < horizon:
            times.popleft()
        if not times:
            return 0.0
        return len(times) / max(now - times[0], self._window / 20)

    async def acquire(self) -> None:
        """Wait for a slot at the current rate (at once while unlimited)."""
        if self._bucket is not None:
            await self._bucket.acquire()

    def on_success(self, started: float) -> None:
        """A request started at `started` succeeded: grow the rate a little."""
        self._accepted.append(self._clock())
        rate = self._rate
        if rate is None or started < self._cut_at:
            return
        below = rate < self._ceiling
        slope = self._increase * self._ceiling if below else self._probe * rate
        rate += slope / rate
        if below:
            rate = min(rate, self._ceiling)  # reach the ceiling, then probe past it
        if self._max_rate is not None:
            rate = min(rate, self._max_rate)
        self._set(rate)

    def on_throttled(self, started: float) -> bool:
        """A request started at `started` got a 429; True when that cut the rate."""
        if started < self._cut_at:
            return False  # sent before the last cut: that cut already answered it
        now = self._clock()
        ceiling = self.accepted_rate(now) or self.measured_rate(now) or 1 / self._window
        if self._rate is not None:
            ceiling = min(ceiling, self._rate)
        self._ceiling = max(ceiling, self._min_rate)
        self._set(max(self._min_rate, self._ceiling * self._decrease))
        self._cut_at = now
        self._cuts += 1
        return True

    def _set(self, rate: float) -> None:
        self._rate = rate
        if self._bucket is None:
            self._bucket = TokenBucket(rate, 1.0, clock=self._clock, sleep=self._sleep)
        else:
            self._bucket.set_rate(rate)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Requests of the budget kept back: answers race, clocks differ by a little.
_RESERVE = 2.0
# A reset this large is a moment (epoch seconds, as GitHub sends), not a delay.
_EPOCH = 1e9
# Families of rate-limit headers: (limit, remaining, reset), the first one present wins.
_HEADER_FAMILIES = (
    ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"),
    ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"),
)


def parse_reset(value: str, now_epoch: float) -> float | None:
    """Seconds until a rate-limit window resets: `12`, `1.5`, `20ms`, `6m0s`, `1h2m3s`, or
    an epoch time; None when unreadable."""
    text = value.strip().lower()
    try:
        number = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            return None
        return sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(number) or number < 0:
        return None
    return max(0.0, number - now_epoch) if number > _EPOCH else number


def _policy_window(value: str | None) -> float | None:
    """The window (`w=`, seconds) of the first policy in `RateLimit-Policy: 100;w=60`."""
    if not value:
        return None
    for param in value.split(",")[0].split(";")[1:]:
        name, _, number = param.strip().partition("=")
        if name.strip().lower() == "w":
            try:
                return float(number)
            except ValueError:
                return None
    return None


class HeaderBudget:
    """What the service's rate-limit headers say is left, as a token bucket paced before any 429.

    Reads the first family present of `x-ratelimit-limit-requests` /
    `-remaining-requests` / `-reset-requests` (a duration: `1s`, `6m0s`,
    `20ms`), `RateLimit-Limit` / `-Remaining` / `-Reset` (delta-seconds;
    `RateLimit-Policy`'s `w=` when no reset is given) and `x-ratelimit-limit`
    / `-remaining` / `-reset` (epoch seconds).

    Algorithm: token bucket seeded from each answer. `remaining` is the
    balance when the service answered, less the requests sent since the
    answered one went out (the answer could not count them); with `limit`,
    the refill rate is what the reset says: (limit - remaining) / reset,
    less 5 %; a request waits while the balance is below three (two are
    kept back: answers race each other, and clocks differ). Without a
    `limit`, the requests left are spread evenly over the time to the reset.
    Without such headers it never delays.
    """

    __slots__ = ("_at", "_limit", "_rate", "_reset_at", "_sent", "_tokens")

    def __init__(self) -> None:
        self._limit: float | None = None
        self._tokens: float | None = None  # balance at `_at`
        self._rate: float | None = None  # refill, per second
        self._at = -math.inf
        self._reset_at = -math.inf
        self._sent: deque[float] = deque(maxlen=1024)  # when requests went out

    def __repr__(self) -> str:
        return f"HeaderBudget(limit={self._limit!r}, tokens={self._tokens!r}, rate={self._rate!r})"

    @property
    def remaining(self) -> float | None:
        """Requests the budget allows at once, as last said and counted since (None: unknown)."""
        return self._tokens

    def update(
        self, headers: Mapping[str, str], now: float, now_epoch: float, sent_at: float = -math.inf
    ) -> None:
        """Read the headers of the answer to a request sent at `sent_at` (clock times)."""
        for limit_name, remaining_name, reset_name in _HEADER_FAMILIES:
            remaining_text = headers.get(remaining_name)
            if remaining_text is None:
                continue
            try:
                remaining = float(remaining_text)
                limit_text = headers.get(limit_name)
                limit = float(limit_text.split(",")[0]) if limit_text else None
            except ValueError:
                return
            reset_text = headers.get(reset_name)
            reset = parse_reset(reset_text, now_epoch) if reset_text else None
            if reset is None:
                reset = _policy_window(headers.get("ratelimit-policy"))
            if reset is None or remaining < 0 or not math.isfinite(remaining):
                return
            if limit is not None and remaining < limit and reset > 0:
                self._rate = 0.95 * (limit - remaining) / reset
            elif limit is None:
                self._rate = None
            later = sum(1 for t in self._sent if t > sent_at)
            self._limit, self._tokens, self._at = limit, remaining - later, now
            self._reset_at = now + reset
            return

    def _balance(self, now: float) -> float:
        assert self._tokens is not None
        if self._rate is None:
            return self._tokens
        balance = self._tokens + max(0.0, now - self._at) * self._rate
        return min(balance, self._limit) if self._limit is not None else balance

    def delay(self, now: float) -> float:
        """Seconds to wait before the next request may go."""
        if self._tokens is None:
            return 0.0
        balance = self._balance(now) - _RESERVE
        if balance >= 1:
            if self._rate is not None or now >= self._reset_at:
                return 0.0
            # No refill rate known: spread what is left over the time left.
            last = self._sent[-1] if self._sent else -math.inf
            return max(0.0, last + (self._reset_at - now) / balance - now)
        if self._rate is not None:
            return (1 - balance) / self._rate
        return max(0.0, self._reset_at - now)

    def spend(self, now: float) -> None:
        """A request goes out now."""
        self._sent.append(now)
        if self._tokens is None:
            return
        if self._rate is None and now >= self._reset_at:
            self._tokens = None  # the window the headers spoke of is over
            return
        self._tokens = self._balance(now) - 1
        self._at = now


@dataclass(frozen=True, slots=True)
class PacerStats:
    """A snapshot of a `Pacer`.

    `throttles`: 429s reported; `cuts`: adaptive rate cuts (a burst of 429s is
    one); `pauses`: `Retry-After` pauses started (extensions not counted);
    `paused_seconds`: total time senders were told to hold; `current_rate`:
    requests per second allowed now (None: unlimited).
    """

    throttles: int
    cuts: int
    pauses: int
    paused_seconds: float
    current_rate: float | None


class Pacer:
    """The gate every API request passes: a pause, an RPS slot, and PPM pages.

    ```python
    started = await pacer.acquire(pages=n)   # n for a submit, 0 otherwise
    ...                                      # send the request
    pacer.on_success(started)                # or, on a 429:
    pacer.on_throttled(started, exc.retry_after)
    ```

    The RPS limit is a `TokenBucket` at `rps` holding a tenth of a second of
    requests (at least one), so a sender that is a moment late does not lose
    its slot for good, else an `AdaptiveRate` when `adaptive`, else none. PPM is a
    `TokenBucket` at ppm/60 pages per second holding one second of pages. A
    `Retry-After` holds every sender until it has passed (capped at
    `max_pause`). What the service's rate-limit headers say is left
    (`HeaderBudget`) paces every sender before any 429. With no limit at
    all and no such headers, `acquire` is a clock read and two compares.
    """

    __slots__ = (
        "_adaptive",
        "_budget",
        "_budget_lock",
        "_clock",
        "_limited",
        "_max_pause",
        "_paused_seconds",
        "_paused_until",
        "_pauses",
        "_ppm",
        "_rps",
        "_sleep",
        "_throttles",
        "pause_listeners",
    )

    def __init__(
        self,
        *,
        rps: float | None = None,
        ppm: float | None = None,
        adaptive: bool = True,
        max_pause: float = DEFAULT_RETRIES.retry_after_max,
        on_pause: Callable[[float], None] | None = None,
        clock: Clock = loop_time,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._rps = (
            TokenBucket(rps, max(1.0, rps / 10), clock=clock, sleep=sleep)
            if rps is not None
            else None
        )
        self._adaptive = (
            AdaptiveRate(clock=clock, sleep=sleep) if adaptive and rps is None else None
        )
        self._ppm = (
            TokenBucket(ppm / 60, max(1.0, ppm / 60), clock=clock, sleep=sleep)
            if ppm is not None
            else None
        )
        self._limited = self._rps is not None or self._adaptive is not None or self._ppm is not None
        self._max_pause = max_pause
        self._budget = HeaderBudget()
        self._budget_lock = PriorityLock()
        self._paused_until = -math.inf
        self._throttles = 0
        self._pauses = 0
        self._paused_seconds = 0.0
        #: Each is called with the seconds of each pause started or extended (a
        #: progress display, a bulk run's counters): add and remove your own, as
        #: with httpx's `event_hooks`; `on_pause` is the first one.
        self.pause_listeners: list[Callable[[float], None]] = [] if on_pause is None else [on_pause]

    @classmethod
    def from_config(
        cls,
        rate: RateLimit = DEFAULT_RATE,
        *,
        max_pause: float = DEFAULT_RETRIES.retry_after_max,
        on_pause: Callable[[float], None] | None = None,
        clock: Clock = loop_time,
        sleep: Sleep = anyio.sleep,
    ) -> Pacer:
        """A pacer for `RateLimit`; pass `Retries.retry_after_max` as `max_pause`."""
        return cls(
            rps=rate.rps,
            ppm=rate.ppm,
            adaptive=rate.adaptive,
            max_pause=max_pause,
            on_pause=on_pause,
            clock=clock,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return (
            f"Pacer(rps={self._rps!r}, adaptive={self._adaptive!r}, ppm={self._ppm!r}, "
            f"paused_until={self._paused_until!r})"
        )

    def now(self) -> float:
        """The clock this pacer reads (the time `acquire` returns)."""
        return self._clock()

    def queued(self) -> int:
        """Requests waiting for the rate limit now: for an RPS slot (given or learnt
        from 429s), or for the budget the service's rate-limit headers leave."""
        rate = self._rps or self._adaptive
        waiting = rate.queued() if rate is not None else 0
        return waiting + self._budget_lock.queued()

    @property
    def paused_until(self) -> float:
        """Clock time before which no request starts (-inf when never paused)."""
        return self._paused_until

    @property
    def current_rate(self) -> float | None:
        """Requests per second allowed now: `rps`, the adaptive rate, or None (unlimited)."""
        if self._rps is not None:
            return self._rps.rate
        if self._adaptive is not None:
            return self._adaptive.current_rate
        return None

    @property
    def stats(self) -> PacerStats:
        """Throttles, cuts, pauses and the current rate, as of now."""
        return PacerStats(
            throttles=self._throttles,
            cuts=self._adaptive.cuts if self._adaptive is not None else 0,
            pauses=self._pauses,
            paused_seconds=self._paused_seconds,
            current_rate=self.current_rate,
        )

    async def acquire(self, *, pages: int = 0) -> float:
        """Wait for the pause, an RPS slot and `pages` PPM tokens; the start time to report back."""
        if self._limited:
            return await self._acquire_limited(pages)
        now = self._clock()
        if now < self._paused_until:
            now = await self._wait_pause(now)
        if self._budget.remaining is not None:
            now = await self._wait_budget(now)
        else:
            self._budget.spend(now)
        return now

    async def acquire_pages(self, pages: int) -> None:
        """Wait for `pages` PPM tokens only (at once without `ppm`).

        For a caller that waits out the page budget before taking a concurrency
        slot, then calls `acquire()` (pages=0) inside it.
        """
        if pages > 0 and self._ppm is not None:
            await self._ppm.acquire(pages)

    async def _acquire_limited(self, pages: int) -> float:
        # Pages first, so a request that waited long for its page budget still
        # takes its RPS slot right before it is sent; polls (pages=0) skip it.
        await self.acquire_pages(pages)
        if self._rps is not None:
            await self._rps.acquire()
        elif self._adaptive is not None:
            await self._adaptive.acquire()
        now = self._clock()
        if now < self._paused_until:  # a pause began after the slot was granted
            now = await self._wait_pause(now)
        if self._budget.remaining is not None:
            now = await self._wait_budget(now)
        else:
            self._budget.spend(now)
        if self._adaptive is not None:
            self._adaptive.note_start(now)
        return now

    async def _wait_budget(self, now: float) -> float:
        """Wait until the budget the headers told of lets one more go; one at a time."""
        async with self._budget_lock:
            now = self._clock()
            while (delay := self._budget.delay(now)) > 0:
                await self._sleep(delay)
                now = self._clock()
            self._budget.spend(now)
        return now

    def on_headers(
        self, headers: Mapping[str, str], now_epoch: float, started: float = -math.inf
    ) -> None:
        """The headers of the answer to a request started at `started` (from `acquire`):
        what they say is left of the rate limit paces senders from now on."""
        self._budget.update(headers, self._clock(), now_epoch, started)

    async def _wait_pause(self, now: float) -> float:
        while now < self._paused_until:  # a pause may be extended while we sleep
            await self._sleep(self._paused_until - now)
            now = self._clock()
        return now

    def on_success(self, started: float) -> None:
        """The request started at `started` (from `acquire`) succeeded."""
        if self._adaptive is not None:
            self._adaptive.on_success(started)

    def on_throttled(self, started: float, retry_after: float | None) -> None:
        """The request started at `started` got a 429: cut the adaptive rate, honour Retry-After.

        A `retry_after` (seconds, capped at `max_pause`) holds every sender
        until it has passed; testing mode (`set_testing`) skips the hold.
        """
        self._throttles += 1
        if self._adaptive is not None:
            self._adaptive.on_throttled(started)
        if retry_after is None or is_testing():
            return
        seconds = min(max(retry_after, 0.0), self._max_pause)
        now = self._clock()
        until = now + seconds
        if until <= self._paused_until:
            return
        if now >= self._paused_until:
            self._pauses += 1
            self._paused_seconds += seconds
        else:
            self._paused_seconds += until - self._paused_until
        self._paused_until = until
        for bucket in (self._rps, self._adaptive.bucket if self._adaptive else None):
            if bucket is not None:
                bucket.hold(until)
        for listener in tuple(self.pause_listeners):
            listener(seconds)
