"""The admission window: at most so many documents taken and not yet handed over."""

from __future__ import annotations

import anyio

__all__ = ["AdmissionWindow"]


class AdmissionWindow:
    """At most `size` documents between the input and the loop; a slow loop holds the input.

    Algorithm: a counting window ("at most N at once"). A full window waits
    until `refill` places are free, so the documents taken next arrive
    together and preflight finds batches.
    """

    __slots__ = ("_free", "_refill", "_room")

    def __init__(self, size: int, refill: int) -> None:
        self._free = size
        self._refill = refill
        self._room: anyio.Event | None = None  # set when `refill` places are free

    async def take(self) -> None:
        """Wait for a place (and for a few more once full), then take it."""
        if self._free < 1:
            self._room = room = anyio.Event()
            await room.wait()
        self._free -= 1

    def give_back(self) -> None:
        """A document was handed over: its place is free again."""
        self._free += 1
        if self._room is not None and self._free >= self._refill:
            self._room.set()
            self._room = None
