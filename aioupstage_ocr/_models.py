"""Typed results and statuses, parsed from either response shape.

```python
result = parse_result(body)          # bytes, str or a mapping; either shape
result.text, result.pages[0].words[0].bbox
result.save("scan.ocr.json")         # the service's answer as it came, atomically

status = parse_request_status(body)  # GET .../requests/{id}
merged = merge_batches(status.id, status.total_pages, [(1, 10, r1), (11, 12, r2)])
```

Two shapes carry one result (see `upstage-ocr-api.md`):

- the live shape, the one every recorded answer of the service has:
  `apiVersion`, `modelVersion`, `numBilledPages`, top-level `text` and
  `confidence`, `metadata.pages[]` (`page` from 1, `width`, `height`), pages
  with `width`/`height`/`confidence`, and words whose `boundingBox.vertices`
  are integer pixels, word ids counting across the document;
- the seed shape: `api`, `model`, `usage.pages`, pages without sizes, and
  `pages[].words[].bounding_box.vertices` as ratios of the page size.

Both parse to the same typed `OCRResult`, whose `raw` is the answer itself,
never rewritten: saving a result gives back what the service sent. The typed
side reads a page's size from the page or else its `metadata.pages` entry,
keeps each box's vertices as served and works the other unit out on access.
A vertex that lacks `x` or `y` has 0 there (protobuf JSON leaves zeros out).
Pixel vertices on a page of unknown size are an error, unless every
coordinate lies in 0..1, which is then read as a ratio.

Anything else that does not fit raises `ResponseValidationError` naming the
place, e.g. `pages[3].words[7]: no 'text'`; never `KeyError` or `TypeError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from ._atomic import atomic_write_bytes
from ._exceptions import IncompleteResultError, ResponseValidationError

__all__ = [
    "BatchStatus",
    "BoundingBox",
    "OCRResult",
    "Page",
    "RequestStatus",
    "RequestSummary",
    "Status",
    "Word",
    "merge_batches",
    "parse_request_list",
    "parse_request_status",
    "parse_result",
    "parse_timestamp",
]

_NUMBER = frozenset({int, float})  # `type(x) in _NUMBER` leaves out bool on purpose
_LIVE_TOP = ("apiVersion", "modelVersion", "numBilledPages")


class _Invalid(Exception):  # noqa: N818 - internal signal, turned into ResponseValidationError
    """A misfit found deep in a body: where (a JSON path) and what is wrong."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(where, reason)
        self.where = where
        self.reason = reason


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """An axis-aligned box: `(x0, y0)` top-left, `(x1, y1)` bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        """`x1 - x0`."""
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        """`y1 - y0`."""
        return self.y1 - self.y0


def _box(points: tuple[tuple[float, float], ...]) -> BoundingBox:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return BoundingBox(min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word, as the service served it.

    `points` are the box's vertices exactly as served, usually four, clockwise
    from the text's own top-left: on rotated text a rotated quadrilateral, kept
    as it came. They are pixels of the page as the service saw it
    (`in_pixels`: the live shape's `boundingBox`; an image's own pixels, a PDF
    page's points at 150 dpi) or ratios of the page size (the seed shape's
    `bounding_box`). `vertices` and `pixel_vertices` give both units, worked out
    on access, so parsing pays nothing for them; `bbox` and `pixel_bbox` are the
    axis-aligned boxes around them. `page_size` is the page's `(width, height)`
    in pixels where known.

    `id` is as served: in the live shape it counts across the whole document
    (a merged async document is renumbered so), in the seed shape within its
    page. `text` can be empty: the service sends such words.
    """

    id: int
    text: str
    confidence: float | None
    points: tuple[tuple[float, float], ...]
    page_size: tuple[int, int] | None = None
    in_pixels: bool = False

    def __post_init__(self) -> None:
        if self.in_pixels and self.page_size is None:
            raise ValueError("a Word in pixels needs its page_size")

    @property
    def vertices(self) -> tuple[tuple[float, float], ...]:
        """The vertices in ratios of the page size (0..1)."""
        if not self.in_pixels:
            return self.points
        width, height = self.page_size  # type: ignore[misc]  # set with pixels (__post_init__)
        return tuple([(x / width, y / height) for x, y in self.points])

    @property
    def bbox(self) -> BoundingBox:
        """The box around `vertices`, in ratios of the page size."""
        return _box(self.vertices)

    @property
    def pixel_vertices(self) -> tuple[tuple[int, int], ...] | None:
        """The vertices in pixels, or None where the page size is unknown.

        The served integers themselves in the live shape; ratios times the page
        size, rounded, in the seed shape.
        """
        points = self.points
        if self.in_pixels:
            if all(type(x) is int and type(y) is int for x, y in points):
                return points  # type: ignore[return-value]  # checked: all integers
            return tuple([(round(x), round(y)) for x, y in points])
        if self.page_size is None:
            return None
        width, height = self.page_size
        return tuple([(round(x * width), round(y * height)) for x, y in points])

    @property
    def pixel_bbox(self) -> BoundingBox | None:
        """The box around `pixel_vertices`, or None where the page size is unknown."""
        pixels = self.pixel_vertices
        return None if pixels is None else _box(pixels)


