"""Page ranges, and cutting a document into the parts that are sent.

```python
ranges = parse_pages("1-10,20,30-")          # ((1, 10), (20, 20), (30, None)), normalised
format_pages(ranges)                         # "1-10,20,30-"
wanted = select_pages(ranges, 40, "a.pdf")   # (1, ..., 10, 20, 30, ..., 40)
cuts = plan_cuts(stream, Format.PDF, "a.pdf", wanted, total=40, size=n, max_pages=1000,
                 max_bytes=50_000_000)           # None (sent whole), or the parts: `Cut`s
```

Only the pages wanted are uploaded, so only they are billed; a document over
the page or byte limit is cut into parts, each under both. Cutting is local:
a PDF by pages (pypdf), a multi-page TIFF by frames (Pillow). Blocking work:
run it off the event loop (preflight does).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeAlias

from ._exceptions import DocumentTooLargeError, PageRangeError, UnreadableDocumentError
from ._formats import Format
from ._models import OCRResult, merge_batches

__all__ = [
    "CUTTABLE",
    "Cut",
    "PageRanges",
    "cut_document",
    "format_pages",
    "join_parts",
    "page_list",
    "parse_pages",
    "plan_cuts",
    "select_pages",
]

#: Normalised page ranges: sorted, disjoint, not adjacent, from 1; `(start, None)`
#: runs to the document's end and can only be last.
PageRanges: TypeAlias = tuple[tuple[int, int | None], ...]

#: Formats a part can be cut from.
CUTTABLE = frozenset({Format.PDF, Format.TIFF})

_ITEM = re.compile(r"^\s*(\d+)\s*(?:(-)\s*(\d+)?\s*)?$")


def parse_pages(spec: str | Iterable[int]) -> PageRanges:
    """`"1-10,20,30-"` (or page numbers) as normalised `PageRanges`; `ValueError` if malformed.

    Items are `N`, `A-B` (A <= B) and `A-` (to the end), counted from 1,
    separated by commas; overlapping and adjacent ones are joined.
    """
    items: list[tuple[int, int | None]] = []
    if isinstance(spec, str):
        if not spec.strip():
            raise ValueError("a page range is empty; give pages like '1-10,20,30-'")
        for text in spec.split(","):
            match = _ITEM.match(text)
            if match is None:
                raise ValueError(f"page range {text.strip()!r} is not N, A-B or A- (in {spec!r})")
            start = int(match.group(1))
            end: int | None = start
            if match.group(2):
                end = int(match.group(3)) if match.group(3) else None
            items.append((start, end))
    else:
        items = [(int(page), int(page)) for page in spec]
        if not items:
            raise ValueError("no pages given")
    for start, end in items:
        if start < 1:
            raise ValueError(f"pages count from 1, got {start} (in {spec!r})")
        if end is not None and end < start:
            raise ValueError(f"page range {start}-{end} runs backwards (in {spec!r})")
    return _normalise(items)


def _normalise(items: list[tuple[int, int | None]]) -> PageRanges:
    out: list[tuple[int, int | None]] = []
    for start, end in sorted(items, key=lambda item: item[0]):
        if out:
            last_start, last_end = out[-1]
            if last_end is None:
                continue  # an open range already holds everything after it
            if start <= last_end + 1:
                out[-1] = (last_start, None if end is None else max(last_end, end))
                continue
        out.append((start, end))
    return tuple(out)


def format_pages(ranges: PageRanges | Sequence[int]) -> str:
    """Ranges (or sorted page numbers) as text: `"1-10,20,30-"`; `parse_pages` reads it back."""
    if ranges and isinstance(ranges[0], int):
        ranges = _normalise([(p, p) for p in ranges])  # type: ignore[misc]
    parts = []
    for start, end in ranges:  # type: ignore[misc]
        if end is None:
            parts.append(f"{start}-")
        elif end == start:
            parts.append(str(start))
        else:
            parts.append(f"{start}-{end}")
    return ",".join(parts)


def page_list(pages: Sequence[int]) -> str:
    """Page numbers for a message: `[1, 2, 3, 7]` -> `"1-3, 7"`."""
    return format_pages(sorted(pages)).replace(",", ", ")


def select_pages(ranges: PageRanges, total: int, name: str) -> tuple[int, ...]:
    """The page numbers `ranges` picks from a document of `total` pages.

    Raises `PageRangeError` naming `name` and the ranges when any page asked
    for is past the end: a range is never cut short silently.
    """
    outside = [
        (start, end) for start, end in ranges if start > total or (end is not None and end > total)
    ]
    if outside:
        raise PageRangeError(
            name,
            f"pages {format_pages(tuple(outside))} are outside the document, which has "
            f"{total} page{'s' if total != 1 else ''} (asked for {format_pages(ranges)})",
        )
    pages: list[int] = []
    for start, end in ranges:
        pages.extend(range(start, (total if end is None else end) + 1))
    return tuple(pages)


@dataclass(frozen=True, slots=True)
class Cut:
    """One part to send: the original's `pages` (from 1), and its own bytes."""

    pages: tuple[int, ...]
    data: bytes


