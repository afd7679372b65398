"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Real public documents beside the project (never copied into it).
SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples"


@pytest.fixture
def samples() -> Path:
    """The shared sample folder; skips the test where it is absent (a user's clone)."""
    if not SAMPLES.is_dir():
        pytest.skip(f"no sample documents at {SAMPLES}")
    return SAMPLES
