"""Reading a run's input lazily, without blocking the event loop."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator
from collections.abc import Sequence as SequenceABC
from typing import TypeVar

import anyio

__all__ = ["feed", "pull"]

_T = TypeVar("_T")

# A plain iterable is read in a worker thread, up to this many items, or for
# this long, per trip (a directory walk or stdin never blocks the event loop).
_PULL_ITEMS = 64
_PULL_SECONDS = 0.05


def pull(iterator: Iterator[_T], limit: int, seconds: float) -> tuple[list[_T], bool]:
    """Up to `limit` items, or what came in `seconds`; True when the iterator is done."""
    items: list[_T] = []
    deadline = time.monotonic() + seconds
    for item in iterator:
        items.append(item)
        if len(items) >= limit or time.monotonic() >= deadline:
            return items, False
    return items, True


async def feed(
    documents: Iterable[_T] | AsyncIterable[_T], admit: Callable[[_T], Awaitable[None]]
) -> None:
    """`admit` each input in turn: lists and tuples in place, async iterables as they
    come, other iterables a few items per trip to a worker thread."""
    if isinstance(documents, AsyncIterable):
        async for document in documents:
            await admit(document)
    elif isinstance(documents, SequenceABC):
        for document in documents:
            await admit(document)
    else:
        iterator = iter(documents)
        done = False
        while not done:
            items, done = await anyio.to_thread.run_sync(
                pull, iterator, _PULL_ITEMS, _PULL_SECONDS, abandon_on_cancel=True
            )
            for document in items:
                await admit(document)
