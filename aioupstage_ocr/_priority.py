"""Who goes first when requests wait: a request handler's call before a bulk run's.

Two classes, `HANDLER` and `BULK`. The class of a request is the one of the
task that makes it (a context variable): `ocr()`, `submit()`, `wait()` and
`get_request()` run as `HANDLER` unless called from inside a bulk run; a bulk
run (`ocr_many`) sets `BULK` for everything it starts, unless it was lifted
with `ocr_many(..., priority="handler")`.

The rule, where requests wait (a concurrency slot, the pacer's tokens): while
both classes wait, 3 grants in 4 go to the handlers' waiters and 1 in 4 to
bulk's, each class first come, first served, so handler calls pass the
queue of a bulk run and the bulk run never stops: it keeps at least a quarter
of what frees up, and all of it while no handler waits.

Within a class, a request made under `later()` (a bulk run's sync upload)
waits behind the others (an async submit, a status fetch, a download): long
work first, where it waits too, so a queue of small uploads at the pacer does
not hold back the submit that starts the service's batches. A later request
is passed at most by the others that arrive while it waits: a run's async
documents and its polls, both bounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Literal, Protocol, TypeVar

import anyio

__all__ = [
    "BULK",
    "HANDLER",
    "PriorityLock",
    "PriorityName",
    "Turns",
    "current",
    "later",
    "level_of",
    "place",
    "rank",
    "running_as",
]

#: The classes, lower first.
HANDLER = 0
BULK = 1
#: While both wait, one grant in this many goes to bulk.
BULK_SHARE = 4

PriorityName = Literal["handler", "bulk"]

_current: ContextVar[int] = ContextVar("aioupstage_ocr_priority", default=HANDLER)
#: Within a class: 0 first, 1 (`later()`) after.
_rank: ContextVar[int] = ContextVar("aioupstage_ocr_rank", default=0)


def current() -> int:
    """The class of requests the running task makes."""
    return _current.get()


def level_of(name: PriorityName) -> int:
    """`"handler"` or `"bulk"` as a class."""
    if name == "handler":
        return HANDLER
    if name == "bulk":
        return BULK
    raise ValueError(f"priority must be 'handler' or 'bulk', got {name!r}")


@contextmanager
def running_as(level: int) -> Iterator[None]:
    """Requests made in this block (and in tasks started from it) are of class `level`."""
    token = _current.set(level)
    try:
        yield
    finally:
        _current.reset(token)


def rank() -> int:
    """Where requests of the running task wait within their class: 0 first, 1 later."""
    return _rank.get()


@contextmanager
def later() -> Iterator[None]:
    """Requests made in this block wait behind the others of their class (see above)."""
    token = _rank.set(1)
    try:
        yield
    finally:
        _rank.reset(token)


class _Ranked(Protocol):
    @property
    def rank(self) -> int: ...


_R = TypeVar("_R", bound=_Ranked)


def place(queue: deque[_R], item: _R) -> None:
    """Append `item` to `queue` behind every waiter of its rank or lower, before higher ones."""
    at = len(queue)
    while at > 0 and queue[at - 1].rank > item.rank:
        at -= 1
    queue.insert(at, item)


class Turns:
    """Which class the next grant goes to, given who waits (the 3-in-4 rule)."""

    __slots__ = ("_streak",)

    def __init__(self) -> None:
        self._streak = 0  # handler grants in a row while bulk waited

    def pick(self, handlers: bool, bulk: bool) -> int | None:
        """The class to grant, or None when no one waits."""
        if handlers and bulk:
            if self._streak >= BULK_SHARE - 1:
                self._streak = 0
                return BULK
            self._streak += 1
            return HANDLER
        self._streak = 0
        if handlers:
            return HANDLER
        return BULK if bulk else None


class _Entry:
    __slots__ = ("event", "granted", "rank")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False
        self.rank = rank()


class PriorityLock:
    """A lock whose waiters are served by `Turns`: handlers first, bulk its share.

    Taking a free lock nobody waits for does not yield to the loop.
    """

    __slots__ = ("_held", "_queues", "_turns")

    def __init__(self) -> None:
        self._held = False
        self._queues: tuple[deque[_Entry], deque[_Entry]] = (deque(), deque())
        self._turns = Turns()

    def waiting(self) -> int:
        """Tasks waiting for the lock."""
        return len(self._queues[HANDLER]) + len(self._queues[BULK])

    def queued(self) -> int:
        """Tasks holding or waiting for the lock."""
        return self.waiting() + int(self._held)

    async def __aenter__(self) -> None:
        if not self._held and not self.waiting():
            self._held = True
            return
        entry = _Entry()
        queue = self._queues[current()]
        place(queue, entry)
        try:
            await entry.event.wait()
        except BaseException:
            if entry.granted:
                self._pass_on()  # granted as it was cancelled: to the next one
            else:
                queue.remove(entry)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pass_on()

    def _pass_on(self) -> None:
        handlers, bulk = self._queues
        level = self._turns.pick(bool(handlers), bool(bulk))
        if level is None:
            self._held = False
            return
        entry = self._queues[level].popleft()
        entry.granted = True  # the lock stays held, now by it
        entry.event.set()
