"""The loop's side of a run: an iterator over finished items that ends the run when it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from ._streams import receive
from ._types import BulkItem

__all__ = ["Items"]


class Items(AsyncIterator[BulkItem]):
    """Reads finished items; the end, an error or a drop of the iterator ends the run.

    A plain object rather than an async generator: when the loop leaves
    (`break`, an exception) and drops it, `__del__` stops the pipeline at once
    (`abandon`), with no finalizer task left to run; the end of the items and
    a cancellation wait for the end (`close`), then raise the run's `error()`.
    Each item handed out is told to `taken`.
    """

    __slots__ = ("_abandon", "_close", "_done", "_error", "_receive", "_taken")

    def __init__(
        self,
        receive: MemoryObjectReceiveStream[BulkItem],
        *,
        taken: Callable[[BulkItem], None],
        close: Callable[[], Awaitable[None]],
        abandon: Callable[[], None],
        error: Callable[[], BaseException | None],
    ) -> None:
        self._receive = receive
        self._taken = taken
        self._close = close
        self._abandon = abandon
        self._error = error
        self._done = False

    def __aiter__(self) -> Items:
        return self

    async def __anext__(self) -> BulkItem:
        if self._done:
            raise StopAsyncIteration
        ended = False
        try:
            item = await receive(self._receive)
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            ended = True
        except BaseException:  # cancelled while waiting: end the run before leaving
            await self._end()
            raise
        if ended:
            await self._end()
            error = self._error()
            if error is not None:
                raise error
            raise StopAsyncIteration
        self._taken(item)
        return item

    async def _end(self) -> None:
        self._done = True
        with anyio.CancelScope(shield=True):
            await self._close()

    def __del__(self) -> None:
        if not self._done:
            self._done = True
            self._abandon()
            self._receive.close()
