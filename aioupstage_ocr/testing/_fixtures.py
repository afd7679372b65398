"""The emulator's pytest fixtures (registered by `pytest_plugin`).

The emulator runs on a thread of its own (`EmulatorThread`), so the fixtures
are sync: they serve sync tests and async tests in any event loop alike.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from .._client import AsyncUpstageOCR
from .._config import Polling
from .._retry import set_testing
from ._emulator import UpstageEmulator
from ._thread import EmulatorThread

__all__ = [
    "client_closed_by_test",
    "upstage_client",
    "upstage_client_options",
    "upstage_emulator",
    "upstage_emulator_session",
]

#: The key `upstage_client` sends (the emulator takes any non-empty key by default).
CLIENT_KEY = "emulator-test-key"
#: Polls fast enough that an async document on the emulator finishes in a fraction of a second.
CLIENT_POLLING = Polling(initial=0.02, maximum=0.1, factor=1.5, jitter=0.1)


@pytest.fixture(scope="session")
def upstage_emulator_session() -> Iterator[EmulatorThread]:
    """One emulator for the whole session, on its own thread and free loopback ports."""
    with EmulatorThread() as emulator:
        yield emulator


@pytest.fixture
def upstage_emulator(
    upstage_emulator_session: EmulatorThread, request: pytest.FixtureRequest
) -> Iterator[EmulatorThread]:
    """The session's emulator, reset for this test (and after it).

    `@pytest.mark.upstage_emulator(rps=2, ...)` sets config fields for the test.
    """
    emulator = upstage_emulator_session
    marker = request.node.get_closest_marker("upstage_emulator")
    changes = marker.kwargs if marker is not None else {}

    def reset_and_configure(running: UpstageEmulator) -> None:
        running.reset()
        if changes:
            running.configure(**changes)

    emulator.call(reset_and_configure)
    yield emulator
    emulator.reset()


@pytest.fixture
def upstage_client_options() -> dict[str, Any]:
    """Keyword arguments for `upstage_client`'s `AsyncUpstageOCR`; override to change them."""
    return {}


@pytest.fixture
def upstage_client(
    upstage_emulator: EmulatorThread,
    upstage_client_options: dict[str, Any],
    request: pytest.FixtureRequest,
) -> Iterator[AsyncUpstageOCR]:
    """An `AsyncUpstageOCR` on the test's emulator, retry waits zeroed (`set_testing`).

    Its HTTP session opens in the test's own event loop on first use, and the
    client is closed there when the test function returns. For async tests only.
    """
    if not inspect.iscoroutinefunction(request.function):
        raise pytest.UsageError(
            f"{request.node.nodeid}: upstage_client is an async client; use it in an async test "
            "(or use upstage_emulator.base_url with a client of your own)"
        )
    options: dict[str, Any] = {"polling": CLIENT_POLLING, **upstage_client_options}
    options.setdefault("api_key", CLIENT_KEY)
    with set_testing(True):
        yield AsyncUpstageOCR(base_url=upstage_emulator.base_url, **options)


@contextlib.contextmanager
def client_closed_by_test(item: pytest.Item) -> Iterator[None]:
    """While the test runs, its function closes `upstage_client` as it returns.

    Wrapping the function itself runs `aclose` in the test's own loop, whichever
    plugin (pytest-asyncio, anyio) and loop scope runs it.
    """
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    client = funcargs.get("upstage_client")
    test = getattr(item, "obj", None)
    if not isinstance(client, AsyncUpstageOCR) or not inspect.iscoroutinefunction(test):
        yield
        return
    assert isinstance(item, pytest.Function)
    item.obj = _closing(test, client)
    try:
        yield
    finally:
        item.obj = test


def _closing(
    test: Callable[..., Coroutine[Any, Any, Any]], client: AsyncUpstageOCR
) -> Callable[..., Coroutine[Any, Any, Any]]:
    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return await test(*args, **kwargs)
        finally:
            await client.aclose()

    return run
