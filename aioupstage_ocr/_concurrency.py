"""How many API requests may be in flight: a window found from the service, not fixed.

`AdaptiveConcurrency` is the one gate every API request passes for its slot
(`Transport` holds it); `Limits.max_concurrency` is its ceiling.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

import anyio

from . import _priority as priority
from ._priority import Turns
from ._ratelimit import Clock, loop_time

__all__ = ["AdaptiveConcurrency", "Slot"]

# Answers after a cut before the next one may come (the average has settled a little).
_SETTLE = 4
# Seconds of latency that are noise whatever the work (this process, loopback, scheduling).
_JITTER = 0.005


@dataclass(slots=True)
class Slot:
    """One request's place in the window: when it went out and how many were out then."""

    upload: bool
    started: float = 0.0
    in_flight: int = 0

    def sent(self, now: float, in_flight: int) -> None:
        """The request goes out now, with `in_flight` requests out (itself included)."""
        self.started, self.in_flight = now, in_flight


@dataclass(slots=True)
class _CutCheck:
    """A cut on a faint signal, on trial: the window before it, the smoothed ratio that made it,
    and the latency ratios answered since."""

    window: float
    ratio: float
    faint: float  # a ratio no higher than this is noise-sized
    total: float = 0.0
    answers: int = 0


class _Waiter:
    __slots__ = ("event", "granted", "level", "rank", "upload")

    def __init__(self, upload: bool, level: int) -> None:
        self.event = anyio.Event()
        self.upload = upload
        self.level = level
        self.rank = priority.rank()
        self.granted = False


