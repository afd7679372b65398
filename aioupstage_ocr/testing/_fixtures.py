"""The emulator's pytest fixtures (they need pytest-asyncio; see `pytest_plugin`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ._emulator import UpstageEmulator

__all__ = ["upstage_emulator", "upstage_emulator_session"]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def upstage_emulator_session() -> AsyncIterator[UpstageEmulator]:
    """One emulator for the whole session, on a free loopback port."""
    async with UpstageEmulator() as emulator:
        yield emulator


@pytest_asyncio.fixture(loop_scope="session")
async def upstage_emulator(
    upstage_emulator_session: UpstageEmulator, request: pytest.FixtureRequest
) -> AsyncIterator[UpstageEmulator]:
    """The session's emulator, reset for this test.

    `@pytest.mark.upstage_emulator(rps=2, ...)` sets config fields for the test.
    """
    emulator = upstage_emulator_session
    emulator.reset()
    marker = request.node.get_closest_marker("upstage_emulator")
    if marker is not None:
        emulator.configure(**marker.kwargs)
    yield emulator
    emulator.reset()
