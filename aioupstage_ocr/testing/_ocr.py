"""What the emulator "reads" from a document, and the JSON shapes it answers in.

The default shape is the live service's, key for key as in its recorded
answers (`../shared/real-ocr`): integer pixel boxes, page sizes, word ids
counting across the answer, lines joined with `" \n"`; the seed page's shape
(ratios, `usage.pages`) and two vendors' formats are the others.

The reading is deterministic: a PDF page with a text layer reads as its own
text, each word boxed where the page draws it (x from the text position and
Helvetica widths, y from the baseline and font size); any other page (images,
scanned PDF pages, office files) reads as words drawn from the document's hash
and the page number, starting `page N`, so no two pages of a document read the
same. Reading is blocking work: run it in a thread.
"""

from __future__ import annotations

import io
import logging
import math
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .._formats import Format, Inspection, detect_format, inspect_document

__all__ = [
    "DocumentContent",
    "LRUCache",
    "PageContent",
    "Word",
    "content_cache",
    "emulated_text",
    "inspect_bytes",
    "read_content",
    "render",
]

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

#: Pixels per PDF point when a PDF page is given a pixel size (150 dpi).
PDF_SCALE = 150 / 72
#: Pixel size of a page whose size cannot be told (A4 at 150 dpi, see `pdf_pixels`).
DEFAULT_PAGE_SIZE = (1240, 1755)


def pdf_pixels(points: float) -> int:
    """A PDF length in points as the service's pixels at 150 dpi: rounded up.

    The recordings show it: 596 x 842 pt pages are 1242 x 1755 px (1241.7 x 1754.2).
    """
    return math.ceil(round(points * PDF_SCALE, 6))  # round: 612 pt is 1275 px, not 1276


# Helvetica advance widths (1/1000 em) of ASCII 32..126, from the standard AFM.
_HELVETICA = (
    (278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278)
    + (556,) * 10
    + (278, 278, 584, 584, 584, 556, 1015)
    + (667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833)
    + (722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611)
    + (278, 278, 278, 469, 556, 333)
    + (556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833)
    + (556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500)
    + (334, 260, 334, 584)
)
_ASCENT, _DESCENT = 0.75, 0.22