class AdaptiveConcurrency:
    """At most `limit` requests in flight, `limit` following the service's latency and push-back.

    Algorithm: AIMD on the in-flight window with a delay signal after TCP
    Vegas. Each upload's round trip (sync OCR or async submit, timed from
    send to answer) is compared with the lowest seen for its kind and size
    (`key`: the no-load latency, drifting up 0.2 % a sample so a service that
    became slower for good is re-learnt), and the ratio smoothed (EMA, weight
    `smoothing`): a hiccup of the network or of this process moves it a
    little, a queue at the service, which lifts every answer, all the way.

    - Slow start: until the first signal the window grows by one per answered
      request while it is full (it doubles every round trip), from `initial`.
    - Queueing: when the smoothed ratio passes 1 + `tolerance` (plus 5 ms of
      latency, noise whatever the work), at least 4 answers after the last
      cut, the service is queueing; the window drops to what it served
      without a queue (Little's law: window x no-load / measured latency).
    - Push-back: a 429 or 503 multiplies the window by `backoff`.
    - Probing: below the window of the last cut it grows by 1/window per
      answer (one per round trip); at that window it first holds `hold`
      round trips, and each probe that found the same ceiling again doubles
      that hold (up to `max_hold`), so a service at capacity sees a request
      queued past it rarely, and one whose capacity rose is found again.

    Answers from requests sent before the last cut never cut or grow it (one
    burst is one cut); the window never goes below `minimum` nor above
    `ceiling`, and grows only when it was full (a client with little to send
    learns nothing). Once anything but a sync upload has been asked for (an
    async submit, a status fetch), uploads take at most all but one of the
    slots, so status fetches never queue behind a burst of uploads; until
    then (only sync work) they take every slot. Waiters are served first come, first served within
    their class (a status fetch may pass uploads held by that rule); between
    classes, `_priority`'s rule: a request handler's waiters first, a bulk
    run's 1 grant in 4 while both wait; within a class, `priority.later()`
    requests (a bulk run's sync uploads) behind the others.
    """

    __slots__ = (
        "_backoff",
        "_base",
        "_ceiling",
        "_check",
        "_clock",
        "_cut_at",
        "_cuts",
        "_found",
        "_good",
        "_hold",
        "_in_flight",
        "_initial_hold",
        "_max_hold",
        "_minimum",
        "_polls",
        "_ratio",
        "_recent",
        "_seen",
        "_slow_start",
        "_smoothing",
        "_tolerance",
        "_turns",
        "_undone",
        "_uploads",
        "_waiters",
        "_window",
    )

    def __init__(
        self,
        ceiling: int,
        *,
        initial: int = 16,
        minimum: int = 1,
        tolerance: float = 0.05,
        smoothing: float = 0.1,
        backoff: float = 0.7,
        hold: int = 8,
        max_hold: int = 64,
        clock: Clock = loop_time,
    ) -> None:
        if ceiling < 1 or minimum < 1 or minimum > ceiling:
            raise ValueError(f"need 1 <= minimum <= ceiling, got {minimum!r}, {ceiling!r}")
        if not 0 < backoff < 1:
            raise ValueError(f"backoff must be in (0, 1), got {backoff!r}")
        self._ceiling = ceiling
        self._minimum = minimum
        self._window = float(max(minimum, min(initial, ceiling)))
        self._tolerance = tolerance
        self._smoothing = smoothing
        self._backoff = backoff
        self._initial_hold = hold
        self._hold = hold
        self._max_hold = max_hold
        self._clock = clock
        self._base: dict[Hashable, float] = {}
        self._ratio = 1.0  # latency / no-load latency, smoothed
        self._seen = 0  # answers since the last cut
        self._check: _CutCheck | None = None  # a cut on a faint signal, on trial
        self._recent: deque[float] = deque(maxlen=_SETTLE)  # the last answers' latency ratios
        self._undone = 0  # cuts undone: the latency did not fall
        self._slow_start = True
        self._found = math.inf  # the window the last cut set
        self._good = 0  # answers counted since the window reached `_found`
        self._cut_at = -math.inf
        self._cuts = 0
        self._in_flight = 0
        self._uploads = 0
        self._polls = False  # a status fetch was asked for: uploads leave it a slot
        self._waiters: tuple[deque[_Waiter], deque[_Waiter]] = (deque(), deque())
        self._turns = Turns()

    def __repr__(self) -> str:
        return (
            f"AdaptiveConcurrency(limit={self.limit}, in_flight={self._in_flight}, "
            f"ceiling={self._ceiling}, cuts={self._cuts})"
        )

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return max(self._minimum, min(self._ceiling, int(self._window)))

    @property
    def ceiling(self) -> int:
        """The most ever allowed (`Limits.max_concurrency`)."""
        return self._ceiling

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return self._in_flight

    @property
    def cuts(self) -> int:
        """How many times queueing or push-back shrank the window."""
        return self._cuts

    # ------------------------------------------------------------------ slots

    def _room(self, upload: bool) -> bool:
        limit = self.limit
        if self._in_flight >= limit:
            return False
        if not upload or not self._polls:
            return True
        return self._uploads < max(1, limit - 1)

    def _take(self, upload: bool) -> None:
        self._in_flight += 1
        if upload:
            self._uploads += 1

    async def acquire(self, *, upload: bool = False, polls_follow: bool = True) -> Slot:
        """Wait for a slot (an upload: one that leaves a slot to status fetches).

        `polls_follow=False`: a sync upload, after which no status fetch comes;
        until any other request is asked for, uploads may take every slot.
        """
        # Every release wakes each waiter there is room for, so a waiter left
        # has none: room now is room no one ahead of us could take.
        if polls_follow:
            self._polls = True
        if self._room(upload):
            self._take(upload)
            return Slot(upload)
        waiter = _Waiter(upload, priority.current())
        queue = self._waiters[waiter.level]
        priority.place(queue, waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self._give_back(upload)
            else:
                queue.remove(waiter)
            raise
        return Slot(upload)

    def _give_back(self, upload: bool) -> None:
        self._in_flight -= 1
        if upload:
            self._uploads -= 1
        self._wake()

    def _wake(self) -> None:
        while self._in_flight < self.limit:
            handlers, bulk = (self._first_with_room(queue) for queue in self._waiters)
            level = self._turns.pick(handlers is not None, bulk is not None)
            if level is None:
                return
            waiter = handlers if level == priority.HANDLER else bulk
            assert waiter is not None
            self._waiters[level].remove(waiter)
            waiter.granted = True
            self._take(waiter.upload)
            waiter.event.set()

    def _first_with_room(self, queue: deque[_Waiter]) -> _Waiter | None:
        for waiter in queue:
            if self._room(waiter.upload):
                return waiter
            if not waiter.upload:
                return None  # a status fetch without room: no one after it has any
        return None

    def release(
        self,
        slot: Slot,
        *,
        latency: float | None = None,
        key: Hashable = None,
        pushed_back: bool = False,
    ) -> None:
        """Free `slot`; its `latency` (an upload's, seconds) or `pushed_back` (429/503) teach."""
        if pushed_back:
            self._on_pushback(slot)
        elif latency is not None:
            self._on_latency(slot, latency, key)
        self._give_back(slot.upload)

    # ------------------------------------------------------------------ the window

    def _on_pushback(self, slot: Slot) -> None:
        if slot.started < self._cut_at:
            return
        self._cut(self._window * self._backoff)

    def _on_latency(self, slot: Slot, latency: float, key: Hashable) -> None:
        latency = max(latency, 1e-6)
        base = self._base.get(key)
        base = latency if base is None else min(latency, base * 1.002)
        self._base[key] = base
        if slot.started < self._cut_at:
            return  # sent before the last cut: that cut already answered it
        ratio = latency / base
        self._ratio += self._smoothing * (ratio - self._ratio)
        self._recent.append(ratio)
        self._seen += 1
        if self._check is not None:
            self._check_cut(ratio)
            return
        threshold = 1 + self._tolerance + _JITTER / base
        if self._ratio > threshold and self._seen >= _SETTLE:
            before, signal = self._window, self._ratio
            faint = 1 + 2 * (threshold - 1)
            recent = sum(self._recent) / len(self._recent)
            self._cut(self._window / self._ratio)
            if recent < faint and self._window < before:
                self._check = _CutCheck(before, signal, faint)  # see that it helped
            return
        if max(slot.in_flight, self._in_flight) < self.limit - 1:
            return  # the window was not full: nothing learnt about more
        self._grow()

    def _check_cut(self, ratio: float) -> None:
        """After a cut on a faint delay signal: undo it if the latency did not come down.

        A queue of our own shrinks with the window: latency falls by about
        the share the window was cut. Latency that stays where it was is
        another cost (this process, a shared host, the network), not a queue:
        the window goes back and that latency becomes the no-load one.
        """
        check = self._check
        assert check is not None
        check.total += ratio
        check.answers += 1
        if check.answers < max(_SETTLE, int(self._window)):  # a round trip at the new window
            return
        self._check = None
        mean = check.total / check.answers
        expected_fall = 1 - self._window / check.window
        # Undone only while that latency is itself noise-sized: a backlog still
        # draining after a burst is not taken for the new no-load latency.
        if check.ratio * (1 - expected_fall / 2) < mean <= check.faint:
            self._window = check.window
            self._found = math.inf
            self._ratio = 1.0
            self._hold = self._initial_hold
            for key in self._base:
                self._base[key] *= mean
            self._undone += 1

    def _grow(self) -> None:
        if self._slow_start:
            self._window = min(float(self._ceiling), self._window + 1)
            return
        if self._window + 1 / self._window > self._found:
            # At the window of the last cut: hold `hold` round trips before probing past it.
            self._good += 1
            if self._good < self._hold * self._window:
                return
        self._window = min(float(self._ceiling), self._window + 1 / self._window)

    def _cut(self, window: float) -> None:
        window = max(float(self._minimum), window)
        if window <= self._found + 1:
            self._hold = min(self._max_hold, self._hold * 2)  # the same ceiling again
        else:
            self._hold = self._initial_hold
        self._window = self._found = window
        self._slow_start = False
        self._check = None
        self._good = self._seen = 0
        self._ratio = 1.0
        self._cut_at = self._clock()
        self._cuts += 1
