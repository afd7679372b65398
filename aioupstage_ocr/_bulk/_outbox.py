"""Finished items on their way to the loop: in input order when asked, else as they come."""

from __future__ import annotations

import contextlib
import math

import anyio

from ._types import BulkItem

__all__ = ["Outbox"]


class Outbox:
    """Hands finished items to the loop's stream; with `ordered`, holds each until its turn.

    The reorder buffer counts in the run's `max_pending` (an item in it was
    taken and not handed over), so it stays bounded.
    """

    __slots__ = ("_next", "_ordered", "_reorder", "_send", "receive")

    def __init__(self, *, ordered: bool) -> None:
        self._ordered = ordered
        self._reorder: dict[int, BulkItem] = {}
        self._next = 0
        self._send, self.receive = anyio.create_memory_object_stream[BulkItem](math.inf)

    def put(self, item: BulkItem) -> None:
        if not self._ordered:
            self._send_now(item)
            return
        self._reorder[item.index] = item
        while self._next in self._reorder:
            self._send_now(self._reorder.pop(self._next))
            self._next += 1

    def close(self) -> None:
        """No more items: what waits for an earlier one goes out now, in order; then the end."""
        for index in sorted(self._reorder):
            self._send_now(self._reorder.pop(index))
        self._send.close()

    def _send_now(self, item: BulkItem) -> None:
        # Refused only once the loop has left and the run is being closed.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._send.send_nowait(item)
