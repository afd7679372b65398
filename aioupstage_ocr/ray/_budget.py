"""One pace for the whole cluster: a named actor holds the account's budget.

Without it, N actors pacing alone send N times the rate and get N times the
429s. With it, every actor's client passes a `ClusterPacer` (a `Pacer` the
transport consults like its own), which leases send times from one `Budget`:

- `Budget` (a plain class; the Ray actor is `ray.remote(Budget)`): the RPS
  limit, or without one the adaptive rate found from 429s (`AdaptiveRate`, fed
  by every actor's successes and 429s); the PPM budget; and the pause after a
  429 with `Retry-After`, shared by every sender of the cluster.
- Leases come in blocks: an actor's concurrent waiters are served by one
  round trip (`lease`), which also carries the successes and 429s seen since
  the last one. A lease is a list of send times, never further ahead than
  `horizon` seconds, so an actor that dies holding one wastes at most that
  much of the budget: its unused times simply pass (the lease expires).
- `budget_name`: the actor's name, from a hash of the base URL, the key and
  the model (never the key itself); `cluster_budget` gets or creates it.
"""

from __future__ import annotations

import contextvars
import hashlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from .._config import DEFAULT_RATE, DEFAULT_RETRIES, RateLimit
from .._ratelimit import AdaptiveRate, Clock, Pacer, PacerStats, Sleep, loop_time
from .._retry import is_testing

__all__ = [
    "NAMESPACE",
    "Budget",
    "ClusterPacer",
    "Grant",
    "LeaseRequest",
    "before_send",
    "budget_name",
    "cluster_budget",
]

#: The Ray namespace of budget actors: jobs sharing a key share its budget.
NAMESPACE = "aioupstage_ocr"
#: Seconds ahead a lease may reach (what a dead holder can waste, at most).
DEFAULT_HORIZON = 0.5
# A holder reports at most this many successes per lease (the adaptive rate
# looks at the last two seconds only).
_MAX_REPORTS = 512


def budget_name(api_key: str | None, model: str, base_url: str) -> str:
    """The budget actor's name: a hash of the base URL, key and model, never the key."""
    digest = hashlib.sha256(f"{base_url}\0{api_key or ''}\0{model}".encode()).hexdigest()
    return f"aioupstage-ocr-budget-{digest[:20]}"


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    """What a holder asks for, and what it saw since its last lease.

    `successes`: seconds ago each request that succeeded had started;
    `throttles`: (seconds ago it started, seconds of Retry-After still to run
    or None) per 429.
    """

    holder: str
    requests: int
    pages: int = 0
    successes: tuple[float, ...] = ()
    throttles: tuple[tuple[float, float | None], ...] = ()


@dataclass(frozen=True, slots=True)
class Grant:
    """Send times as seconds from now: `slots` (one per request granted, maybe fewer
    than asked), `pages_in` (when the pages asked for are there; None: no PPM limit),
    `pause` (seconds of a shared pause left), `rate` (requests/s now; None: unlimited),
    `retry_in` (when none was granted: ask again after this long)."""

    slots: tuple[float, ...]
    pages_in: float | None = None
    pause: float = 0.0
    rate: float | None = None
    retry_in: float = 0.0


@dataclass(slots=True)
class _GCRA:
    """Send times at `rate` per second with a burst of `burst` (GCRA, virtual scheduling)."""

    # Algorithm: GCRA. `tat` is the theoretical arrival time of the next unit;
    # n units are scheduled at tat' = max(tat, now) + n / rate and may go at
    # tat' - burst / rate (never before now or the end of a pause). Units that
    # cost more than the burst wait for it, so the long-run rate holds.
    rate: float
    burst: float
    tat: float = -math.inf

    def reserve(self, units: float, now: float, not_before: float) -> float:
        """Reserve `units`; the time they may go."""
        start = max(self.tat, now, not_before)
        self.tat = start + units / self.rate
        return max(now, not_before, self.tat - self.burst / self.rate)

    def next_time(self, now: float, not_before: float) -> float:
        """When one unit reserved now would go (without reserving it)."""
        start = max(self.tat, now, not_before)
        return max(now, not_before, start + 1 / self.rate - self.burst / self.rate)


