"""Shared test helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _s3 import s3_bucket, s3_server  # noqa: F401 - fixtures: moto S3 on loopback

from aioupstage_ocr import AsyncUpstageOCR
from aioupstage_ocr.testing import set_testing

#: Real public documents beside the project (never copied into it).
SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples"
#: Real documents and the live service's answers to them, beside the project too.
REAL_OCR = SAMPLES.parent / "real-ocr"


@pytest.fixture
def samples() -> Path:
    """The shared sample folder; skips the test where it is absent (a user's clone)."""
    if not SAMPLES.is_dir():
        pytest.skip(f"no sample documents at {SAMPLES}")
    return SAMPLES


@pytest.fixture
def real_ocr() -> Path:
    """The shared real-ocr folder (documents and `<stem>.response.json`); skips where absent."""
    if not REAL_OCR.is_dir():
        pytest.skip(f"no recorded answers at {REAL_OCR}")
    return REAL_OCR


# --------------------------------------------------------------------------- client fixtures

#: A key distinctive enough to search for in every repr, message and file.
TEST_KEY = "up_TEST-key-7f3a9c1e5b2d4680-do-not-leak"


@pytest.fixture
def retry_testing() -> Iterator[None]:
    """Retry waits zeroed for the test (`set_testing`), restored after."""
    with set_testing(True):
        yield


@pytest.fixture
def upstage_client_options() -> dict[str, Any]:
    """The plugin's `upstage_client` sends the distinctive test key."""
    return {"api_key": TEST_KEY}


@pytest.fixture
def client(upstage_client: AsyncUpstageOCR) -> AsyncUpstageOCR:
    """The plugin's `upstage_client`: on the test's emulator, zero retry waits, fast polls."""
    return upstage_client


@pytest.fixture
def api_key() -> str:
    """The distinctive test key (`TEST_KEY`) the `client` fixture uses."""
    return TEST_KEY
