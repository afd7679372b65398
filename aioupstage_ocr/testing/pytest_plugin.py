"""pytest fixtures for the bundled emulator (registered through the pytest11 entry point).

- `upstage_emulator_session`: one running `UpstageEmulator` per session.
- `upstage_emulator`: that emulator, reset before and after each test;
  `@pytest.mark.upstage_emulator(**config_fields)` configures it for one test.

Tests using them run in the session's event loop (pytest-asyncio with
`asyncio_default_test_loop_scope = "session"`, or `loop_scope="session"`).
Without pytest-asyncio installed the plugin defines nothing.
"""

from __future__ import annotations

import importlib.util

import pytest

__all__ = ["pytest_configure"]

if importlib.util.find_spec("pytest_asyncio") is not None:
    from ._fixtures import upstage_emulator, upstage_emulator_session

    __all__ += ["upstage_emulator", "upstage_emulator_session"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the `upstage_emulator` marker."""
    config.addinivalue_line(
        "markers",
        "upstage_emulator(**fields): EmulatorConfig fields for the upstage_emulator fixture",
    )
