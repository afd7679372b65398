"""Inputs for the benchmarks: many distinct small files, written fast, read as a generator.

Every document differs from every other (the client and the emulator both
recognise identical files by hash, which would turn a bulk run into a few
requests): images carry their number in a PNG `tEXt` chunk, PDFs in their
text layer.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from aioupstage_ocr.testing import make_pdf, page_text

__all__ = [
    "PATTERN_PDF",
    "PATTERN_PNG",
    "paths",
    "pdf_page_counts",
    "tiny_png",
    "write_pdfs",
    "write_pngs",
]

PATTERN_PNG = "doc-{:06d}.png"
PATTERN_PDF = "doc-{:04d}.pdf"

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIDE = 16


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# A 16x16 greyscale picture: one filter byte then 16 pixels per row.
_HEADER = _SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", _SIDE, _SIDE, 8, 0, 0, 0, 0))
_PIXELS = _chunk(
    b"IDAT", zlib.compress(b"".join(b"\x00" + bytes(range(r, r + _SIDE)) for r in range(_SIDE)))
)
_END = _chunk(b"IEND", b"")


def tiny_png(number: int) -> bytes:
    """A valid 16x16 PNG (about 130 bytes) that differs from every other `number`."""
    return _HEADER + _chunk(b"tEXt", b"Comment\x00document %d" % number) + _PIXELS + _END


def write_pngs(folder: Path, count: int, *, first: int = 0) -> str:
    """`count` distinct tiny PNGs in `folder` (numbered from `first`); their name pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(first, first + count):
        (folder / PATTERN_PNG.format(number)).write_bytes(tiny_png(number))
    return PATTERN_PNG


def pdf_page_counts(count: int, low: int, high: int, *, seed: int = 6) -> list[int]:
    """`count` page counts drawn uniformly from `low..high` (seeded)."""
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(count)]


def write_pdfs(folder: Path, pages: list[int], *, tag: str = "") -> str:
    """One PDF per entry of `pages`, with a text layer naming the document; the name pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, count in enumerate(pages):
        texts = [f"{tag}document {number} {page_text(n)}" for n in range(1, count + 1)]
        (folder / PATTERN_PDF.format(number)).write_bytes(make_pdf(texts))
    return PATTERN_PDF


def paths(folder: str | Path, pattern: str, count: int, *, first: int = 0) -> Iterator[str]:
    """The paths of documents `first..first+count-1`, lazily (never a list)."""
    base = str(folder)
    for number in range(first, first + count):
        yield f"{base}/{pattern.format(number)}"
