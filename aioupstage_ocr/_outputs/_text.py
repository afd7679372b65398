"""Plain text: each page's text as the service gave it, pages separated by a form feed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._models import OCRResult

__all__ = ["to_text"]


def to_text(result: OCRResult) -> str:
    """The pages' text joined by `"\\f"` (as OCR tools separate pages), ending in a newline."""
    text = "\f".join([page.text for page in result.pages])
    return text if text.endswith("\n") else text + "\n"