# Building a Word through its frozen __init__ costs about three times as much as
# setting its slots directly; the parse builds one per word, so it does the latter.
_new_object = object.__new__
_set_word_id = Word.__dict__["id"].__set__
_set_word_text = Word.__dict__["text"].__set__
_set_word_confidence = Word.__dict__["confidence"].__set__
_set_word_points = Word.__dict__["points"].__set__
_set_word_page_size = Word.__dict__["page_size"].__set__
_set_word_in_pixels = Word.__dict__["in_pixels"].__set__


def _new_word(
    word_id: int,
    text: str,
    confidence: float | None,
    points: tuple[tuple[float, float], ...],
    page_size: tuple[int, int] | None,
    *,
    in_pixels: bool,
) -> Word:
    """`Word(...)`, fast: the same object, built by setting each slot."""
    word: Word = _new_object(Word)
    _set_word_id(word, word_id)
    _set_word_text(word, text)
    _set_word_confidence(word, confidence)
    _set_word_points(word, points)
    _set_word_page_size(word, page_size)
    _set_word_in_pixels(word, in_pixels)
    return word


def _renumbered(word: Word, word_id: int) -> Word:
    return _new_word(
        word_id, word.text, word.confidence, word.points, word.page_size, in_pixels=word.in_pixels
    )


@dataclass(frozen=True, slots=True)
class Page:
    """One page: `index` from 0 in its document; size in pixels where known.

    `width` and `height` are the page as the service saw it (the live shape
    sends them on the page and in `metadata.pages`); `text` is the page's text
    as served (the service joins its lines with `" \\n"`).
    """

    index: int
    text: str
    words: tuple[Word, ...] = ()
    width: int | None = None
    height: int | None = None
    confidence: float | None = None

    def __repr__(self) -> str:
        size = f"{self.width}x{self.height}" if self.width and self.height else "unknown size"
        return f"<Page {self.index}: {len(self.words)} words, {size}, text={self.text[:40]!r}>"