_VOCABULARY = (
    "amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "harbor",
    "indigo", "jasper", "kernel", "lumen", "meadow", "nectar", "orbit", "prism",
    "quartz", "raven", "sierra", "timber", "umbra", "velvet", "willow", "xenon",
    "yonder", "zephyr", "anchor", "beacon", "canyon", "dune", "echo", "falcon",
    "granite", "hollow", "island", "juniper", "kestrel", "lagoon", "marble", "nimbus",
    "oasis", "pebble", "quill", "ridge", "summit", "tundra", "upland", "valley",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Word:
    """A word and its box, normalised to the page: (x0, y0) top-left, (x1, y1) bottom-right."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    confidence: float
    line: int


@dataclass(frozen=True, slots=True)
class PageContent:
    """One page as read: its number (from 1), pixel size, words and text."""

    number: int
    width: int
    height: int
    words: tuple[Word, ...]
    text: str
    confidence: float


@dataclass(frozen=True, slots=True)
class DocumentContent:
    """A whole document as read."""

    format: Format
    pages: tuple[PageContent, ...]


def inspect_bytes(data: bytes, name: str) -> Inspection | None:
    """Format and page count judged as the client's preflight does; None if unsupported.

    Raises `UnreadableDocumentError` for a corrupt or password-protected document.
    """
    stream = io.BytesIO(data)
    fmt = detect_format(stream)
    if fmt is None:
        return None
    return inspect_document(stream, fmt, name)


def read_content(data: bytes, inspection: Inspection, sha256: str) -> DocumentContent:
    """Every page of a document, as the emulator reads it."""
    if inspection.format is Format.PDF:
        try:
            return DocumentContent(inspection.format, _pdf_pages(data, sha256))
        except Exception:  # a page tree pypdf cannot walk: read the pages as scans
            log.debug("no text layer read from %s", sha256, exc_info=True)
    sizes = list(inspection.page_sizes)
    count = max(1, inspection.pages or len(sizes) or 1)
    sizes += [DEFAULT_PAGE_SIZE] * (count - len(sizes))
    pages = tuple(_derived_page(sha256, n, *sizes[n - 1]) for n in range(1, count + 1))
    return DocumentContent(inspection.format, pages)


def emulated_text(data: bytes, name: str = "document") -> list[str]:
    """The text the emulator answers for each page of `data` (for tests to compare).

    Raises `UnsupportedFormatError` or `UnreadableDocumentError` as the emulator refuses.
    """
    import hashlib  # noqa: PLC0415 - only this helper needs it

    from .._exceptions import UnsupportedFormatError  # noqa: PLC0415

    inspection = inspect_bytes(data, name)
    if inspection is None:
        raise UnsupportedFormatError(name, "not a format the service takes")
    content = read_content(data, inspection, hashlib.sha256(data).hexdigest())
    return [page.text for page in content.pages]


# -- reading -----------------------------------------------------------------


def _page_from_words(number: int, width: int, height: int, words: list[Word]) -> PageContent:
    lines: dict[int, list[str]] = {}
    for word in words:
        lines.setdefault(word.line, []).append(word.text)
    text = " \n".join(" ".join(line) for line in lines.values())  # the service's line join
    confidence = round(sum(w.confidence for w in words) / len(words), 4) if words else 0.0
    return PageContent(number, width, height, tuple(words), text, confidence)


def _derived_page(sha256: str, number: int, width: int, height: int) -> PageContent:
    rng = random.Random(f"{sha256}:{number}")
    tokens = ["page", str(number), *(rng.choice(_VOCABULARY) for _ in range(10))]
    words: list[Word] = []
    per_line, char_w, line_h = 6, 0.012, 0.04
    x = 0.08
    for index, token in enumerate(tokens):
        line, column = divmod(index, per_line)
        if column == 0:
            x = 0.08
        y0 = 0.06 + line * line_h * 1.5
        x1 = min(1.0, x + char_w * len(token))
        confidence = round(rng.uniform(0.9, 0.999), 4)
        words.append(Word(token, round(x, 4), round(y0, 4), round(x1, 4), round(y0 + line_h, 4),
                          confidence, line))  # fmt: skip
        x = x1 + char_w
    return _page_from_words(number, width, height, words)


def _pdf_pages(data: bytes, sha256: str) -> tuple[PageContent, ...]:
    from pypdf import PdfReader  # noqa: PLC0415 - imported on first use: it costs ~100 ms

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        reader.decrypt("")
    pages: list[PageContent] = []
    for number, page in enumerate(reader.pages, start=1):
        width_pt, height_pt = 612.0, 792.0
        try:
            box = page.mediabox
            left, bottom = float(box.left), float(box.bottom)
            width_pt, height_pt = abs(float(box.width)) or 612.0, abs(float(box.height)) or 792.0
            box_pt = (left, bottom, width_pt, height_pt)
            words = _text_layer_words(page, box_pt, f"{sha256}:{number}:conf")
        except Exception:  # pypdf fails many ways on odd pages: read such a page as a scan
            log.debug("no text layer read from page %d of %s", number, sha256, exc_info=True)
            words = []
        width, height = pdf_pixels(width_pt), pdf_pixels(height_pt)
        if words:
            pages.append(_page_from_words(number, width, height, words))
        else:
            pages.append(_derived_page(sha256, number, width, height))
    return tuple(pages)


Matrix = Sequence[float]


def _mult(m: Matrix, n: Matrix) -> tuple[float, ...]:
    return (
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    )


def _char_width(char: str) -> float:
    code = ord(char)
    return (_HELVETICA[code - 32] if 32 <= code <= 126 else 556) / 1000


def _text_layer_words(page: Any, box: tuple[float, float, float, float], seed: str) -> list[Word]:
    left, bottom, width, height = box
    fragments: list[tuple[str, float, float, float, float]] = []

    def visit(text: str, cm: Matrix, tm: Matrix, _font: object, size: float) -> None:
        if text.strip():
            m = _mult(tm, cm)
            scale_x = math.hypot(m[0], m[1]) * (size or 1.0)
            scale_y = math.hypot(m[2], m[3]) * (size or 1.0)
            fragments.append((text, m[4], m[5], scale_x or 10.0, scale_y or 10.0))

    page.extract_text(visitor_text=visit)
    rng = random.Random(seed)
    words: list[Word] = []
    line, last_baseline = -1, math.inf

    def norm_x(x: float) -> float:
        return round(min(1.0, max(0.0, (x - left) / width)), 4)

    def norm_y(y: float) -> float:
        return round(min(1.0, max(0.0, 1 - (y - bottom) / height)), 4)

    for text, x_start, baseline_start, size_x, size_y in fragments:
        for row, row_text in enumerate(text.split("\n")):
            baseline = baseline_start - row * 1.2 * size_y
            if abs(baseline - last_baseline) > 0.5 * size_y:
                line += 1
                last_baseline = baseline
            x, start, current = x_start, 0.0, ""
            for char in row_text + " ":
                if char.isspace():
                    if current:
                        top, low = baseline + _ASCENT * size_y, baseline - _DESCENT * size_y
                        confidence = round(rng.uniform(0.93, 0.999), 4)
                        words.append(Word(current, norm_x(start), norm_y(top), norm_x(x),
                                          norm_y(low), confidence, line))  # fmt: skip
                        current = ""
                elif not current:
                    start, current = x, char
                else:
                    current += char
                x += _char_width(char) * size_x
    return words


# -- shapes ------------------------------------------------------------------


def _vertices(word: Word, width: int = 1, height: int = 1, *, pixels: bool = False) -> list[Any]:
    corners = ((word.x0, word.y0), (word.x1, word.y0), (word.x1, word.y1), (word.x0, word.y1))
    if pixels:
        return [{"x": round(x * width), "y": round(y * height)} for x, y in corners]
    return [{"x": x, "y": y} for x, y in corners]


def render(
    pages: Sequence[PageContent],
    *,
    model: str,
    shape: str = "live",
    schema: str | None = None,
    first_id: int = 0,
    first_word_id: int = 0,
) -> dict[str, Any]:
    """A result covering `pages`, page ids counting from `first_id`.

    In the live `shape` (the service's recorded answers), or the `seed` one,
    or a vendor's format when `schema` is `clova` or `google`. Live word ids
    count across the result from `first_word_id`; seed word ids within a page.
    """
    if schema == "clova":
        return _render_clova(pages, first_id)
    if schema == "google":
        return _render_google(pages)
    if shape == "live":
        return _render_live(pages, model, first_id, first_word_id)
    return {
        "api": "2.0",
        "model": model,
        "pages": [
            {
                "id": first_id + index,
                "text": page.text,
                "words": [
                    {
                        "id": word_id,
                        "text": word.text,
                        "bounding_box": {"vertices": _vertices(word)},
                        "confidence": word.confidence,
                    }
                    for word_id, word in enumerate(page.words)
                ],
            }
            for index, page in enumerate(pages)
        ],
        "usage": {"pages": len(pages)},
    }


def _render_live(
    pages: Sequence[PageContent], model: str, first_id: int, first_word_id: int
) -> dict[str, Any]:
    """The live service's shape, keys in its order (as `../shared/real-ocr` records it)."""
    rendered = []
    word_id = first_word_id
    for index, page in enumerate(pages):
        words = []
        for word in page.words:
            words.append(
                {
                    "boundingBox": {
                        "vertices": _vertices(word, page.width, page.height, pixels=True)
                    },
                    "confidence": word.confidence,
                    "id": word_id,
                    "text": word.text,
                }
            )
            word_id += 1
        rendered.append(
            {
                "confidence": page.confidence,
                "height": page.height,
                "id": first_id + index,
                "text": page.text,
                "width": page.width,
                "words": words,
            }
        )
    return {
        "apiVersion": "1.1",
        "confidence": min([page.confidence for page in pages], default=0.0),  # the lowest page's
        "metadata": {
            "pages": [
                {"height": page.height, "page": first_id + index + 1, "width": page.width}
                for index, page in enumerate(pages)
            ]
        },
        "mimeType": "multipart/form-data",  # what the service records: the upload's type
        "modelVersion": model,
        "numBilledPages": len(pages),
        "pages": rendered,
        "stored": False,
        "text": "".join([page.text for page in pages]),  # the service joins pages so
    }


def _render_clova(pages: Sequence[PageContent], first_id: int) -> dict[str, Any]:
    images = []
    for index, page in enumerate(pages):
        fields = [
            {
                "valueType": "ALL",
                "inferText": word.text,
                "inferConfidence": word.confidence,
                "type": "NORMAL",
                "lineBreak": next_word is None or next_word.line != word.line,
                "boundingPoly": {"vertices": _vertices(word, page.width, page.height, pixels=True)},
            }
            for word, next_word in zip(page.words, (*page.words[1:], None), strict=True)
        ]
        images.append(
            {
                "uid": f"page-{first_id + index + 1}",
                "name": f"page-{first_id + index + 1}",
                "inferResult": "SUCCESS",
                "message": "SUCCESS",
                "convertedImageInfo": {
                    "width": page.width,
                    "height": page.height,
                    "pageIndex": first_id + index,
                },
                "fields": fields,
            }
        )
    return {"version": "V2", "requestId": "emulator", "timestamp": 0, "images": images}


def _render_google(pages: Sequence[PageContent]) -> dict[str, Any]:
    responses = []
    for page in pages:
        full = {
            "locale": "und",
            "description": page.text,
            "boundingPoly": {
                "vertices": [
                    {"x": 0, "y": 0},
                    {"x": page.width, "y": 0},
                    {"x": page.width, "y": page.height},
                    {"x": 0, "y": page.height},
                ]
            },
        }
        words = [
            {
                "description": word.text,
                "boundingPoly": {"vertices": _vertices(word, page.width, page.height, pixels=True)},
            }
            for word in page.words
        ]
        responses.append(
            {
                "textAnnotations": [full, *words],
                "fullTextAnnotation": {
                    "text": page.text,
                    "pages": [
                        {
                            "width": page.width,
                            "height": page.height,
                            "confidence": page.confidence,
                        }
                    ],
                },
            }
        )
    return {"responses": responses}


class LRUCache(Generic[K, V]):
    """A thread-safe mapping that drops least recently used items past `max_cost`.

    Shared by every emulator in the process (each may run its own loop and thread).
    """

    def __init__(self, max_cost: int, cost: Callable[[V], int] = lambda _: 1) -> None:
        self._max_cost = max_cost
        self._cost = cost
        self._total = 0
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._total += self._cost(value)
            while self._total > self._max_cost and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._total -= self._cost(dropped)


def content_cache(max_words: int = 300_000) -> LRUCache[str, DocumentContent]:
    """A cache of documents as read, by sha256, bounded by their words."""
    return LRUCache(max_words, lambda c: sum(len(page.words) + 1 for page in c.pages))