def plan_cuts(
    stream: IO[bytes],
    fmt: Format,
    name: str,
    wanted: tuple[int, ...],
    *,
    total: int,
    size: int,
    max_pages: int,
    max_bytes: int,
) -> list[Cut] | None:
    """The parts `wanted` is sent as, each at most `max_pages` pages and `max_bytes` bytes.

    None when the document goes as it is (every page wanted, under both
    limits). Parts are as even as the page limit allows; one over the byte
    limit is halved until each fits. A single page over the byte limit is a
    `DocumentTooLargeError` naming the page; a format that cannot be cut, a
    `PageRangeError` (a selection) or the limit's own error (`DocumentTooLargeError`).
    """
    if wanted == tuple(range(1, total + 1)) and total <= max_pages and size <= max_bytes:
        return None
    if fmt not in CUTTABLE:
        if size > max_bytes:
            raise DocumentTooLargeError(
                name,
                f"{_megabytes(size)} is over the limit of {_megabytes(max_bytes)} "
                "(DocumentLimits.max_bytes), and only PDF and TIFF can be cut into parts",
            )
        raise PageRangeError(
            name, f"only the pages of a PDF or a TIFF can be chosen, not of {fmt.name}"
        )
    cutter = _Cutter(stream, fmt, name)
    count = -(-len(wanted) // max_pages)
    step, extra = divmod(len(wanted), count)
    chunks: list[tuple[int, ...]] = []
    at = 0
    for k in range(count):
        length = step + (1 if k < extra else 0)
        chunks.append(wanted[at : at + length])
        at += length
    cuts: list[Cut] = []
    for chunk in chunks:
        cuts.extend(_fit(cutter, chunk, max_bytes, name))
    return cuts


def _fit(cutter: _Cutter, pages: tuple[int, ...], max_bytes: int, name: str) -> list[Cut]:
    data = cutter.cut(pages)
    if len(data) <= max_bytes:
        return [Cut(pages, data)]
    if len(pages) == 1:
        raise DocumentTooLargeError(
            name,
            f"page {pages[0]} alone is {_megabytes(len(data))}, over the limit of "
            f"{_megabytes(max_bytes)} (DocumentLimits.max_bytes): it cannot be sent",
        )
    half = len(pages) // 2
    return _fit(cutter, pages[:half], max_bytes, name) + _fit(cutter, pages[half:], max_bytes, name)


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB ({size} bytes)"


def cut_document(stream: IO[bytes], fmt: Format, name: str, pages: Sequence[int]) -> bytes:
    """A new document of `pages` (from 1, in order) of a PDF or TIFF."""
    return _Cutter(stream, fmt, name).cut(tuple(pages))


class _Cutter:
    """Reads the document once and writes any selection of its pages."""

    def __init__(self, stream: IO[bytes], fmt: Format, name: str) -> None:
        self._stream = stream
        self._fmt = fmt
        self._name = name
        self._reader: Any = None  # a PdfReader, opened on first use

    def cut(self, pages: tuple[int, ...]) -> bytes:
        try:
            if self._fmt is Format.PDF:
                return self._cut_pdf(pages)
            return self._cut_tiff(pages)
        except UnreadableDocumentError:
            raise
        except Exception as exc:  # pypdf and Pillow raise many types on odd input
            raise UnreadableDocumentError(
                self._name, f"pages {page_list(pages)} cannot be cut out ({exc})"
            ) from exc

    def _cut_pdf(self, pages: tuple[int, ...]) -> bytes:
        from pypdf import PdfReader, PdfWriter  # noqa: PLC0415 - imported on first use

        if self._reader is None:
            self._stream.seek(0)
            reader = PdfReader(self._stream, strict=False)
            if reader.is_encrypted:
                reader.decrypt("")
            self._reader = reader
        reader = self._reader
        writer = PdfWriter()
        for page in pages:
            writer.add_page(reader.pages[page - 1])
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()

    def _cut_tiff(self, pages: tuple[int, ...]) -> bytes:
        from PIL import Image  # noqa: PLC0415 - imported on first use

        Image.MAX_IMAGE_PIXELS = None  # preflight checks the service's pixel limit
        self._stream.seek(0)
        with Image.open(self._stream) as image:
            compression = image.info.get("compression")
            frames = []
            for page in pages:
                image.seek(page - 1)
                frames.append(image.copy())
        options: dict[str, object] = {}
        if isinstance(compression, str) and compression != "raw":
            options["compression"] = compression
        out = io.BytesIO()
        first, rest = frames[0], frames[1:]
        try:
            first.save(out, format="TIFF", save_all=True, append_images=rest, **options)
        except (OSError, ValueError):  # a codec this frame's mode cannot take
            out = io.BytesIO()
            first.save(out, format="TIFF", save_all=True, append_images=rest)
        return out.getvalue()


def join_parts(name: str, parts: Sequence[tuple[tuple[int, ...], OCRResult]]) -> OCRResult:
    """The results of a document's parts as one result: `(source pages, result)` in order.

    Merged as an async request's batches are (`merge_batches`: pages in order,
    ids continuous, billed pages summed), with `sourcePages` added to `raw`:
    the original's page number of each page. `IncompleteResultError` when a
    part's result does not hold its pages.
    """
    items: list[tuple[int, int, OCRResult]] = []
    at = 1
    for pages, result in parts:
        items.append((at, at + len(pages) - 1, result))
        at += len(pages)
    merged = merge_batches(name, at - 1, items)
    raw = {**merged.raw, "sourcePages": [page for pages, _result in parts for page in pages]}
    return OCRResult(merged.pages, merged.model, raw)
