"""Shared test helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from aioupstage_ocr import AsyncUpstageOCR, Polling
from aioupstage_ocr._retry import set_testing
from aioupstage_ocr.testing import UpstageEmulator

#: Real public documents beside the project (never copied into it).
SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples"


@pytest.fixture
def samples() -> Path:
    """The shared sample folder; skips the test where it is absent (a user's clone)."""
    if not SAMPLES.is_dir():
        pytest.skip(f"no sample documents at {SAMPLES}")
    return SAMPLES


# --------------------------------------------------------------------------- client fixtures

#: A key distinctive enough to search for in every repr, message and file.
TEST_KEY = "up_TEST-key-7f3a9c1e5b2d4680-do-not-leak"

#: Polls fast enough that an async document finishes in a fraction of a second.
FAST_POLLING = Polling(initial=0.02, maximum=0.1, factor=1.5, jitter=0.1)


@pytest.fixture
def retry_testing() -> Iterator[None]:
    """Retry waits zeroed for the test (`set_testing`), restored after."""
    with set_testing(True):
        yield


@pytest_asyncio.fixture(loop_scope="session")
async def client(
    upstage_emulator: UpstageEmulator, retry_testing: None
) -> AsyncIterator[AsyncUpstageOCR]:
    """A client bound to the test's emulator, with zero retry waits and fast polling."""
    async with AsyncUpstageOCR(
        TEST_KEY, base_url=upstage_emulator.base_url, polling=FAST_POLLING
    ) as ocr_client:
        yield ocr_client


@pytest.fixture
def api_key() -> str:
    """The distinctive test key (`TEST_KEY`) the `client` fixture uses."""
    return TEST_KEY
