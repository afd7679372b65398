"""Typed results and statuses, parsed from either documented response shape.

```python
result = parse_result(body)          # bytes, str or a mapping; either shape
result.text, result.pages[0].words[0].bbox
result.save("scan.ocr.json")         # the sync shape, atomically

status = parse_request_status(body)  # GET .../requests/{id}
merged = merge_batches(status.id, status.total_pages, [(1, 10, r1), (11, 12, r2)])
```

The service documents two shapes for one result (see `upstage-ocr-api.md`):

- the sync shape: `api`, `model`, `pages[].words[].bounding_box.vertices` as
  ratios of the page size, `usage.pages`;
- the other shape: `apiVersion`, `modelVersion`, `numBilledPages`, top-level
  `text` and `confidence`, `metadata.pages[]` (`page` from 1, `width`,
  `height`), pages with `width`/`height`/`confidence`, and words whose
  `boundingBox.vertices` are pixels.

Both parse to the same `OCRResult`, whose `raw` is always the sync shape:
the other shape's names are mapped (`numBilledPages` to `usage.pages`), pixel
vertices are divided by the page size, `metadata.pages` entries move onto
their page, the top-level `text` is dropped (it is the pages' text), and every
unknown field is kept where it was. A vertex that lacks `x` or `y` has 0 there
(protobuf JSON leaves zeros out). Pixel vertices on a page of unknown size are
an error, unless every coordinate lies in 0..1, which is then read as a ratio.

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
_ALT_TOP = ("apiVersion", "modelVersion", "numBilledPages")


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
    """One recognised word.

    `vertices` are ratios of the page size (0..1), usually four points clockwise
    from top-left. `page_size` is the page's `(width, height)` in pixels where
    known; `pixel_vertices` and `pixel_bbox` are worked out from it on access,
    so parsing pays nothing for them. `id` counts from 0 within its page.
    """

    id: int
    text: str
    confidence: float | None
    vertices: tuple[tuple[float, float], ...]
    page_size: tuple[int, int] | None = None

    @property
    def bbox(self) -> BoundingBox:
        """The box around `vertices`, in ratios of the page size."""
        return _box(self.vertices)

    @property
    def pixel_vertices(self) -> tuple[tuple[int, int], ...] | None:
        """`vertices` in pixels (rounded), or None where the page size is unknown."""
        if self.page_size is None:
            return None
        width, height = self.page_size
        return tuple([(round(x * width), round(y * height)) for x, y in self.vertices])

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
_set_word_vertices = Word.__dict__["vertices"].__set__
_set_word_page_size = Word.__dict__["page_size"].__set__


def _new_word(
    word_id: int,
    text: str,
    confidence: float | None,
    vertices: tuple[tuple[float, float], ...],
    page_size: tuple[int, int] | None,
) -> Word:
    """`Word(...)`, fast: the same object, built by setting each slot."""
    word: Word = _new_object(Word)
    _set_word_id(word, word_id)
    _set_word_text(word, text)
    _set_word_confidence(word, confidence)
    _set_word_vertices(word, vertices)
    _set_word_page_size(word, page_size)
    return word


@dataclass(frozen=True, slots=True)
class Page:
    """One page: `index` from 0 in its document; size in pixels where known."""

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

    `raw` is the whole result as JSON in the sync shape (unknown fields kept);
    treat it as read-only, like the rest of the object.
    """

    pages: tuple[Page, ...]
    model: str | None
    raw: dict[str, Any] = field(hash=False, repr=False)

    def __repr__(self) -> str:
        return f"<OCRResult {self.num_pages} pages, model={self.model!r}, text={self.text[:40]!r}>"

    @property
    def text(self) -> str:
        """The pages' text, joined with one `"\\n"` between pages."""
        return "\n".join([page.text for page in self.pages])

    @property
    def num_pages(self) -> int:
        """How many pages the result holds."""
        return len(self.pages)

    @property
    def usage_pages(self) -> int | None:
        """The billed page count (`usage.pages`), where the service reported one."""
        usage = self.raw.get("usage")
        pages = usage.get("pages") if type(usage) is dict else None
        return pages if type(pages) is int else None

    def to_json(self, *, indent: bool = False) -> bytes:
        """`raw` as JSON bytes (UTF-8)."""
        return orjson.dumps(self.raw, option=orjson.OPT_INDENT_2 if indent else 0)

    def save(self, path: str | os.PathLike[str], *, indent: bool = False) -> Path:
        """Write `to_json()` to `path` atomically; return the absolute path written."""
        return atomic_write_bytes(path, self.to_json(indent=indent))

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
    """Parse an OCR result in either documented shape into an `OCRResult`.

    `body` is the JSON text, or an already decoded mapping (copied first, so the
    caller's object is never changed; passing the bytes is faster). `source`
    (a file name, a request id and batch) prefixes error messages.
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
    """JSON text to a fresh object; anything else to a deep copy (the parse edits in place)."""
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


def _parse_result(data: Any) -> OCRResult:
    if type(data) is not dict:
        raise _Invalid("body", f"is not a JSON object (got {_what(data)})")
    pages_raw = data.get("pages")
    if type(pages_raw) is not list:
        reason = (
            "no 'pages'" if pages_raw is None else f"'pages' is not a list ({_what(pages_raw)})"
        )
        raise _Invalid("body", reason)
    metadata_raw = data.get("metadata")
    other_shape = any(key in data for key in _ALT_TOP) or (
        type(metadata_raw) is dict and "pages" in metadata_raw
    )
    metadata = _metadata_pages(metadata_raw) if other_shape else {}
    pages = tuple([_parse_page(page, i, metadata.get(i + 1)) for i, page in enumerate(pages_raw)])
    if other_shape:
        data = _to_sync_top(data)
    model = data.get("model")
    if model is not None and type(model) is not str:
        raise _Invalid("model", f"is not a string ({_what(model)})")
    return OCRResult(pages, model, data)


def _metadata_pages(metadata: object) -> dict[int, dict[str, Any]]:
    """`metadata.pages[]` by page number (from 1); {} where there is none."""
    if metadata is None:
        return {}
    if type(metadata) is not dict:
        raise _Invalid("metadata", f"is not an object ({_what(metadata)})")
    entries = metadata.get("pages")
    if entries is None:
        return {}
    if type(entries) is not list:
        raise _Invalid("metadata.pages", f"is not a list ({_what(entries)})")
    out: dict[int, dict[str, Any]] = {}
    for k, entry in enumerate(entries):
        if type(entry) is not dict:
            raise _Invalid(f"metadata.pages[{k}]", f"is not an object ({_what(entry)})")
        number = entry.get("page", k + 1)
        if type(number) is not int:
            raise _Invalid(f"metadata.pages[{k}]", f"'page' is not an integer ({_what(number)})")
        out[number] = entry
    return out


def _to_sync_top(data: dict[str, Any]) -> dict[str, Any]:
    """The other shape's top level, renamed to the sync shape's (unknown fields kept)."""
    out: dict[str, Any] = {}
    api = data["api"] if "api" in data else data.get("apiVersion")
    if api is not None:
        out["api"] = api
    model = data["model"] if "model" in data else data.get("modelVersion")
    if model is not None:
        out["model"] = model
    out["pages"] = data["pages"]
    usage = data.get("usage")
    if usage is None and data.get("numBilledPages") is not None:
        usage = {"pages": data["numBilledPages"]}
    if usage is not None:
        out["usage"] = usage
    for key, value in data.items():
        if key in out or key in _ALT_TOP or key in ("api", "model", "usage", "text"):
            continue
        if key == "metadata" and type(value) is dict:
            rest = {k: v for k, v in value.items() if k != "pages"}  # pages moved onto pages
            if rest:
                out["metadata"] = rest
            continue
        out[key] = value
    return out


def _size(page: dict[str, Any], key: str, where: str) -> int | None:
    """A page dimension in pixels; None where absent or 0 (protobuf JSON leaves zeros out)."""
    value = page.get(key)
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


def _parse_page(page: object, index: int, meta: dict[str, Any] | None) -> Page:
    where = f"pages[{index}]"
    if type(page) is not dict:
        raise _Invalid(where, f"is not an object ({_what(page)})")
    if meta:
        for key, value in meta.items():
            if key != "page" and page.get(key) is None:
                page[key] = value
    text = page.get("text")
    if type(text) is not str:
        raise _Invalid(
            where, "no 'text'" if text is None else f"'text' is not a string ({_what(text)})"
        )
    if page.get("id") is None:
        page["id"] = index
    width = _size(page, "width", where)
    height = _size(page, "height", where)
    confidence = _number(page.get("confidence"), "confidence", where)
    words_raw = page.get("words")
    if words_raw is None:
        page["words"] = words_raw = []
    elif type(words_raw) is not list:
        raise _Invalid(where, f"'words' is not a list ({_what(words_raw)})")
    if width is None or height is None:
        width = height = None
    words = _parse_words(words_raw, where, width, height)
    return Page(index, text, words, width, height, confidence)


def _parse_words(
    words_raw: list[Any], page_where: str, width: int | None, height: int | None
) -> tuple[Word, ...]:
    """The hot loop: one pass over a page's words, checking and building as it goes."""
    page_size = None if width is None or height is None else (width, height)
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
            word["id"] = word_id = j
        confidence = word.get("confidence")
        if confidence is not None and type(confidence) is not float:
            confidence = _number(confidence, "confidence", f"{page_where}.words[{j}]")
        box = word.get("bounding_box")
        if type(box) is dict and type(listed := box.get("vertices")) is list and listed:
            try:  # the common case, inline; _vertices has the same fast path and explains misfits
                vertices = tuple(map(_XY, listed))
                sum(chain_from(vertices))  # TypeError unless all are numbers
            except (KeyError, TypeError):
                vertices = _vertices(box, page_where, j, "bounding_box")
        elif box is not None:
            vertices = _vertices(box, page_where, j, "bounding_box")
        else:
            vertices = _pixel_vertices(word, page_where, j, page_size)
        append(_new_word(word_id, text, confidence, vertices, page_size))
    return tuple(out)


