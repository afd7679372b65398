"""The emulator on a thread of its own, with its own event loop.

```python
with EmulatorThread(EmulatorConfig(rps=2)) as emulator:
    requests.post(f"{emulator.base_url}/document-digitization", ...)  # any client, any loop
    assert emulator.stats.rate_limited == 0
```

Code in any thread or event loop (a sync test, pytest-asyncio's function loop,
anyio's) talks to it over loopback, as it would to the service. Every method
hops onto the emulator's loop and waits at most `timeout` seconds, so a fault
is an error, never a hang. Inside one event loop, `async with UpstageEmulator()`
is the lighter choice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import threading
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

from ._config import EmulatorConfig
from ._emulator import UpstageEmulator
from ._stats import EmulatorStats

__all__ = ["EmulatorThread", "LiveStats"]

T = TypeVar("T")

_STAT_NAMES = frozenset(item.name for item in dataclasses.fields(EmulatorStats)) | {
    "as_dict",
    "submissions",
}


class EmulatorThread:
    """An `UpstageEmulator` served from a daemon thread: a sync context manager.

    Takes `UpstageEmulator`'s arguments. `start()` returns once both ports
    listen, or raises the reason it could not (a taken port, a bad config
    field); `stop()` (or leaving the `with`) closes it within `timeout` seconds.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        storage_port: int = 0,
        timeout: float = 10.0,
        **changes: Any,
    ) -> None:
        self._make = functools.partial(
            UpstageEmulator, config, host=host, port=port, storage_port=storage_port, **changes
        )
        self.timeout = timeout
        self._emulator: UpstageEmulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Self:
        """Start the thread and the emulator on it; returns once it listens."""
        if self._thread is not None:
            raise RuntimeError("this EmulatorThread was started already")
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(started),), name="upstage-emulator", daemon=True
        )
        self._thread.start()
        try:
            started.result(self.timeout)
        except concurrent.futures.TimeoutError:
            if started.cancel():  # the thread closes the emulator if it ever starts
                raise TimeoutError(
                    f"the emulator did not start listening within {self.timeout:g} s"
                ) from None
            started.result()  # it was just being set
        return self

    def stop(self) -> None:
        """Close the emulator and end its thread, waiting at most `timeout` seconds."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed already
                loop.call_soon_threadsafe(stopping.set)
            thread.join(self.timeout)
            if thread.is_alive():
                raise TimeoutError(f"the emulator's thread did not end within {self.timeout:g} s")
        self._emulator = self._loop = self._stopping = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f" {self.base_url}" if self._emulator is not None else ""
        return f"<EmulatorThread{where}>"

    async def _serve(self, started: concurrent.futures.Future[None]) -> None:
        try:
            emulator = self._make()
            self._stopping = asyncio.Event()
            await emulator.start()
        except BaseException as exc:  # noqa: BLE001 - start() raises it in its own thread
            if started.set_running_or_notify_cancel():
                started.set_exception(exc)
            return
        if not started.set_running_or_notify_cancel():  # start() gave up waiting
            await emulator.close()
            return
        self._loop = asyncio.get_running_loop()
        self._emulator = emulator
        started.set_result(None)
        try:
            await self._stopping.wait()
        finally:
            await emulator.close()

    # -- talking to the emulator's loop ------------------------------------------------

    @property
    def emulator(self) -> UpstageEmulator:
        """The emulator itself: touch it only from its own loop (`call` gets you there)."""
        if self._emulator is None:
            raise RuntimeError("the emulator is not running: use `with EmulatorThread() as e:`")
        return self._emulator

    def call(self, function: Callable[[UpstageEmulator], T]) -> T:
        """`function(emulator)` run on the emulator's loop; its result or its exception.

        Raises `TimeoutError` when the loop does not get to it within `timeout` seconds.
        """
        emulator = self.emulator
        assert self._loop is not None
        if threading.current_thread() is self._thread:
            return function(emulator)

        async def run() -> T:
            return function(emulator)

        return self._wait(asyncio.run_coroutine_threadsafe(run(), self._loop), self.timeout)

    def _wait(self, future: concurrent.futures.Future[T], timeout: float | None) -> T:
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            if self._thread is not None and not self._thread.is_alive():
                raise RuntimeError("the emulator's thread has ended") from None
            raise TimeoutError(f"the emulator's loop did not answer within {timeout:g} s") from None

    @property
    def base_url(self) -> str:
        """The client's base URL, `http://HOST:PORT/v1`."""
        return self.emulator.base_url

    @property
    def storage_url(self) -> str:
        """The storage host's root (download links point there)."""
        return self.emulator.storage_url

    @property
    def port(self) -> int:
        """The API host's port."""
        return self.emulator.port

    @property
    def storage_port(self) -> int:
        """The storage host's port."""
        return self.emulator.storage_port

    @property
    def config(self) -> EmulatorConfig:
        """The configuration in force."""
        return self.emulator.config

    @property
    def stats(self) -> LiveStats:
        """The emulator's counters, read on its loop at each access (`EmulatorStats`'s names)."""
        return LiveStats(self)

    @property
    def in_outage(self) -> bool:
        """Whether an outage is going on."""
        return self.call(lambda emulator: emulator.in_outage)

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change configuration fields now; returns the new configuration."""
        return self.call(lambda emulator: emulator.configure(**changes))

    def reset(self) -> None:
        """Back to the initial configuration, stats zeroed, every request forgotten."""
        self.call(UpstageEmulator.reset)

    def outage(self, seconds: float) -> None:
        """Refuse connections to the API host for `seconds` (see `UpstageEmulator.outage`)."""
        self.call(lambda emulator: emulator.outage(seconds))

    def expire_links(self) -> None:
        """Make every download link signed so far expired."""
        self.call(UpstageEmulator.expire_links)

    def request_ids(self) -> list[str]:
        """Ids of the async requests kept, oldest first."""
        return self.call(UpstageEmulator.request_ids)

    async def wait_idle(self) -> None:
        """Wait, in any asyncio loop, until every async request kept has ended.

        Bound it with `asyncio.timeout(...)`; leaving the wait cancels it on the
        emulator's loop too, and so does the emulator stopping.
        """
        emulator = self.emulator
        assert self._loop is not None
        idle = asyncio.run_coroutine_threadsafe(emulator.wait_idle(), self._loop)
        await asyncio.wrap_future(idle)


class LiveStats:
    """An `EmulatorStats` seen from another thread: each read hops onto the emulator's loop.

    `stats.uploads`, `stats.requests["sync"]`, `stats.submissions(sha)` and
    `stats.as_dict()` read the counters as they are at that moment (counters
    come back as copies); `snapshot()` copies them all at once.
    """

    __slots__ = ("_runner",)

    def __init__(self, runner: EmulatorThread) -> None:
        self._runner = runner

    def snapshot(self) -> EmulatorStats:
        """Every counter as it is now, in one consistent copy."""
        return self._runner.call(lambda emulator: emulator.stats.copy())

    def __getattr__(self, name: str) -> Any:
        if name not in _STAT_NAMES:
            raise AttributeError(f"EmulatorStats has no attribute {name!r}")

        def read(emulator: UpstageEmulator) -> Any:
            value = getattr(emulator.stats, name)
            return Counter(value) if isinstance(value, Counter) else value

        value = self._runner.call(read)
        if callable(value):
            method = value

            def hop(*args: Any, **kwargs: Any) -> Any:
                return self._runner.call(lambda _: method(*args, **kwargs))

            return hop
        return value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LiveStats):
            other = other.snapshot()
        return self.snapshot() == other if isinstance(other, EmulatorStats) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<LiveStats of {self.snapshot()!r}>"