@dataclass(frozen=True, slots=True)
class OCRResult:
    """A document's OCR result.

    `raw` is the service's own answer, in the shape it came: a sync answer
    exactly as decoded (same keys, same values, integers kept integers); an
    async document its batches merged as if the service had answered the whole
    document at once (see `merge_batches`). Unknown fields are kept. Treat it
    as read-only, like the rest of the object.
    """

    pages: tuple[Page, ...]
    model: str | None
    raw: dict[str, Any] = field(hash=False, repr=False)

    def __repr__(self) -> str:
        return f"<OCRResult {self.num_pages} pages, model={self.model!r}, text={self.text[:40]!r}>"

    @property
    def text(self) -> str:
        """The document's text as the service gives it.

        The answer's top-level `text` where it has one (the live shape); else
        the pages' texts joined as the service joins them, with no separator.
        """
        text = self.raw.get("text")
        if type(text) is str:
            return text
        return "".join([page.text for page in self.pages])

    @property
    def num_pages(self) -> int:
        """How many pages the result holds."""
        return len(self.pages)

    @property
    def source_pages(self) -> tuple[int, ...] | None:
        """Which page of the original document (from 1) each page is, when not all were sent.

        Read from the `sourcePages` list this package adds to `raw` when only
        some pages were asked for (`pages=`) or the document went in parts, so
        it survives `save` and `load`. None for a document sent whole.
        """
        found = self.raw.get("sourcePages")
        if type(found) is list and all(type(p) is int for p in found):
            return tuple(found)
        return None

    @property
    def billed_pages(self) -> int | None:
        """The pages billed: `numBilledPages` (live shape) or `usage.pages` (seed shape).

        None where the service reported neither.
        """
        pages = self.raw.get("numBilledPages")
        if pages is None:
            usage = self.raw.get("usage")
            pages = usage.get("pages") if type(usage) is dict else None
        return pages if type(pages) is int else None

    def to_json(self, *, indent: bool = False) -> bytes:
        """`raw` as JSON bytes (UTF-8)."""
        return orjson.dumps(self.raw, option=orjson.OPT_INDENT_2 if indent else 0)

    def save(self, path: str | os.PathLike[str], *, indent: bool = False) -> Path:
        """Write `to_json()` to `path` atomically; return the absolute path written."""
        return atomic_write_bytes(path, self.to_json(indent=indent))

    # The other outputs live in `_outputs` (imported on first use; it needs this module's
    # types only for checking). A searchable PDF: `aioupstage_ocr.searchable_pdf`.
    def to_text(self) -> str:
        """The pages' text, pages separated by a form feed (`"\\f"`), ending in a newline."""
        from ._outputs._text import to_text  # noqa: PLC0415

        return to_text(self)

    def to_hocr(self, *, image: str | None = None) -> str:
        """hOCR 1.2 (XHTML): pages, blocks, lines and words with pixel boxes and confidences.

        `image` names the source document in each page's title.
        """
        from ._outputs._hocr import to_hocr  # noqa: PLC0415

        return to_hocr(self, image=image)

    def to_alto(self, *, image: str | None = None) -> str:
        """ALTO 4.4 XML, positions in pixels; `image` is the source file it names."""
        from ._outputs._alto import to_alto  # noqa: PLC0415

        return to_alto(self, image=image)

    @classmethod
    def from_json(
        cls, data: bytes | str | Mapping[str, Any], *, source: str | None = None
    ) -> OCRResult:
        """Parse a result in either shape (see `parse_result`)."""
        return parse_result(data, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OCRResult:
        """Read a result file (e.g. one written by `save`); errors name the file."""
        return parse_result(Path(path).read_bytes(), source=os.fspath(path))


def parse_result(
    body: bytes | bytearray | memoryview | str | Mapping[str, Any], *, source: str | None = None
) -> OCRResult:
    """Parse an OCR result in either shape into an `OCRResult` whose `raw` is it, unchanged.

    `body` is the JSON text, or an already decoded mapping (copied first, so
    `raw` never shares objects with the caller's; passing the bytes is faster).
    `source` (a file name, a request id and batch) prefixes error messages.
    Raises `ResponseValidationError` naming what is missing and where.
    """
    small = isinstance(body, bytes | bytearray | memoryview | str) and len(body) < _GC_PAUSE_BYTES
    with contextlib.nullcontext() if small else _gc_paused():
        data = _decode(body, source, "result")
        try:
            return _parse_result(data)
        except _Invalid as exc:
            raise ResponseValidationError(_message(source, exc), body=data) from None


#: Bodies from this size up are parsed with the garbage collector held off.
_GC_PAUSE_BYTES = 256 * 1024


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector off while a big result is built.

    Decoding and parsing allocate a container per word and vertex but create no
    cycles; with the collector on, its repeated passes over the growing tree
    take about half the time. Only re-enables it if it was on at the start.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _decode(body: object, source: str | None, what: str) -> Any:
    """JSON text to a fresh object; anything else to a deep copy of it as plain JSON."""
    where = f"{source}: " if source else ""
    try:
        if isinstance(body, bytes | bytearray | memoryview | str):
            return orjson.loads(body)
        if isinstance(body, Mapping) and type(body) is not dict:
            body = dict(body)
        return orjson.loads(orjson.dumps(body))
    except orjson.JSONDecodeError as exc:
        raise ResponseValidationError(f"{where}{what} is not JSON: {exc}", body=body) from None
    except TypeError as exc:  # orjson.JSONEncodeError: a value JSON cannot hold
        raise ResponseValidationError(f"{where}{what} is not plain JSON data: {exc}") from None


def _message(source: str | None, exc: _Invalid) -> str:
    where = f"{source}: " if source else ""
    return f"{where}{exc.where}: {exc.reason}"


def _what(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _is_live(data: dict[str, Any]) -> bool:
    """Whether a result is in the live shape (`apiVersion`, `metadata.pages`, pixel boxes)."""
    if any(key in data for key in _LIVE_TOP):
        return True
    metadata = data.get("metadata")
    return type(metadata) is dict and "pages" in metadata


def _parse_result(data: Any) -> OCRResult:
    if type(data) is not dict:
        raise _Invalid("body", f"is not a JSON object (got {_what(data)})")
    pages_raw = data.get("pages")
    if type(pages_raw) is not list:
        reason = (
            "no 'pages'" if pages_raw is None else f"'pages' is not a list ({_what(pages_raw)})"
        )
        raise _Invalid("body", reason)
    live = _is_live(data)
    metadata = _metadata_pages(data.get("metadata")) if live else []
    pages: list[Page] = []
    words_before = 0  # the live shape counts word ids across the document
    for i, page in enumerate(pages_raw):
        meta = metadata[i] if i < len(metadata) else None
        parsed = _parse_page(page, i, meta, live, words_before if live else 0)
        pages.append(parsed)
        words_before += len(parsed.words)
    key = "modelVersion" if "modelVersion" in data else "model"
    model = data.get(key)
    if model is not None and type(model) is not str:
        raise _Invalid(key, f"is not a string ({_what(model)})")
    return OCRResult(tuple(pages), model, data)


def _metadata_pages(metadata: object) -> list[dict[str, Any]]:
    """`metadata.pages[]` in page order, the k-th entry describing the k-th page.

    Ordered by their `page` numbers, which count from 1 in an answer but may
    count from the document in a batch of it; [] where there are none.
    """
    if metadata is None:
        return []
    if type(metadata) is not dict:
        raise _Invalid("metadata", f"is not an object ({_what(metadata)})")
    entries = metadata.get("pages")
    if entries is None:
        return []
    if type(entries) is not list:
        raise _Invalid("metadata.pages", f"is not a list ({_what(entries)})")
    numbered: list[tuple[int, dict[str, Any]]] = []
    for k, entry in enumerate(entries):
        if type(entry) is not dict:
            raise _Invalid(f"metadata.pages[{k}]", f"is not an object ({_what(entry)})")
        number = entry.get("page", k + 1)
        if type(number) is not int:
            raise _Invalid(f"metadata.pages[{k}]", f"'page' is not an integer ({_what(number)})")
        numbered.append((number, entry))
    numbered.sort(key=itemgetter(0))
    return [entry for _number, entry in numbered]


def _size(page: dict[str, Any], meta: dict[str, Any] | None, key: str, where: str) -> int | None:
    """A page dimension in pixels, from the page or else its `metadata.pages` entry.

    None where absent or 0 (protobuf JSON leaves zeros out).
    """
    value = page.get(key)
    if value is None and meta is not None:
        value = meta.get(key)
        where = f"metadata.pages[page {meta.get('page')}]"
    if value is None:
        return None
    if type(value) not in _NUMBER:
        raise _Invalid(where, f"'{key}' is not a number ({_what(value)})")
    if value < 0:
        raise _Invalid(where, f"'{key}' is negative ({value})")
    return round(value) or None


def _number(value: object, key: str, where: str) -> float | None:
    if value is None:
        return None
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise _Invalid(where, f"'{key}' is not a number ({_what(value)})")


def _parse_page(
    page: object, index: int, meta: dict[str, Any] | None, live: bool, first_word_id: int
) -> Page:
    where = f"pages[{index}]"
    if type(page) is not dict:
        raise _Invalid(where, f"is not an object ({_what(page)})")
    text = page.get("text")
    if type(text) is not str:
        raise _Invalid(
            where, "no 'text'" if text is None else f"'text' is not a string ({_what(text)})"
        )
    width = _size(page, meta, "width", where)
    height = _size(page, meta, "height", where)
    confidence = _number(page.get("confidence"), "confidence", where)
    words_raw = page.get("words")
    if words_raw is None:
        words_raw = []
    elif type(words_raw) is not list:
        raise _Invalid(where, f"'words' is not a list ({_what(words_raw)})")
    if width is None or height is None:
        width = height = None
    words = _parse_words(words_raw, where, width, height, live=live, first_word_id=first_word_id)
    return Page(index, text, words, width, height, confidence)


def _parse_words(
    words_raw: list[Any],
    page_where: str,
    width: int | None,
    height: int | None,
    *,
    live: bool,
    first_word_id: int,
) -> tuple[Word, ...]:
    """The hot loop: one pass over a page's words, checking and building as it goes.

    A word without an `id` gets its place: in the page (seed shape), or in the
    document from `first_word_id` (live shape). Boxes are kept as served.
    """
    page_size = None if width is None or height is None else (width, height)
    # The shape's own box key first; a word with the other one is read too.
    key, other = ("boundingBox", "bounding_box") if live else ("bounding_box", "boundingBox")
    out: list[Word] = []
    append = out.append
    chain_from = chain.from_iterable
    for j, word in enumerate(words_raw):
        if type(word) is not dict:
            raise _Invalid(f"{page_where}.words[{j}]", f"is not an object ({_what(word)})")
        text = word.get("text")
        if type(text) is not str:
            reason = "no 'text'" if text is None else f"'text' is not a string ({_what(text)})"
            raise _Invalid(f"{page_where}.words[{j}]", reason)
        word_id = word.get("id")
        if type(word_id) is not int:
            if word_id is not None:
                where = f"{page_where}.words[{j}]"
                raise _Invalid(where, f"'id' is not an integer ({_what(word_id)})")
            word_id = first_word_id + j
        confidence = word.get("confidence")
        if confidence is not None and type(confidence) is not float:
            confidence = _number(confidence, "confidence", f"{page_where}.words[{j}]")
        box_key = key
        box = word.get(key)
        if box is None:
            box_key = other
            box = word.get(other)
            if box is None:
                raise _Invalid(f"{page_where}.words[{j}]", f"no '{key}'")
        if type(box) is dict and type(listed := box.get("vertices")) is list and listed:
            try:  # the common case, inline; _vertices has the same fast path and explains misfits
                points = tuple(map(_XY, listed))
                sum(chain_from(points))  # TypeError unless all are numbers
            except (KeyError, TypeError):
                points = _vertices(box, page_where, j, box_key)
        else:
            points = _vertices(box, page_where, j, box_key)
        in_pixels = box_key == "boundingBox"
        if in_pixels and page_size is None:
            in_pixels = _pixels_without_size(points, f"{page_where}.words[{j}].{box_key}")
        append(_new_word(word_id, text, confidence, points, page_size, in_pixels=in_pixels))
    return tuple(out)


def _pixels_without_size(points: tuple[tuple[float, float], ...], where: str) -> bool:
    """A pixel box on a page of unknown size: read as ratios if every value is in 0..1."""
    if all(0 <= c <= 1 for c in chain.from_iterable(points)):
        return False
    raise _Invalid(
        where,
        "pixel coordinates, but the page size is unknown "
        "(no 'width'/'height' on the page or in metadata.pages)",
    )


_XY = itemgetter("x", "y")


def _vertices(box: object, page_where: str, j: int, key: str) -> tuple[tuple[float, float], ...]:
    if type(box) is dict:
        vertices = box.get("vertices")
        if type(vertices) is list and vertices:
            try:
                points = tuple(map(_XY, vertices))
                sum(chain.from_iterable(points))  # TypeError unless all are numbers
            except (KeyError, TypeError):
                # A vertex without x or y (0 there), or not numbers: the slow path sorts it out.
                return _vertices_slow(vertices, f"{page_where}.words[{j}].{key}.vertices")
            return points
        reason = "no 'vertices'" if vertices is None else "'vertices' is not a non-empty list"
        raise _Invalid(f"{page_where}.words[{j}].{key}", reason)
    raise _Invalid(f"{page_where}.words[{j}]", f"'{key}' is not an object ({_what(box)})")


def _vertices_slow(vertices: list[Any], where: str) -> tuple[tuple[float, float], ...]:
    points: list[tuple[float, float]] = []
    for k, vertex in enumerate(vertices):
        if type(vertex) is not dict:
            raise _Invalid(f"{where}[{k}]", f"is not an object ({_what(vertex)})")
        x = vertex.get("x", 0)
        y = vertex.get("y", 0)
        for name, value in (("x", x), ("y", y)):
            if type(value) not in _NUMBER:
                raise _Invalid(f"{where}[{k}]", f"'{name}' is not a number ({_what(value)})")
        points.append((x, y))
    return tuple(points)


def merge_batches(
    request_id: str, total_pages: int, batches: Iterable[tuple[int, int, OCRResult]]
) -> OCRResult:
    """Join an async request's batch results into one document, as the service would answer it.

    `batches` holds `(start_page, end_page, result)` in any order, pages
    counted from 1 as in the request status. Pages are placed by `start_page`
    (never by the page ids inside a batch) and their `id`s renumbered from 0.
    The merged `raw` has the first batch's top-level keys, in its order, with:
    `pages` joined; in the live shape, word `id`s renumbered across the
    document and `metadata.pages` joined with `page` renumbered from 1;
    `numBilledPages` or `usage.pages` summed (left out unless every batch
    reported it); `text` the pages' texts joined with no separator and
    `confidence` the lowest page's, as the service computes them; the model the
    first one a batch names. Other fields come from the first batch. The batch
    results are not changed.

    Raises `IncompleteResultError`, naming the request and the pages, when a
    batch's page count differs from its range or pages 1..total_pages are not
    covered exactly once.
    """
    items = sorted(batches, key=lambda item: (item[0], item[1]))
    _check_coverage(request_id, total_pages, items)
    pages: list[Page] = []
    raw_pages: list[dict[str, Any]] = []
    meta_pages: list[dict[str, Any]] = []
    word_id = 0
    for _start, _end, result in items:
        live = _is_live(result.raw)
        meta = _metadata_pages(result.raw.get("metadata")) if live else []
        for k, (served, served_raw) in enumerate(
            zip(result.pages, result.raw["pages"], strict=True)
        ):
            index = len(pages)
            page, raw_page = served, served_raw
            if live:
                page, raw_page = _renumber_words(page, raw_page, word_id)
                word_id += len(page.words)
                meta_pages.append(_meta_entry(meta[k] if k < len(meta) else None, page, index + 1))
            pages.append(page if page.index == index else dataclasses.replace(page, index=index))
            raw_pages.append(raw_page if raw_page.get("id") == index else {**raw_page, "id": index})
    raws = [result.raw for _s, _e, result in items]
    model = next((r.model for _s, _e, r in items if r.model is not None), None)
    merged: dict[str, Any] = {}
    for key, value in raws[0].items():
        if key == "pages":
            merged[key] = raw_pages
        elif key in ("model", "modelVersion"):
            merged[key] = model
        elif key == "metadata" and type(value) is dict and "pages" in value:
            merged[key] = {**value, "pages": meta_pages}
        elif key == "numBilledPages":
            billed = [r.get(key) for r in raws]
            if all(type(b) is int for b in billed):
                merged[key] = sum(billed)
        elif key == "usage" and type(value) is dict:
            counts = [r.billed_pages for _s, _e, r in items]
            if None not in counts:
                merged[key] = {**value, "pages": sum(c for c in counts if c is not None)}
        elif key == "text":
            merged[key] = "".join([page.text for page in pages])
        elif key == "confidence":
            lowest = _lowest_confidence(pages, raws)
            if lowest is not None:
                merged[key] = lowest
        else:
            merged[key] = value
    return OCRResult(tuple(pages), model, merged)


def _check_coverage(
    request_id: str, total_pages: int, items: list[tuple[int, int, OCRResult]]
) -> None:
    prefix = f"request {request_id}"
    if total_pages < 1:
        raise IncompleteResultError(f"{prefix}: total_pages is {total_pages}, nothing to merge")
    seen = bytearray(total_pages + 1)  # seen[p]: how many batches hold page p (capped at 2)
    for start, end, result in items:
        if not 1 <= start <= end <= total_pages:
            raise IncompleteResultError(
                f"{prefix}: a batch covers pages {start}-{end}, outside 1-{total_pages}"
            )
        if result.num_pages != end - start + 1:
            raise IncompleteResultError(
                f"{prefix}: the batch for pages {start}-{end} holds {result.num_pages} pages, "
                f"expected {end - start + 1}"
            )
        for p in range(start, end + 1):
            seen[p] = min(seen[p] + 1, 2)
    missing = [p for p in range(1, total_pages + 1) if not seen[p]]
    doubled = [p for p in range(1, total_pages + 1) if seen[p] > 1]
    if missing or doubled:
        problems = []
        if missing:
            problems.append(f"pages {_ranges(missing)} missing")
        if doubled:
            problems.append(f"pages {_ranges(doubled)} in more than one batch")
        raise IncompleteResultError(
            f"{prefix}: batches do not cover pages 1-{total_pages} exactly once: "
            + "; ".join(problems)
        )


def _renumber_words(
    page: Page, raw_page: dict[str, Any], first_id: int
) -> tuple[Page, dict[str, Any]]:
    """A live-shape page with its word ids counting from `first_id` (unchanged if they do)."""
    if all(word.id == first_id + j for j, word in enumerate(page.words)):
        return page, raw_page
    words = tuple([_renumbered(word, first_id + j) for j, word in enumerate(page.words)])
    raw_words = [
        raw if raw.get("id") == first_id + j else {**raw, "id": first_id + j}
        for j, raw in enumerate(raw_page.get("words") or ())
    ]
    return dataclasses.replace(page, words=words), {**raw_page, "words": raw_words}


def _meta_entry(entry: dict[str, Any] | None, page: Page, number: int) -> dict[str, Any]:
    """A page's `metadata.pages` entry, numbered `number`; made from its size if it had none."""
    if entry is None:
        entry = {"height": page.height, "page": number, "width": page.width}
    return entry if entry.get("page") == number else {**entry, "page": number}


def _lowest_confidence(pages: list[Page], raws: list[dict[str, Any]]) -> float | None:
    """The lowest page's confidence, as the service reports; else the lowest batch's."""
    found = [page.confidence for page in pages]
    if found and None not in found:
        return min(c for c in found if c is not None)
    batch = [r.get("confidence") for r in raws]
    if all(type(c) in _NUMBER for c in batch):
        return min(batch)  # type: ignore[type-var]  # checked: all numbers
    return None


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7" (input sorted)."""
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)


# --------------------------------------------------------------------------- async status


class Status(StrEnum):
    """Request and batch states the service documents.

    Status fields stay plain strings, so a state added later is kept as sent;
    compare them with these members (`status.status == Status.COMPLETED`).
    """

    SUBMITTED = "submitted"  # request
    SCHEDULED = "scheduled"  # batch
    STARTED = "started"
    RETRYING = "retrying"  # batch
    COMPLETED = "completed"
    FAILED = "failed"


_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d+))?\s*"
    r"(Z|z|[+-]\d{2}:?\d{2})?"
)