def _pixel_vertices(
    word: dict[str, Any], page_where: str, j: int, page_size: tuple[int, int] | None
) -> tuple[tuple[float, float], ...]:
    """The other shape's `boundingBox` (pixels) as ratios; rewrites the word to the sync shape."""
    box = word.get("boundingBox")
    if box is None:
        raise _Invalid(f"{page_where}.words[{j}]", "no 'bounding_box'")
    points = _vertices(box, page_where, j, "boundingBox")
    if page_size is not None:
        width, height = page_size
        vertices = tuple([(x / width, y / height) for x, y in points])
    elif all(0 <= c <= 1 for c in chain.from_iterable(points)):
        vertices = points
    else:
        raise _Invalid(
            f"{page_where}.words[{j}].boundingBox",
            "pixel coordinates, but the page size is unknown "
            "(no 'width'/'height' on the page or in metadata.pages)",
        )
    new_box = {k: v for k, v in box.items() if k != "vertices"}
    new_box["vertices"] = [{"x": x, "y": y} for x, y in vertices]
    del word["boundingBox"]
    word["bounding_box"] = new_box
    return vertices


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
    """Join an async request's batch results into one document.

    `batches` holds `(start_page, end_page, result)` in any order, pages
    counted from 1 as in the request status. Pages are placed by `start_page`
    (never by the page ids inside a batch), renumbered from 0; `usage.pages` is
    the sum of the batches' (left out unless every batch reported it); the
    model is the first one a batch names. Other top-level fields come from the
    first batch, except `confidence`, which described that batch only. The
    batch results are not changed.

    Raises `IncompleteResultError`, naming the request and the pages, when a
    batch's page count differs from its range or pages 1..total_pages are not
    covered exactly once.
    """
    items = sorted(batches, key=lambda item: (item[0], item[1]))
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

    pages: list[Page] = []
    raw_pages: list[dict[str, Any]] = []
    for _start, _end, result in items:
        for page, raw_page in zip(result.pages, result.raw["pages"], strict=True):
            index = len(pages)
            pages.append(page if page.index == index else dataclasses.replace(page, index=index))
            raw_pages.append(raw_page if raw_page.get("id") == index else {**raw_page, "id": index})
    first = items[0][2].raw
    model = next((r.model for _s, _e, r in items if r.model is not None), None)
    usages = [r.usage_pages for _s, _e, r in items]
    merged: dict[str, Any] = {}
    if "api" in first:
        merged["api"] = first["api"]
    if model is not None:
        merged["model"] = model
    merged["pages"] = raw_pages
    if None not in usages:
        merged["usage"] = {**first["usage"], "pages": sum(u for u in usages if u is not None)}
    for key, value in first.items():
        if key not in merged and key not in ("model", "usage", "confidence"):
            merged[key] = value
    return OCRResult(tuple(pages), model, merged)


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
