"""Memory-stream hand-offs that wait only when they must.

anyio's `send()` and `receive()` are checkpoints: each yields a turn of the
event loop (an `epoll` call and a wake-up) even when the item could pass at
once. A bulk run passes each document through a stream three times (sent
and received on its way to preflight, received by the loop's iterator as a
result), so it uses these instead: the `_nowait` form
first, the waiting one only when the stream is full or empty. As with
`asyncio.Queue`, a hand-off that needs no wait does not yield; the pipeline
still yields wherever it sends or waits for a request.
"""

from __future__ import annotations

from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["receive", "send"]

_T = TypeVar("_T")


async def receive(stream: MemoryObjectReceiveStream[_T]) -> _T:
    """The next item; raises `anyio.EndOfStream` at the end, as `stream.receive()` does."""
    try:
        return stream.receive_nowait()
    except anyio.WouldBlock:
        return await stream.receive()


async def send(stream: MemoryObjectSendStream[_T], item: _T) -> None:
    """Hand `item` over, waiting for room only when the stream is full."""
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)