def parse_timestamp(value: str | None) -> datetime | None:
    """An ISO 8601 time as an aware datetime; None where absent or unreadable.

    Fractions past microseconds (the service sends nanoseconds) are cut; a time
    without an offset is taken as UTC.
    """
    if not value:
        return None
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        return None
    date, time, fraction, offset = match.groups()
    text = f"{date}T{time}"
    if fraction:
        text += "." + fraction[:6].ljust(6, "0")
    if offset and offset not in ("Z", "z"):
        text += offset if ":" in offset else f"{offset[:3]}:{offset[3:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """One batch of an async request: pages `start_page`..`end_page`, counted from 1.

    `download_url` (None until the batch completes) is a signed link valid for
    minutes; it is left out of the repr.
    """

    id: int
    status: str
    start_page: int
    end_page: int
    download_url: str | None = field(default=None, repr=False)
    failure_message: str = ""
    model: str | None = None
    requested_at: str | None = None
    updated_at: str | None = None

    @property
    def page_count(self) -> int:
        """`end_page - start_page + 1`."""
        return self.end_page - self.start_page + 1

    @property
    def is_completed(self) -> bool:
        """True when the batch is done and its result can be downloaded."""
        return self.status == Status.COMPLETED

    @property
    def is_failed(self) -> bool:
        """True when the batch failed (`failure_message` says why)."""
        return self.status == Status.FAILED

    @property
    def requested_datetime(self) -> datetime | None:
        """`requested_at` parsed (see `parse_timestamp`)."""
        return parse_timestamp(self.requested_at)

    @property
    def updated_datetime(self) -> datetime | None:
        """`updated_at` parsed (see `parse_timestamp`)."""
        return parse_timestamp(self.updated_at)


@dataclass(frozen=True, slots=True)
class RequestStatus:
    """One status of an async request (`GET .../requests/{id}`).

    `total_pages` is None until the service reports it; `batches` are in the
    order sent, which need not be page order. `raw` is the body as received.
    """

    id: str
    status: str
    model: str | None = None
    failure_message: str = ""
    total_pages: int | None = None
    completed_pages: int = 0
    requested_at: str | None = None
    completed_at: str | None = None
    batches: tuple[BatchStatus, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, hash=False, repr=False, compare=False)

    @property
    def is_done(self) -> bool:
        """True once the request is `completed` or `failed`."""
        return self.status in (Status.COMPLETED, Status.FAILED)

    @property
    def is_completed(self) -> bool:
        """True when the request completed."""
        return self.status == Status.COMPLETED

    @property
    def is_failed(self) -> bool:
        """True when the request failed (`failure_message` says why)."""
        return self.status == Status.FAILED

    @property
    def requested_datetime(self) -> datetime | None:
        """`requested_at` parsed (see `parse_timestamp`)."""
        return parse_timestamp(self.requested_at)

    @property
    def completed_datetime(self) -> datetime | None:
        """`completed_at` parsed (see `parse_timestamp`)."""
        return parse_timestamp(self.completed_at)


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """One entry of the request list (`GET .../requests`)."""

    id: str
    status: str
    model: str | None = None
    requested_at: str | None = None
    completed_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, hash=False, repr=False, compare=False)

    @property
    def requested_datetime(self) -> datetime | None:
        """`requested_at` parsed (see `parse_timestamp`)."""
        return parse_timestamp(self.requested_at)

    @property
    def completed_datetime(self) -> datetime | None:
        """`completed_at` parsed (see `parse_timestamp`)."""
        return parse_timestamp(self.completed_at)


def _required_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if type(value) is not str or not value:
        reason = f"no '{key}'" if value is None else f"'{key}' is not a non-empty string"
        raise _Invalid(where, reason)
    return value


def _optional_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or type(value) is str:
        return value
    raise _Invalid(where, f"'{key}' is not a string ({_what(value)})")


def _int(obj: dict[str, Any], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None or type(value) is int:
        return value
    raise _Invalid(where, f"'{key}' is not an integer ({_what(value)})")


def _required_int(obj: dict[str, Any], key: str, where: str) -> int:
    value = _int(obj, key, where)
    if value is None:
        raise _Invalid(where, f"no '{key}'")
    return value


def _parse_batch(batch: object, index: int) -> BatchStatus:
    where = f"batches[{index}]"
    if type(batch) is not dict:
        raise _Invalid(where, f"is not an object ({_what(batch)})")
    batch_id = _int(batch, "id", where)
    start = _required_int(batch, "start_page", where)
    end = _required_int(batch, "end_page", where)
    if not 1 <= start <= end:
        raise _Invalid(where, f"pages {start}-{end} are not a range counted from 1")
    return BatchStatus(
        id=index if batch_id is None else batch_id,
        status=_required_str(batch, "status", where),
        start_page=start,
        end_page=end,
        download_url=_optional_str(batch, "download_url", where) or None,
        failure_message=_optional_str(batch, "failure_message", where) or "",
        model=_optional_str(batch, "model", where),
        requested_at=_optional_str(batch, "requested_at", where),
        updated_at=_optional_str(batch, "updated_at", where),
    )


def parse_request_status(
    body: bytes | bytearray | memoryview | str | Mapping[str, Any], *, source: str | None = None
) -> RequestStatus:
    """Parse an async request's status; `ResponseValidationError` names what does not fit."""
    data = _decode(body, source, "request status")
    if source is None and type(data) is dict and type(data.get("id")) is str:
        source = f"request {data['id']}"
    try:
        if type(data) is not dict:
            raise _Invalid("body", f"is not a JSON object (got {_what(data)})")
        batches_raw = data.get("batches")
        if batches_raw is None:
            batches_raw = []
        elif type(batches_raw) is not list:
            raise _Invalid("body", f"'batches' is not a list ({_what(batches_raw)})")
        return RequestStatus(
            id=_required_str(data, "id", "body"),
            status=_required_str(data, "status", "body"),
            model=_optional_str(data, "model", "body"),
            failure_message=_optional_str(data, "failure_message", "body") or "",
            total_pages=_int(data, "total_pages", "body"),
            completed_pages=_int(data, "completed_pages", "body") or 0,
            requested_at=_optional_str(data, "requested_at", "body"),
            completed_at=_optional_str(data, "completed_at", "body"),
            batches=tuple([_parse_batch(b, i) for i, b in enumerate(batches_raw)]),
            raw=data,
        )
    except _Invalid as exc:
        raise ResponseValidationError(
            _message(source or "request status", exc), body=data
        ) from None


