"""The key gate: one document first, the rest once it showed that the key works."""

from __future__ import annotations

import anyio

__all__ = ["KeyGate"]


class KeyGate:
    """Until one submit has shown that the key works, documents go one at a time.

    So a wrong key (or no credit) costs one request, not thousands: the first
    document through is the probe; the others wait until it succeeds, or fails
    for a reason of its own (then the next one probes).
    """

    __slots__ = ("_open", "_probe_taken")

    def __init__(self) -> None:
        self._open = anyio.Event()
        self._probe_taken = False

    async def enter(self) -> bool:
        """Wait until the key is known to work; True for the one document sent to find out."""
        if self._open.is_set():
            return False
        if not self._probe_taken:
            self._probe_taken = True
            return True
        await self._open.wait()
        return False

    def open(self, probe: bool) -> None:
        """The probe (`probe` True) got an answer that shows the key works: let all through."""
        if probe and not self._open.is_set():
            self._open.set()
