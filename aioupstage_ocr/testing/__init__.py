"""Test your code against an emulator of the Upstage OCR service, offline."""

from __future__ import annotations

__all__: list[str] = []