def parse_request_list(
    body: bytes | bytearray | memoryview | str | Mapping[str, Any] | list[Any],
    *,
    source: str | None = None,
) -> tuple[RequestSummary, ...]:
    """Parse the request list (`{"requests": [...]}`, or a bare list) in the order sent."""
    data = _decode(body, source, "request list")
    try:
        entries = data.get("requests") if type(data) is dict else data
        if type(entries) is not list:
            if type(data) is dict:
                raise _Invalid(
                    "body", "no 'requests'" if entries is None else "'requests' is not a list"
                )
            raise _Invalid("body", f"is not a JSON object (got {_what(data)})")
        out: list[RequestSummary] = []
        for i, entry in enumerate(entries):
            where = f"requests[{i}]"
            if type(entry) is not dict:
                raise _Invalid(where, f"is not an object ({_what(entry)})")
            out.append(
                RequestSummary(
                    id=_required_str(entry, "id", where),
                    status=_required_str(entry, "status", where),
                    model=_optional_str(entry, "model", where),
                    requested_at=_optional_str(entry, "requested_at", where),
                    completed_at=_optional_str(entry, "completed_at", where),
                    raw=entry,
                )
            )
        return tuple(out)
    except _Invalid as exc:
        raise ResponseValidationError(_message(source or "request list", exc), body=data) from None