@dataclass(slots=True)
class _Holder:
    leases: int = 0
    granted: int = 0
    last_seen: float = 0.0


class Budget:
    """The account's budget for every actor of a cluster (see the module docstring).

    `rate` is the client's `RateLimit` (rps, ppm, adaptive); `max_pause` caps a
    `Retry-After`; `horizon` bounds how far ahead a lease reaches.
    """

    def __init__(
        self,
        rate: RateLimit = DEFAULT_RATE,
        *,
        max_pause: float = DEFAULT_RETRIES.retry_after_max,
        horizon: float = DEFAULT_HORIZON,
        clock: Clock = time.monotonic,
    ) -> None:
        self._clock = clock
        self._horizon = horizon
        self._max_pause = max_pause
        self._rps = _GCRA(rate.rps, max(1.0, rate.rps / 10)) if rate.rps is not None else None
        self._adaptive = AdaptiveRate(clock=clock) if rate.adaptive and rate.rps is None else None
        self._adaptive_gcra: _GCRA | None = None
        self._ppm = _GCRA(rate.ppm / 60, max(1.0, rate.ppm / 60)) if rate.ppm is not None else None
        self._paused_until = -math.inf
        self._holders: dict[str, _Holder] = {}
        self._actors: dict[str, Any] = {}
        self._throttles = 0
        self._pauses = 0
        self._paused_seconds = 0.0

    def _requests_gcra(self) -> _GCRA | None:
        if self._rps is not None:
            return self._rps
        if self._adaptive is None or self._adaptive.current_rate is None:
            return None
        current = self._adaptive.current_rate
        if self._adaptive_gcra is None:
            self._adaptive_gcra = _GCRA(current, 1.0)
        self._adaptive_gcra.rate = current
        return self._adaptive_gcra

    def lease(self, request: LeaseRequest) -> Grant:
        """Take in what the holder saw, then grant send times for what it asks."""
        now = self._clock()
        holder = self._holders.setdefault(request.holder, _Holder())
        holder.leases += 1
        holder.last_seen = now
        self._report(request, now)
        pages_in: float | None = None
        if request.pages > 0 and self._ppm is not None:
            pages_in = self._ppm.reserve(request.pages, now, self._paused_until) - now
        slots: list[float] = []
        retry_in = 0.0
        gcra = self._requests_gcra()
        for _ in range(request.requests):
            if gcra is None:
                at = max(now, self._paused_until)
            else:
                upcoming = gcra.next_time(now, self._paused_until)
                if upcoming - now > self._horizon and slots:
                    break
                if upcoming - now > self._horizon:
                    retry_in = upcoming - now - self._horizon
                    break
                at = gcra.reserve(1, now, self._paused_until)
            if self._adaptive is not None:
                self._adaptive.note_start(at)
            slots.append(at - now)
        holder.granted += len(slots)
        return Grant(
            slots=tuple(slots),
            pages_in=pages_in,
            pause=max(0.0, self._paused_until - now),
            rate=self.current_rate,
            retry_in=retry_in,
        )

    def join(self, holder: str, actor: Any) -> None:
        """Record the actor (its handle) that leases as `holder`; see `actors`."""
        self._actors[holder] = actor

    def actors(self) -> dict[str, Any]:
        """The handles of the actors that joined, by holder: who paces with this budget.

        An operator (or a test) can look at them or stop one (`ray.kill`); a
        holder whose actor restarted joins again under a new name.
        """
        return dict(self._actors)

    def _report(self, request: LeaseRequest, now: float) -> None:
        for ago in request.successes:
            if self._adaptive is not None:
                self._adaptive.on_success(now - ago)
        for ago, retry_after in request.throttles:
            self._throttles += 1
            if self._adaptive is not None:
                self._adaptive.on_throttled(now - ago)
            if retry_after is None:
                continue
            until = now + min(max(retry_after, 0.0), self._max_pause)
            if until > self._paused_until:
                if now >= self._paused_until:
                    self._pauses += 1
                    self._paused_seconds += until - now
                else:
                    self._paused_seconds += until - self._paused_until
                self._paused_until = until

    @property
    def current_rate(self) -> float | None:
        """Requests per second granted now (None: unlimited)."""
        if self._rps is not None:
            return self._rps.rate
        return self._adaptive.current_rate if self._adaptive is not None else None

    def stats(self) -> dict[str, Any]:
        """Throttles reported, pauses, the rate, and per holder: leases and slots granted."""
        return {
            "throttles": self._throttles,
            "pauses": self._pauses,
            "paused_seconds": self._paused_seconds,
            "cuts": self._adaptive.cuts if self._adaptive is not None else 0,
            "current_rate": self.current_rate,
            "holders": {
                name: {"leases": h.leases, "granted": h.granted}
                for name, h in self._holders.items()
            },
        }


