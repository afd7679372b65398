"""Prepared documents waiting for a sender: the longest work goes first, none starves."""

from __future__ import annotations

import heapq
from collections import deque
from typing import Generic, TypeVar

import anyio

from .._preflight import PreparedDocument

__all__ = ["ReadyQueue"]

_T = TypeVar("_T")


class ReadyQueue(Generic[_T]):
    """Prepared documents, taken longest processing time first.

    Algorithm: LPT (longest processing time first) with a bound on
    overtaking. Documents bound for the async endpoint come first (the
    service starts their batches early while small documents fill the rest
    of the budget), then the most pages first, then the order they came in.
    The oldest document waiting is overtaken by at most `patience` others:
    then it goes next. So a document with k documents ahead of it in
    arrival order is sent within k x (`patience` + 1) sends, whatever comes
    after it.

    `put` never waits (the admission window bounds what is here); `get`
    waits for a document, and returns None once every producer said `done`
    and nothing is left.
    """

    __slots__ = (
        "_arrivals",
        "_changed",
        "_heap",
        "_overtaken",
        "_patience",
        "_producers",
        "_removed",
        "_seq",
    )

    def __init__(self, producers: int, patience: int) -> None:
        self._producers = producers
        self._patience = patience
        self._heap: list[tuple[bool, int, int, _T]] = []  # (not async, -pages, seq, item)
        self._arrivals: deque[int] = deque()  # seqs in arrival order (some already taken)
        self._removed: set[int] = set()  # seqs taken out of arrival order
        self._overtaken = 0  # documents taken while the oldest one waited
        self._seq = 0
        self._changed: anyio.Event | None = None  # made when a taker waits

    def __len__(self) -> int:
        return len(self._heap)

    def put(self, item: _T, prepared: PreparedDocument) -> None:
        """Add a prepared document (`item` is what `get` hands out)."""
        seq = self._seq
        self._seq += 1
        heapq.heappush(self._heap, (prepared.route != "async", -(prepared.pages or 1), seq, item))
        self._arrivals.append(seq)
        self._wake()

    def done(self) -> None:
        """A producer has no more to put."""
        self._producers -= 1
        if self._producers <= 0:
            self._wake()

    async def get(self) -> _T | None:
        """The next document to send; None when all are sent and no more will come."""
        while not self._heap:
            if self._producers <= 0:
                return None
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
        return self._next()

    def _next(self) -> _T:
        arrivals = self._arrivals
        while arrivals[0] in self._removed:
            self._removed.discard(arrivals.popleft())
        oldest = arrivals[0]
        if self._overtaken >= self._patience:
            index = next(i for i, entry in enumerate(self._heap) if entry[2] == oldest)
            entry = self._heap[index]
            self._heap[index] = self._heap[-1]
            self._heap.pop()
            heapq.heapify(self._heap)
        else:
            entry = heapq.heappop(self._heap)
        seq = entry[2]
        if seq == oldest:
            arrivals.popleft()
            self._overtaken = 0
        else:
            self._removed.add(seq)
            self._overtaken += 1
        return entry[3]

    def _wake(self) -> None:
        if self._changed is not None:  # no event to set while no one waits
            self._changed.set()
            self._changed = None
