"""The key gate: a few documents first, all of them once an answer shows the key works."""

from __future__ import annotations

from collections.abc import Callable

import anyio

__all__ = ["FIRST_WAVE", "KEY_WAVE", "KeyGate"]

#: Documents sent before anything is known of the key.
FIRST_WAVE = 4
#: Documents sent once the key is known valid (the probe) and before any
#: document's answer showed there is credit to spend.
KEY_WAVE = 32


class KeyGate:
    """Until an answer shows that the key works, only a few documents go out.

    So a wrong key (or no credit) costs a few requests, not thousands, and
    the run never waits a whole OCR round trip before its second upload:

    - the first `FIRST_WAVE` documents go at once, and the first of them
      calls `on_first` (a bulk run sends a fast authenticated probe, listing
      requests, beside them);
    - `key_valid()` (the probe's answer) lets up to `KEY_WAVE` go without an
      answer of their own: a wrong key costs at most 1 + `FIRST_WAVE`
      requests, no credit at most 1 + `KEY_WAVE`, whatever the input's size;
    - `open(True)` from a document sent unproven, when its answer shows the
      key works (a result, or an error of that document's own), lets all
      through. An error that would hit every document keeps the gate as it
      is; the run stops.

    `proven=True` (an earlier run of the same client got such an answer)
    starts it open: no probe, no first wave.
    """

    __slots__ = ("_changed", "_on_first", "_open", "_started", "_unproven", "_wave")

    def __init__(self, on_first: Callable[[], None] | None = None, *, proven: bool = False) -> None:
        self._open = proven
        self._started = proven
        self._unproven = 0  # documents sent before the gate opened
        self._wave = FIRST_WAVE
        self._changed = anyio.Event()
        self._on_first = on_first  # called once, when the first document enters

    def __repr__(self) -> str:
        state = "open" if self._open else f"{self._unproven} of {self._wave} sent unproven"
        return f"<KeyGate {state}>"

    @property
    def is_open(self) -> bool:
        """True once an answer showed the key works."""
        return self._open

    async def enter(self) -> bool:
        """Wait for a place; True for a document sent before the key was shown to work."""
        if not self._started:
            self._started = True
            if self._on_first is not None:
                self._on_first()
        while not self._open:
            if self._unproven < self._wave:
                self._unproven += 1
                return True
            await self._changed.wait()
        return False

    async def wait_open(self) -> None:
        """Wait until an answer showed the key works."""
        while not self._open:
            await self._changed.wait()

    def key_valid(self) -> None:
        """The key is known valid (credit not yet): a larger wave may go unproven."""
        if self._wave < KEY_WAVE:
            self._wave = KEY_WAVE
            self._wake()

    def open(self, probe: bool) -> None:
        """A document sent unproven (`probe` True) got an answer that shows the key works."""
        if probe and not self._open:
            self._open = True
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