#: Awaited by `ClusterPacer.acquire` once, right before the next request of this
#: task leaves (after its pace): how the ledger records a send at the last moment.
_BEFORE_SEND: contextvars.ContextVar[Callable[[], Awaitable[None]] | None] = contextvars.ContextVar(
    "aioupstage_ocr_before_send", default=None
)


def before_send(hook: Callable[[], Awaitable[None]]) -> None:
    """Have `hook` awaited right before this task's next API request leaves.

    Set it from a coroutine awaited in the sending task (as `ocr_many`'s
    `before_submit` is); it runs once, then is cleared.
    """
    _BEFORE_SEND.set(hook)


#: How a holder reaches its budget: an actor's `lease.remote`, or a local call.
LeaseCall = Callable[[LeaseRequest], Awaitable[Grant]]


@dataclass(slots=True, eq=False)
class _Want:
    requests: int
    pages: int
    at: float | None = None  # local clock time it may go, once granted


@dataclass(slots=True)
class _Reports:
    successes: deque[float] = field(default_factory=lambda: deque(maxlen=_MAX_REPORTS))
    # (started, clock time the pause it asked for ends, or None)
    throttles: list[tuple[float, float | None]] = field(default_factory=list)


class ClusterPacer(Pacer):
    """A `Pacer` whose budget is a `Budget` shared by the cluster, reached through `lease`.

    Concurrent waiters of one client share a round trip: the first becomes the
    leader and asks for what every waiter queued behind it needs; the others
    wait for that answer. A 429's `Retry-After` pauses this client's senders at
    once and every other holder's at their next lease.
    """

    __slots__ = (
        "_cluster_rate",
        "_holder",
        "_leader",
        "_lease",
        "_ppm_free",
        "_queue",
        "_reports",
        "_round",
    )

    def __init__(
        self,
        lease: LeaseCall,
        *,
        holder: str,
        max_pause: float = DEFAULT_RETRIES.retry_after_max,
        clock: Clock = loop_time,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        super().__init__(adaptive=False, max_pause=max_pause, clock=clock, sleep=sleep)
        self._lease = lease
        self._holder = holder
        self._queue: deque[_Want] = deque()
        self._leader: _Want | None = None
        self._round: anyio.Event | None = None
        self._reports = _Reports()
        self._ppm_free: bool | None = None  # learnt from the first page grant
        self._cluster_rate: float | None = None

    def __repr__(self) -> str:
        return f"ClusterPacer(holder={self._holder!r}, rate={self._cluster_rate!r})"

    @property
    def current_rate(self) -> float | None:
        """The cluster's rate as of the last lease (None: unlimited)."""
        return self._cluster_rate

    @property
    def stats(self) -> PacerStats:
        return PacerStats(
            throttles=self._throttles,
            cuts=0,
            pauses=self._pauses,
            paused_seconds=self._paused_seconds,
            current_rate=self._cluster_rate,
        )

    async def acquire(self, *, pages: int = 0) -> float:
        await self.acquire_pages(pages)
        at = await self._take(1, 0)
        now = self._clock()
        while now < at or now < self._paused_until:
            await self._sleep(max(at, self._paused_until) - now)
            now = self._clock()
        hook = _BEFORE_SEND.get()
        if hook is not None:
            _BEFORE_SEND.set(None)
            await hook()
        return now

    async def acquire_pages(self, pages: int) -> None:
        if pages <= 0 or self._ppm_free:
            return
        at = await self._take(0, pages)
        now = self._clock()
        if now < at:
            await self._sleep(at - now)

    async def _take(self, requests: int, pages: int) -> float:
        want = _Want(requests, pages)
        self._queue.append(want)
        try:
            while want.at is None:
                if self._leader is None:
                    self._leader = want
                    try:
                        await self._lead(want)
                    finally:
                        self._leader = None
                        self._end_round()
                else:
                    if self._round is None:
                        self._round = anyio.Event()
                    await self._round.wait()
        finally:
            if want.at is None:
                self._queue.remove(want)
        return want.at

    def _end_round(self) -> None:
        if self._round is not None:
            self._round.set()
            self._round = None

    async def _lead(self, mine: _Want) -> None:
        """Lease for everyone queued until `mine` is granted."""
        while mine.at is None:
            wants = list(self._queue)
            request = LeaseRequest(
                holder=self._holder,
                requests=sum(w.requests for w in wants),
                pages=sum(w.pages for w in wants),
                **self._take_reports(),
            )
            grant = await self._lease(request)
            now = self._clock()
            self._apply(request, grant, now)
            slots = iter(grant.slots)
            for want in wants:
                if want.requests:
                    slot = next(slots, None)
                    if slot is None:
                        continue
                    want.at = now + slot
                elif want.pages:
                    want.at = now + (grant.pages_in or 0.0)
                self._queue.remove(want)
            self._end_round()  # the others granted in this round go now
            if mine.at is None and grant.retry_in > 0:
                await self._sleep(grant.retry_in)

    def _take_reports(self) -> dict[str, Any]:
        now = self._clock()
        successes = tuple(now - started for started in self._reports.successes)
        throttles = tuple(
            (now - started, None if until is None else max(0.0, until - now))
            for started, until in self._reports.throttles
        )
        self._reports = _Reports()
        return {"successes": successes, "throttles": throttles}

    def _apply(self, request: LeaseRequest, grant: Grant, now: float) -> None:
        self._cluster_rate = grant.rate
        if request.pages > 0:
            self._ppm_free = grant.pages_in is None  # no PPM limit: never ask for pages again
        if grant.pause > 0:
            self._hold(now + grant.pause, grant.pause)

    def _hold(self, until: float, seconds: float) -> None:
        if until <= self._paused_until:
            return
        if self._clock() >= self._paused_until:
            self._pauses += 1
            self._paused_seconds += seconds
        else:
            self._paused_seconds += until - self._paused_until
        self._paused_until = until
        for listener in tuple(self.pause_listeners):
            listener(seconds)

    def on_success(self, started: float) -> None:
        self._reports.successes.append(started)

    def on_throttled(self, started: float, retry_after: float | None) -> None:
        self._throttles += 1
        if retry_after is None or is_testing():
            self._reports.throttles.append((started, None))
            return
        seconds = min(max(retry_after, 0.0), self._max_pause)
        until = self._clock() + seconds
        self._reports.throttles.append((started, until))
        self._hold(until, seconds)


def cluster_budget(
    *,
    api_key: str | None,
    model: str,
    base_url: str,
    rate: RateLimit = DEFAULT_RATE,
    max_pause: float = DEFAULT_RETRIES.retry_after_max,
    detached: bool = False,
) -> Any:
    """The budget actor for this key and model: got if it exists, else created.

    Created from the driver (as `ocr_dataset` does) it lives as long as the job;
    `detached=True` makes it outlive the job (for a stage used on its own, or
    jobs that share a key). It restarts if it dies, with a fresh budget.
    """
    import ray  # noqa: PLC0415 - the [ray] extra

    options: dict[str, Any] = {
        "name": budget_name(api_key, model, base_url),
        "namespace": NAMESPACE,
        "get_if_exists": True,
        "max_restarts": -1,
        "num_cpus": 0,
    }
    if detached:
        options["lifetime"] = "detached"
    actor = ray.remote(Budget).options(**options)
    return actor.remote(rate, max_pause=max_pause)
