"""The outputs people use besides JSON: plain text, hOCR, ALTO and a searchable PDF.

One module per format (`_text`, `_hocr`, `_alto`, `_pdf`); `_lines` places a
page's words in one pixel frame and groups them into lines and blocks from
their geometry (shared by hOCR, ALTO and the PDF); `_font` builds the PDF's
glyphless font. `OCRResult.to_text()`, `to_hocr()` and `to_alto()` import
these lazily, and so do the two functions below (pypdf and Pillow load on the
first PDF written, not with the package). Nothing here imports `_models` at
run time (types only), so the two never form an import cycle.

All of it is CPU work, synchronous by design: async callers run it in a
worker thread (`await anyio.to_thread.run_sync(searchable_pdf, doc, result)`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .._atomic import atomic_write_bytes

if TYPE_CHECKING:
    from .._models import OCRResult
    from .._preflight import Document  # a path, the bytes, or a binary file object

__all__ = ["searchable_pdf", "write_searchable_pdf"]


def searchable_pdf(document: Document, result: OCRResult, *, name: str | None = None) -> bytes:
    """The original `document` with `result`'s words as an invisible text layer, as PDF bytes.

    `document` is a path, the bytes, or a binary file object (read from
    where it is); `name` names it in errors (default: the path or the file
    object's name, else `<bytes>`). A PDF keeps its pages
    byte for byte (the text layer is an incremental update: extra content
    streams and one shared glyphless font); an image (JPEG passed through,
    PNG/BMP/TIFF as lossless Flate, every TIFF frame a page) becomes pages at
    its own resolution. Blocking CPU work: from async code, call it through
    `anyio.to_thread.run_sync` (or `asyncio.to_thread`).

    Raises `UnsupportedFormatError` (not a PDF or an image the writer can
    embed), `UnreadableDocumentError` (corrupt, password-protected) or
    `ResultMismatchError` (the result's pages do not fit the document),
    each naming the document.
    """
    from ._pdf import searchable_pdf as build  # noqa: PLC0415 - pypdf and Pillow load on first use

    return build(document, result, name=name)


def write_searchable_pdf(
    document: Document,
    result: OCRResult,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
) -> Path:
    """`searchable_pdf(document, result)` written to `path` atomically; the absolute path.

    Blocking, like `searchable_pdf`: run it off the event loop in async code.
    """
    return atomic_write_bytes(path, searchable_pdf(document, result, name=name))
