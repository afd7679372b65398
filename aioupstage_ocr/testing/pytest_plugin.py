"""pytest fixtures for the bundled emulator (registered through the pytest11 entry point).

- `upstage_emulator_session`: one `EmulatorThread` (the emulator on a thread
  of its own) for the session.
- `upstage_emulator`: that emulator, reset before and after each test;
  `@pytest.mark.upstage_emulator(**config_fields)` configures it for one test.
- `upstage_client`: an `AsyncUpstageOCR` pointed at it, retry waits zeroed,
  closed when the async test returns (`upstage_client_options` overrides its
  constructor arguments).

They need no configuration: sync tests, and async tests under pytest-asyncio
(strict or auto mode, any loop scope) or anyio, all talk to the emulator over
loopback, with any HTTP client.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from ._fixtures import (
    client_closed_by_test,
    upstage_client,
    upstage_client_options,
    upstage_emulator,
    upstage_emulator_session,
)

__all__ = [
    "pytest_configure",
    "pytest_runtest_call",
    "upstage_client",
    "upstage_client_options",
    "upstage_emulator",
    "upstage_emulator_session",
]


def pytest_configure(config: pytest.Config) -> None:
    """Register the `upstage_emulator` marker."""
    config.addinivalue_line(
        "markers",
        "upstage_emulator(**fields): EmulatorConfig fields for the upstage_emulator fixture",
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None]:
    """Close `upstage_client` in the test's own loop, as the test function returns."""
    with client_closed_by_test(item):
        return (yield)
