"""The `ocr` command's inputs, found by a thread ahead of the run.

Folder walks, listings and stdin block, so a daemon thread runs `iter_inputs`
(and lists URL prefixes, `_remote`), stats
each input, maps its output, hashes it (for the journal's content checks),
and hands each `Seen` to the event loop, at most `AHEAD` inputs ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .._exceptions import ConfigurationError, UpstageOCRError
from .._inputs import InputItem, OutputMapper
from . import _remote
from ._remote import RemoteMapper

__all__ = ["AHEAD", "Discovery", "Seen", "see"]

#: Inputs the discovery thread may find ahead of the run.
AHEAD = 256


@dataclass(slots=True)
class Seen:
    """An input as discovery saw it (blocking work done in the discovery thread)."""

    item: InputItem
    output: Path | None = None
    size: int = 0
    mtime_ns: int = 0
    output_exists: bool = False
    sha256: str | None = None
    error: UpstageOCRError | None = None


def see(item: InputItem, mapper: OutputMapper | RemoteMapper, hash_limit: int) -> Seen:
    """Stat, output path, and (up to `hash_limit` bytes, 0 for none) the content's hash."""
    seen = Seen(item)
    if item.error is not None:
        seen.error = item.error
        return seen
    try:
        seen.output = mapper.output_for(item.path)
    except ConfigurationError as exc:
        seen.error = exc
        return seen
    try:
        seen.size, seen.mtime_ns = _remote.stat_of(item.path)
        seen.output_exists = _remote.exists(seen.output)
    except (OSError, UpstageOCRError):
        return seen  # preflight names the problem
    if 0 < seen.size <= hash_limit and _remote.url_of(item.path) is None:
        seen.sha256 = _hash_file(item.path)
    return seen


class _End:
    """Discovery is over: every input was seen."""


class Discovery:
    """Inputs found by a daemon thread (folder walks and stdin block), handed to the loop.

    The thread runs `iter_inputs`, stats each input, maps its output, hashes
    it (for the journal's content checks), and stays at most `AHEAD` inputs
    ahead of the run (so preflight reads the file again from the page cache).
    It is a daemon: a stdin that never ends cannot keep the process alive
    after the run stops.
    """

    def __init__(
        self, inputs: tuple[str, ...], mapper: OutputMapper | RemoteMapper, hash_limit: int
    ) -> None:
        self._inputs = inputs
        self._mapper = mapper
        self._hash_limit = hash_limit
        self._room = threading.Semaphore(AHEAD)
        self._items: deque[Seen | _End | BaseException] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._discover, name="aioupstage-ocr inputs", daemon=True
        )
        self._thread.start()

    def _discover(self) -> None:
        try:
            for item in _remote.iter_all(self._inputs):
                seen = see(item, self._mapper, self._hash_limit)
                self._room.acquire()
                if self._closed:
                    return
                self._loop.call_soon_threadsafe(self._push, seen)
            self._loop.call_soon_threadsafe(self._push, _End())
        except RuntimeError:
            return  # the loop closed: nobody is reading any more
        except BaseException as exc:  # noqa: BLE001 - handed to the run, raised there
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._push, exc)

    def close(self) -> None:
        """Stop finding inputs (a thread waiting on stdin ends with the process)."""
        self._closed = True
        self._room.release()

    def _push(self, value: Seen | _End | BaseException) -> None:
        self._items.append(value)
        self._ready.set()

    async def next(self) -> Seen | None:
        """The next input, or None when there are no more."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        value = self._items.popleft()
        if isinstance(value, Seen):
            self._room.release()
            return value
        if isinstance(value, _End):
            self._items.appendleft(value)
            return None
        raise value


def _hash_file(path: Path) -> str | None:
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return None
