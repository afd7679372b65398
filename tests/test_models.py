"""Result and status models: both response shapes, validation, merging, saving."""

from __future__ import annotations

import copy
import functools
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioupstage_ocr import (
    BatchStatus,
    BoundingBox,
    IncompleteResultError,
    OCRResult,
    Page,
    RequestStatus,
    ResponseValidationError,
    Status,
    Word,
    merge_batches,
    parse_request_list,
    parse_request_status,
    parse_result,
)
from aioupstage_ocr._models import parse_timestamp
from aioupstage_ocr.testing._recordings import cut_answer


def _box(points: list[tuple[float, float]]) -> dict[str, Any]:
    return {"vertices": [{"x": x, "y": y} for x, y in points]}


# The same two-page result in both shapes, written out by hand. Page 1 is
# 1000x2000 px, page 2 is 800x600 px (the live shape gives page 2's size only in
# metadata.pages). Ratios are exactly pixels / size. Word ids count across the
# document in the live shape, within each page in the seed shape.
LIVE_SHAPE: dict[str, Any] = {
    "apiVersion": "1.1",
    "confidence": 0.96,
    "metadata": {
        "pages": [
            {"height": 2000, "page": 1, "width": 1000},
            {"height": 600, "page": 2, "width": 800},
        ]
    },
    "modelVersion": "ocr-250904",
    "numBilledPages": 2,
    "pages": [
        {
            "confidence": 0.98,
            "height": 2000,
            "id": 0,
            "text": "Invoice 2024-117 \nTotal",
            "width": 1000,
            "words": [
                {
                    "boundingBox": _box([(120, 100), (250, 100), (250, 160), (120, 160)]),
                    "confidence": 0.99,
                    "id": 0,
                    "text": "Invoice",
                },
                {
                    "boundingBox": _box([(300, 100), (470, 100), (470, 160), (300, 160)]),
                    "confidence": 0.97,
                    "id": 1,
                    "text": "2024-117",
                },
                {
                    "boundingBox": _box([(120, 560), (250, 560), (250, 620), (120, 620)]),
                    "confidence": 0.98,
                    "id": 2,
                    "text": "Total",
                },
            ],
        },
        {
            "confidence": 0.96,
            "id": 1,
            "text": "Thank you",
            "words": [
                {
                    "boundingBox": _box([(80, 60), (400, 60), (400, 120), (80, 120)]),
                    "confidence": 0.96,
                    "id": 3,
                    "text": "Thank",
                },
                {
                    "boundingBox": _box([(80, 90), (400, 90), (400, 120), (80, 120)]),
                    "id": 4,
                    "text": "you",
                },
            ],
        },
    ],
    "text": "Invoice 2024-117 \nTotalThank you",
}

# The same content in the seed shape, its pages carrying their sizes and
# confidences (the seed page's own example has neither: see _documented_seed).
SEED_SHAPE: dict[str, Any] = {
    "api": "2.0",
    "model": "ocr-250904",
    "pages": [
        {
            "id": 0,
            "text": "Invoice 2024-117 \nTotal",
            "width": 1000,
            "height": 2000,
            "confidence": 0.98,
            "words": [
                {
                    "id": 0,
                    "text": "Invoice",
                    "bounding_box": _box([(0.12, 0.05), (0.25, 0.05), (0.25, 0.08), (0.12, 0.08)]),
                    "confidence": 0.99,
                },
                {
                    "id": 1,
                    "text": "2024-117",
                    "bounding_box": _box([(0.3, 0.05), (0.47, 0.05), (0.47, 0.08), (0.3, 0.08)]),
                    "confidence": 0.97,
                },
                {
                    "id": 2,
                    "text": "Total",
                    "bounding_box": _box([(0.12, 0.28), (0.25, 0.28), (0.25, 0.31), (0.12, 0.31)]),
                    "confidence": 0.98,
                },
            ],
        },
        {
            "id": 1,
            "text": "Thank you",
            "width": 800,
            "height": 600,
            "confidence": 0.96,
            "words": [
                {
                    "id": 0,
                    "text": "Thank",
                    "bounding_box": _box([(0.1, 0.1), (0.5, 0.1), (0.5, 0.2), (0.1, 0.2)]),
                    "confidence": 0.96,
                },
                {
                    "id": 1,
                    "text": "you",
                    "bounding_box": _box([(0.1, 0.15), (0.5, 0.15), (0.5, 0.2), (0.1, 0.2)]),
                },
            ],
        },
    ],
    "usage": {"pages": 2},
}


def _documented_seed() -> dict[str, Any]:
    """SEED_SHAPE trimmed to exactly the fields the seed page's example shows."""
    body = copy.deepcopy(SEED_SHAPE)
    for page in body["pages"]:
        del page["width"], page["height"], page["confidence"]
    return body


# --------------------------------------------------------------------------- both shapes


def test_both_shapes_read_alike() -> None:
    """The live and the seed shape of one content give the same typed pages and words."""
    live = parse_result(orjson.dumps(LIVE_SHAPE))
    seed = parse_result(orjson.dumps(SEED_SHAPE))
    for one in (live, seed):
        assert one.model == "ocr-250904"
        assert one.billed_pages == 2
        assert one.num_pages == 2
    assert live.raw == LIVE_SHAPE
    assert seed.raw == SEED_SHAPE
    for a, b in zip(live.pages, seed.pages, strict=True):
        assert (a.index, a.text, a.width, a.height, a.confidence) == (
            b.index, b.text, b.width, b.height, b.confidence
        )  # fmt: skip
        for x, y in zip(a.words, b.words, strict=True):
            assert (x.text, x.confidence, x.vertices, x.pixel_vertices, x.bbox) == (
                y.text, y.confidence, y.vertices, y.pixel_vertices, y.bbox
            )  # fmt: skip
    assert [w.id for p in live.pages for w in p.words] == [0, 1, 2, 3, 4]
    assert [w.id for p in seed.pages for w in p.words] == [0, 1, 2, 0, 1]
    assert live.text == LIVE_SHAPE["text"] == "Invoice 2024-117 \nTotalThank you"
    assert seed.text == live.text  # no top-level text: the pages' joined as the service does


def test_live_shape_details() -> None:
    """Pixels are kept as served; sizes come from the page or from metadata.pages."""
    result = parse_result(LIVE_SHAPE)
    first, second = result.pages
    assert (first.index, first.width, first.height, first.confidence) == (0, 1000, 2000, 0.98)
    assert (second.index, second.width, second.height, second.confidence) == (1, 800, 600, 0.96)
    invoice = first.words[0]
    pixels = ((120, 100), (250, 100), (250, 160), (120, 160))
    assert invoice == Word(0, "Invoice", 0.99, pixels, (1000, 2000), in_pixels=True)
    assert invoice.pixel_vertices == pixels
    assert all(type(c) is int for point in invoice.pixel_vertices for c in point)
    assert invoice.vertices == ((0.12, 0.05), (0.25, 0.05), (0.25, 0.08), (0.12, 0.08))
    assert invoice.bbox == BoundingBox(0.12, 0.05, 0.25, 0.08)
    assert invoice.pixel_bbox == BoundingBox(120, 100, 250, 160)
    assert second.words[1].confidence is None
    assert second.words[0].pixel_vertices == ((80, 60), (400, 60), (400, 120), (80, 120))
    assert second.words[0].id == 3
    # raw is the answer itself, not a translation of it
    assert result.raw == LIVE_SHAPE
    assert orjson.loads(result.to_json()) == LIVE_SHAPE


def test_rotated_quadrilateral_and_empty_text() -> None:
    """A rotated box stays the quadrilateral served; bbox encloses it; empty text is a word."""
    body = copy.deepcopy(LIVE_SHAPE)
    quad = [(129, 115), (139, 110), (145, 120), (135, 126)]
    body["pages"][0]["words"][1]["boundingBox"] = _box(quad)
    body["pages"][0]["words"][1]["text"] = ""
    word = parse_result(body).pages[0].words[1]
    assert word.text == ""
    assert word.pixel_vertices == tuple(quad)
    assert word.pixel_bbox == BoundingBox(129, 110, 145, 126)
    assert word.bbox == BoundingBox(0.129, 0.055, 0.145, 0.063)


def test_word_in_pixels_needs_page_size() -> None:
    """A Word built in pixels without its page's size is refused."""
    with pytest.raises(ValueError, match="page_size"):
        Word(0, "a", None, ((1, 2),), None, in_pixels=True)


def test_documented_seed_shape() -> None:
    """The seed page's example parses; without a page size there are no pixels."""
    result = parse_result(orjson.dumps(_documented_seed()))
    full = parse_result(SEED_SHAPE)
    assert result.model == "ocr-250904"
    assert [p.text for p in result.pages] == [p.text for p in full.pages]
    for page, full_page in zip(result.pages, full.pages, strict=True):
        assert (page.width, page.height, page.confidence) == (None, None, None)
        assert [w.vertices for w in page.words] == [w.vertices for w in full_page.words]
        assert all(w.pixel_vertices is None and w.pixel_bbox is None for w in page.words)


def test_seed_shape_with_size_computes_pixels() -> None:
    """A seed page that carries its size gets pixel coordinates too."""
    word = parse_result(SEED_SHAPE).pages[1].words[1]
    assert word.pixel_vertices == ((80, 90), (400, 90), (400, 120), (80, 120))
    assert word.pixel_bbox == BoundingBox(80, 90, 400, 120)


def test_unknown_fields_kept_at_every_level() -> None:
    """Fields the parser does not know survive in raw, in both shapes."""
    other = copy.deepcopy(LIVE_SHAPE)
    other["mimeType"] = "application/pdf"
    other["stored"] = False
    other["metadata"]["source"] = "upload"
    other["metadata"]["pages"][1]["dpi"] = 72
    other["pages"][0]["rotation"] = 90
    other["pages"][0]["words"][0]["kind"] = "printed"
    other["pages"][0]["words"][0]["boundingBox"]["kind"] = "quad"
    raw = parse_result(other).raw
    assert raw == other
    assert (raw["mimeType"], raw["stored"]) == ("application/pdf", False)
    assert raw["metadata"]["source"] == "upload"
    assert raw["metadata"]["pages"][1]["dpi"] == 72
    assert raw["pages"][0]["rotation"] == 90
    assert raw["pages"][0]["words"][0]["kind"] == "printed"
    assert raw["pages"][0]["words"][0]["boundingBox"]["kind"] == "quad"

    sync = _documented_seed()
    sync["request_id"] = "abc"
    sync["metadata"] = "not the other shape's metadata"
    sync["usage"]["credits"] = 3
    sync["pages"][1]["layout"] = {"columns": 1}
    sync["pages"][1]["words"][0]["lang"] = "en"
    raw = parse_result(sync).raw
    assert raw == sync
    assert raw["request_id"] == "abc"
    assert raw["metadata"] == "not the other shape's metadata"
    assert raw["usage"] == {"pages": 2, "credits": 3}
    assert raw["pages"][1]["layout"] == {"columns": 1}
    assert raw["pages"][1]["words"][0]["lang"] == "en"


def test_caller_mapping_not_changed() -> None:
    """Parsing a dict copies it: the caller's object stays as it was."""
    body = copy.deepcopy(LIVE_SHAPE)
    parse_result(body)
    assert body == LIVE_SHAPE


def test_optional_fields_may_be_missing() -> None:
    """No ids, no confidence, no words: all fine; ids are their places, raw stays as sent."""
    body = {
        "pages": [
            {"text": "a b", "words": [{"text": "a", "bounding_box": _box([(0, 0), (1, 1)])}]},
            {"text": ""},
            {"text": "x", "words": None},
        ]
    }
    result = parse_result(body)
    assert result.model is None
    assert result.billed_pages is None
    assert [p.index for p in result.pages] == [0, 1, 2]
    assert result.pages[0].words == (Word(0, "a", None, ((0, 0), (1, 1))),)
    assert result.pages[1].words == result.pages[2].words == ()
    assert result.raw == body

    live = copy.deepcopy(LIVE_SHAPE)
    for page in live["pages"]:
        for word in page["words"]:
            del word["id"]
    ids = [w.id for p in parse_result(live).pages for w in p.words]
    assert ids == [0, 1, 2, 3, 4]  # the live shape counts across the document


def test_vertex_missing_coordinate_is_zero() -> None:
    """A vertex without x or y (protobuf JSON drops zeros) has 0 there."""
    body = copy.deepcopy(LIVE_SHAPE)
    body["pages"][0]["words"][0]["boundingBox"]["vertices"][0] = {"y": 100}
    body["pages"][0]["words"][1]["boundingBox"]["vertices"][0] = {"x": 300}
    words = parse_result(body).pages[0].words
    assert words[0].pixel_vertices is not None
    assert words[0].pixel_vertices[0] == (0, 100)
    assert words[1].vertices[0] == (0.3, 0.0)


def test_metadata_numbered_from_the_document() -> None:
    """A batch's metadata.pages may count from the document: entry k is still page k's."""
    body = copy.deepcopy(LIVE_SHAPE)
    for page in body["pages"]:
        page.pop("width", None)
        page.pop("height", None)
    body["metadata"]["pages"] = [
        {"height": 600, "page": 12, "width": 800},
        {"height": 2000, "page": 11, "width": 1000},
    ]  # listed out of order, too
    result = parse_result(body)
    assert [(p.width, p.height) for p in result.pages] == [(1000, 2000), (800, 600)]
    merged = merge_batches("req-8", 2, [(1, 2, result)])
    assert merged.raw["metadata"]["pages"] == [
        {"height": 2000, "page": 1, "width": 1000},
        {"height": 600, "page": 2, "width": 800},
    ]


def test_live_shape_without_size_in_ratio_range() -> None:
    """Without a page size, boundingBox values within 0..1 are taken as ratios."""
    body = {
        "modelVersion": "ocr",
        "pages": [{"text": "a", "words": [{"text": "a", "boundingBox": _box([(0.1, 0.2)])}]}],
    }
    word = parse_result(body).pages[0].words[0]
    assert word.vertices == ((0.1, 0.2),)
    assert word.pixel_vertices is None


def test_integer_confidence_and_float_size() -> None:
    """Numbers of either JSON kind are accepted where a number is due."""
    body = copy.deepcopy(SEED_SHAPE)
    body["pages"][0]["width"] = 1000.0
    body["pages"][0]["words"][0]["confidence"] = 1
    page = parse_result(body).pages[0]
    assert page.width == 1000
    assert page.words[0].confidence == 1.0


def _set(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node = body
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()
_W = ("pages", 0, "words")


@pytest.mark.parametrize(
    ("base", "path", "value", "message"),
    [
        ("sync", ("pages",), _DELETE, "body: no 'pages'"),
        ("sync", ("pages",), {"0": {}}, "body: 'pages' is not a list (dict)"),
        ("sync", ("pages", 1), "page two", "pages[1]: is not an object (str)"),
        ("sync", ("pages", 1, "text"), _DELETE, "pages[1]: no 'text'"),
        ("sync", ("pages", 0, "words"), {}, "pages[0]: 'words' is not a list"),
        ("sync", ("pages", 0, "width"), "wide", "pages[0]: 'width' is not a number (str)"),
        ("sync", (*_W, 2), ["Total"], "pages[0].words[2]: is not an object (list)"),
        ("sync", (*_W, 2, "text"), _DELETE, "pages[0].words[2]: no 'text'"),
        ("sync", (*_W, 2, "text"), 7, "pages[0].words[2]: 'text' is not a string (int)"),
        ("sync", (*_W, 1, "id"), "1", "pages[0].words[1]: 'id' is not an integer (str)"),
        ("sync", (*_W, 1, "confidence"), "high", "words[1]: 'confidence' is not a number"),
        ("sync", (*_W, 1, "bounding_box"), _DELETE, "pages[0].words[1]: no 'bounding_box'"),
        ("other", (*_W, 1, "boundingBox"), _DELETE, "pages[0].words[1]: no 'boundingBox'"),
        ("sync", (*_W, 1, "bounding_box"), [], "words[1]: 'bounding_box' is not an object"),
        ("sync", (*_W, 1, "bounding_box", "vertices"), _DELETE, "bounding_box: no 'vertices'"),
        ("sync", (*_W, 1, "bounding_box", "vertices"), [], "'vertices' is not a non-empty list"),
        (
            "sync",
            (*_W, 1, "bounding_box", "vertices", 2),
            [0.4, 0.1],
            "pages[0].words[1].bounding_box.vertices[2]: is not an object (list)",
        ),
        (
            "sync",
            (*_W, 1, "bounding_box", "vertices", 3, "y"),
            "0.08",
            "pages[0].words[1].bounding_box.vertices[3]: 'y' is not a number (str)",
        ),
        ("sync", ("model",), 4, "model: is not a string (int)"),
        ("other", ("metadata",), [], "metadata: is not an object (list)"),
        ("other", ("metadata", "pages", 1, "page"), "2", "metadata.pages[1]: 'page' is not an"),
        (
            "other",
            ("metadata", "pages"),
            _DELETE,
            "pages[1].words[0].boundingBox: pixel coordinates, but the page size is unknown",
        ),
        (
            "other",
            ("pages", 1, "words", 1, "boundingBox", "vertices", 0, "x"),
            None,
            "pages[1].words[1].boundingBox.vertices[0]: 'x' is not a number (null)",
        ),
    ],
)
def test_validation_names_the_place(
    base: str, path: tuple[Any, ...], value: Any, message: str
) -> None:
    """A body that does not fit raises ResponseValidationError saying where."""
    body = copy.deepcopy(SEED_SHAPE if base == "sync" else LIVE_SHAPE)
    _set(body, path, value)
    with pytest.raises(ResponseValidationError) as info:
        parse_result(orjson.dumps(body), source="scan.pdf")
    assert str(info.value).startswith("scan.pdf: ")
    assert message in str(info.value)
    assert info.value.body is not None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<Error><Code>AccessDenied</Code></Error>", "result is not JSON"),
        (b"[]", "body: is not a JSON object (got list)"),
        ("null", "body: is not a JSON object (got null)"),
        ({"pages": [{"text": "a", "words": [{"text": "a", "x": {1, 2}}]}]}, "not plain JSON"),
    ],
)
def test_not_a_result_at_all(body: Any, message: str) -> None:
    """Non-JSON, non-objects and non-JSON data are validation errors too."""
    with pytest.raises(ResponseValidationError) as info:
        parse_result(body)
    assert message in str(info.value)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


_SEED_PATHS = _paths(SEED_SHAPE)
_LIVE_PATHS = _paths(LIVE_SHAPE)


@settings(max_examples=300, deadline=None)
@given(
    other=st.booleans(),
    which=st.integers(0, 10_000),
    value=st.one_of(st.just(_DELETE), _json_values),
)
def test_any_damage_is_a_validation_error_or_fine(other: bool, which: int, value: Any) -> None:
    """Replacing or deleting any node never raises anything but ResponseValidationError."""
    base, paths = (LIVE_SHAPE, _LIVE_PATHS) if other else (SEED_SHAPE, _SEED_PATHS)
    body = copy.deepcopy(base)
    path = paths[which % len(paths)]
    if value is _DELETE and isinstance(path[-1], int):
        value = None
    _set(body, path, value)
    try:
        result = parse_result(orjson.dumps(body))
    except ResponseValidationError:
        return
    assert parse_result(result.to_json()) == result


# --------------------------------------------------------------------------- save / load


def test_save_round_trips(tmp_path: Path) -> None:
    """save writes the answer as it came, atomically; load and from_json give it back."""
    result = parse_result(LIVE_SHAPE)
    written = result.save(tmp_path / "out" / "scan.ocr.json")
    assert written == (tmp_path / "out" / "scan.ocr.json").absolute()
    assert sorted(p.name for p in written.parent.iterdir()) == ["scan.ocr.json"]
    assert orjson.loads(written.read_bytes()) == result.raw == LIVE_SHAPE
    assert OCRResult.load(written) == result
    assert OCRResult.from_json(written.read_text()) == result
    assert OCRResult.from_json(result.raw) == result
    indented = result.save(tmp_path / "pretty.json", indent=True)
    assert b"\n  " in indented.read_bytes()
    assert OCRResult.load(indented) == result


def test_load_names_the_file(tmp_path: Path) -> None:
    """A bad result file fails with its path in the message."""
    bad = tmp_path / "bad.ocr.json"
    bad.write_bytes(b'{"pages": [{"words": []}]}')
    with pytest.raises(ResponseValidationError, match=r"bad\.ocr\.json: pages\[0\]: no 'text'"):
        OCRResult.load(bad)
    with pytest.raises(FileNotFoundError):
        OCRResult.load(tmp_path / "missing.json")


def test_reprs_are_short() -> None:
    """Result and page reprs summarise instead of dumping every word."""
    result = parse_result(SEED_SHAPE)
    assert (
        repr(result)
        == "<OCRResult 2 pages, model='ocr-250904', text='Invoice 2024-117 \\nTotalThank you'>"
    )
    assert repr(result.pages[1]) == "<Page 1: 2 words, 800x600, text='Thank you'>"


# --------------------------------------------------------------------------- merging


def _batch_body(start: int, end: int, *, ids_from_document: bool) -> dict[str, Any]:
    first_id = start - 1 if ids_from_document else 0
    return {
        "api": "2.0",
        "model": "ocr-250904",
        "pages": [
            {
                "id": first_id + k,
                "text": f"page {start + k}",
                "words": [
                    {
                        "id": 0,
                        "text": f"p{start + k}",
                        "bounding_box": _box([(0.1, 0.1), (0.2, 0.1), (0.2, 0.2), (0.1, 0.2)]),
                        "confidence": 0.9,
                    }
                ],
            }
            for k in range(end - start + 1)
        ],
        "usage": {"pages": end - start + 1},
    }


@functools.lru_cache(maxsize=4096)
def _batch(start: int, end: int, ids_from_document: bool = False) -> OCRResult:
    body = _batch_body(start, end, ids_from_document=ids_from_document)
    return parse_result(orjson.dumps(body))


@st.composite
def _splits(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    """N pages and a split into contiguous (start, end) batches, counted from 1."""
    n = draw(st.integers(1, 250))
    if draw(st.booleans()):
        starts = list(range(1, n + 1, 10))  # the service's 10-page batches, last one partial
    else:
        starts = [1, *sorted(draw(st.sets(st.integers(2, n), max_size=30)) if n > 1 else [])]
    ends = [s - 1 for s in starts[1:]] + [n]
    return n, list(zip(starts, ends, strict=True))


def _items(
    ranges: list[tuple[int, int]], ids_from_document: bool
) -> list[tuple[int, int, OCRResult]]:
    return [(s, e, _batch(s, e, ids_from_document)) for s, e in ranges]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split=_splits(), data=st.data(), ids_from_document=st.booleans())
def test_merge_any_split_in_any_order(
    split: tuple[int, list[tuple[int, int]]], data: st.DataObject, ids_from_document: bool
) -> None:
    """Shuffled batches of any split merge to pages 0..N-1 in order, texts matching."""
    n, ranges = split
    shuffled = data.draw(st.permutations(ranges))
    merged = merge_batches("req-1", n, _items(shuffled, ids_from_document))
    assert [p.index for p in merged.pages] == list(range(n))
    assert [p.text for p in merged.pages] == [f"page {k}" for k in range(1, n + 1)]
    assert [p.words[0].text for p in merged.pages] == [f"p{k}" for k in range(1, n + 1)]
    assert [p["id"] for p in merged.raw["pages"]] == list(range(n))
    assert [p["text"] for p in merged.raw["pages"]] == [f"page {k}" for k in range(1, n + 1)]
    assert merged.billed_pages == n
    assert merged.model == merged.raw["model"] == "ocr-250904"
    assert merged.text == "".join(f"page {k}" for k in range(1, n + 1))
    assert set(merged.raw) == {"api", "model", "pages", "usage"}  # the seed shape, still
    assert parse_result(merged.to_json()) == merged


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split=_splits(), data=st.data())
def test_merge_catches_missing_and_doubled_batches(
    split: tuple[int, list[tuple[int, int]]], data: st.DataObject
) -> None:
    """Removing a batch, repeating one, or overlapping two is an IncompleteResultError."""
    n, ranges = split
    i = data.draw(st.integers(0, len(ranges) - 1))
    start, end = ranges[i]

    gap = ranges[:i] + ranges[i + 1 :]
    with pytest.raises(IncompleteResultError, match="request req-9") as info:
        merge_batches("req-9", n, _items(data.draw(st.permutations(gap)), False))
    pages = str(start) if start == end else f"{start}-{end}"
    assert f"pages {pages} missing" in str(info.value)

    doubled = [*ranges, ranges[i]]
    with pytest.raises(IncompleteResultError, match="in more than one batch"):
        merge_batches("req-9", n, _items(data.draw(st.permutations(doubled)), False))

    if len(ranges) > 1:  # stretch one batch over its neighbour's first or last page
        overlapped = list(ranges)
        overlapped[i] = (start, end + 1) if i + 1 < len(ranges) else (start - 1, end)
        with pytest.raises(IncompleteResultError, match="in more than one batch"):
            merge_batches("req-9", n, _items(data.draw(st.permutations(overlapped)), False))


def test_merge_page_count_mismatch() -> None:
    """A batch whose result holds the wrong number of pages is named."""
    items = [(1, 10, _batch(1, 10)), (11, 15, _batch(11, 14))]
    with pytest.raises(IncompleteResultError, match=r"req-2: the batch for pages 11-15 holds 4"):
        merge_batches("req-2", 15, items)


def test_merge_range_outside_document() -> None:
    """A batch past total_pages, or a document of no pages, is refused."""
    with pytest.raises(IncompleteResultError, match="pages 21-30, outside 1-28"):
        merge_batches("req-3", 28, [(1, 20, _batch(1, 20)), (21, 30, _batch(21, 30))])
    with pytest.raises(IncompleteResultError, match="total_pages is 0"):
        merge_batches("req-3", 0, [])


def test_merge_ignores_page_ids_inside_batches() -> None:
    """Pages go by start_page even when the ids inside say otherwise."""
    body = _batch_body(1, 3, ids_from_document=False)
    for page, wrong in zip(body["pages"], [7, 2, 0], strict=True):
        page["id"] = wrong
    items = [(4, 5, _batch(4, 5, True)), (1, 3, parse_result(body))]
    merged = merge_batches("req-4", 5, items)
    assert [p.text for p in merged.pages] == [f"page {k}" for k in range(1, 6)]
    assert [p["id"] for p in merged.raw["pages"]] == [0, 1, 2, 3, 4]


def test_merge_keeps_fields_and_drops_unknown_usage() -> None:
    """The first batch's top-level fields are kept; usage is left out if a batch lacks it.

    A confidence only one batch reports, on pages that report none, is left out too.
    """
    first = _batch_body(1, 2, ids_from_document=False)
    first["request_id"] = "req-5"
    first["confidence"] = 0.5  # one batch's, so not the document's
    second = _batch_body(3, 3, ids_from_document=True)
    del second["usage"]
    second_result = parse_result(second)
    merged = merge_batches("req-5", 3, [(3, 3, second_result), (1, 2, parse_result(first))])
    assert merged.raw["request_id"] == "req-5"
    assert "confidence" not in merged.raw
    assert merged.billed_pages is None
    assert "usage" not in merged.raw
    assert list(merged.raw)[:3] == ["api", "model", "pages"]
    # the inputs are untouched
    assert [p.index for p in second_result.pages] == [0]
    assert second_result.raw["pages"][0]["id"] == 2


def test_merge_of_live_batches_is_the_whole_answer() -> None:
    """Live batches merge as the service answers at once: ids, metadata, counts, text."""
    first = copy.deepcopy(LIVE_SHAPE)
    second = copy.deepcopy(LIVE_SHAPE)  # counts its page and word ids from 0, as batches may
    merged = merge_batches("req-6", 4, [(3, 4, parse_result(second)), (1, 2, parse_result(first))])
    raw = merged.raw
    assert list(raw) == list(LIVE_SHAPE)
    assert [p["id"] for p in raw["pages"]] == [0, 1, 2, 3]
    assert [w["id"] for p in raw["pages"] for w in p["words"]] == list(range(10))
    assert [w.id for p in merged.pages for w in p.words] == list(range(10))
    assert [m["page"] for m in raw["metadata"]["pages"]] == [1, 2, 3, 4]
    assert [(m["width"], m["height"]) for m in raw["metadata"]["pages"]] == [
        (1000, 2000), (800, 600), (1000, 2000), (800, 600)
    ]  # fmt: skip
    assert raw["numBilledPages"] == merged.billed_pages == 4
    assert raw["text"] == merged.text == "".join(p["text"] for p in raw["pages"])
    assert raw["confidence"] == min(p["confidence"] for p in raw["pages"]) == 0.96
    assert raw["modelVersion"] == merged.model == "ocr-250904"
    assert [p.width for p in merged.pages] == [1000, 800, 1000, 800]
    assert merged.pages[2].words[0].pixel_vertices == merged.pages[0].words[0].pixel_vertices
    assert parse_result(merged.to_json()) == merged
    assert second == LIVE_SHAPE  # the inputs are untouched


def test_merge_of_seed_batches_keeps_seed_shape() -> None:
    """Seed batches merge, and save, in the seed shape: word ids per page, usage summed."""
    merged = merge_batches(
        "req-7", 4, [(1, 2, parse_result(SEED_SHAPE)), (3, 4, parse_result(SEED_SHAPE))]
    )
    raw = merged.raw
    assert list(raw) == ["api", "model", "pages", "usage"]
    assert raw["usage"] == {"pages": 4}
    assert [[w["id"] for w in p["words"]] for p in raw["pages"]] == [[0, 1, 2], [0, 1]] * 2
    assert all("boundingBox" not in w for p in raw["pages"] for w in p["words"])
    assert OCRResult.from_json(merged.to_json()).raw == raw


def test_real_answers_round_trip(real_ocr: Path) -> None:
    """Each real answer: load then save gives its JSON back; split and merged, it too."""
    for path in sorted(real_ocr.glob("*.response.json")):
        recording = orjson.loads(path.read_bytes())
        result = OCRResult.load(path)
        assert orjson.loads(result.to_json()) == recording, path.name
        assert orjson.loads(result.to_json(indent=True)) == recording, path.name
        assert result.model == recording["modelVersion"]
        assert result.billed_pages == recording["numBilledPages"]
        assert result.text == recording["text"]
        for page, served in zip(result.pages, recording["pages"], strict=True):
            assert (page.width, page.height) == (served["width"], served["height"])
            for word, raw_word in zip(page.words, served["words"], strict=True):
                assert word.id == raw_word["id"]
                assert word.text == raw_word["text"]
                pixels = tuple((v["x"], v["y"]) for v in raw_word["boundingBox"]["vertices"])
                assert word.pixel_vertices == pixels
        n = len(recording["pages"])
        for size in (1, 2):
            ranges = [(s, min(s + size - 1, n)) for s in range(1, n + 1, size)]
            items = [(s, e, parse_result(cut_answer(recording, s, e))) for s, e in reversed(ranges)]
            merged = merge_batches("req-real", n, items)
            assert orjson.loads(merged.to_json()) == recording, (path.name, size)


# --------------------------------------------------------------------------- async status

STATUS = {
    "id": "e7b1b3b0-1f2a-4c8e-9d5a-3f1e2d4c5b6a",
    "status": "started",
    "model": "ocr",
    "failure_message": "",
    "total_pages": 28,
    "completed_pages": 10,
    "requested_at": "2024-07-01T14:47:01.863880448Z",
    "completed_at": None,
    "batches": [
        {
            "id": 2,
            "status": "scheduled",
            "download_url": "",
            "start_page": 21,
            "end_page": 28,
        },
        {
            "id": 0,
            "model": "ocr-250904",
            "status": "completed",
            "failure_message": "",
            "download_url": "https://storage.example/b0?X-Amz-Signature=SECRETSIG",
            "start_page": 1,
            "end_page": 10,
            "requested_at": "2024-07-01T14:47:01.863880448Z",
            "updated_at": "2024-07-01T14:47:09.1Z",
        },
        {"id": 1, "status": "retrying", "download_url": "", "start_page": 11, "end_page": 20},
    ],
}


def test_request_status_parses() -> None:
    """The documented status parses; batches keep the order sent."""
    status = parse_request_status(orjson.dumps(STATUS))
    assert isinstance(status, RequestStatus)
    assert (status.id, status.status, status.model) == (STATUS["id"], "started", "ocr")
    assert (status.total_pages, status.completed_pages) == (28, 10)
    assert status.failure_message == ""
    assert not status.is_done
    assert not status.is_completed
    assert not status.is_failed
    assert status.requested_datetime == datetime(2024, 7, 1, 14, 47, 1, 863880, tzinfo=UTC)
    assert status.completed_at is None
    assert status.completed_datetime is None
    assert [b.id for b in status.batches] == [2, 0, 1]
    scheduled, done, retrying = status.batches
    assert scheduled.download_url is None
    assert scheduled.page_count == 8
    assert done.is_completed
    assert done.download_url is not None
    assert done.model == "ocr-250904"
    assert done.updated_datetime == datetime(2024, 7, 1, 14, 47, 9, 100000, tzinfo=UTC)
    assert retrying.status == Status.RETRYING
    assert not retrying.is_failed
    assert status.raw == STATUS
    assert "SECRETSIG" not in repr(status)


def test_status_tolerates_new_states_and_missing_optionals() -> None:
    """An unknown status string is kept; absent optional fields get defaults."""
    status = parse_request_status({"id": "r1", "status": "paused", "batches": None})
    assert status == RequestStatus(id="r1", status="paused")
    assert status.total_pages is None
    assert status.completed_pages == 0
    assert not status.is_done
    done = parse_request_status({"id": "r2", "status": Status.FAILED, "failure_message": "boom"})
    assert done.is_done
    assert done.is_failed
    assert done.failure_message == "boom"
    batch = parse_request_status(
        {
            "id": "r3",
            "status": "completed",
            "batches": [{"status": "new", "start_page": 1, "end_page": 1}],
        }
    ).batches[0]
    assert batch == BatchStatus(id=0, status="new", start_page=1, end_page=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "request status: body: no 'id'"),
        ({"status": 3}, "body: 'status' is not a non-empty string"),
        ({"total_pages": "28"}, "body: 'total_pages' is not an integer (str)"),
        ({"batches": {}}, "body: 'batches' is not a list (dict)"),
        ({"requested_at": 1719845221}, "body: 'requested_at' is not a string (int)"),
        ({"batches": [{"status": "started", "end_page": 3}]}, "batches[0]: no 'start_page'"),
        ({"batches": [{"start_page": 1, "end_page": 3}]}, "batches[0]: no 'status'"),
        (
            {"batches": [{"status": "started", "start_page": 5, "end_page": 3}]},
            "batches[0]: pages 5-3 are not a range counted from 1",
        ),
        ({"batches": [None]}, "batches[0]: is not an object (null)"),
    ],
)
def test_status_validation_names_the_field(change: dict[str, Any], message: str) -> None:
    """A status that does not fit names the field and the request."""
    body = {**STATUS, **change}
    with pytest.raises(ResponseValidationError) as info:
        parse_request_status(body)
    assert message in str(info.value)
    if body.get("id"):
        assert str(info.value).startswith(f"request {STATUS['id']}: ")


def test_status_not_json() -> None:
    """A status body that is not JSON names what it was meant to be."""
    with pytest.raises(ResponseValidationError, match="request r9: request status is not JSON"):
        parse_request_status(b"<html>", source="request r9")


def test_request_list() -> None:
    """The request list parses, wrapped or bare; bad entries are named."""
    body = {
        "requests": [
            {
                "id": "a",
                "status": "completed",
                "model": "ocr",
                "requested_at": "2024-07-01T14:47:01Z",
                "completed_at": "2024-07-01T14:48:00.5+09:00",
            },
            {"id": "b", "status": "submitted", "extra": 1},
        ]
    }
    items = parse_request_list(orjson.dumps(body))
    assert [(r.id, r.status) for r in items] == [("a", "completed"), ("b", "submitted")]
    assert items[0].completed_datetime == datetime(
        2024, 7, 1, 14, 48, 0, 500000, tzinfo=timezone(timedelta(hours=9))
    )
    assert items[1].raw["extra"] == 1
    assert items[1].model is None
    assert parse_request_list(body["requests"]) == items
    assert parse_request_list({"requests": []}) == ()
    with pytest.raises(ResponseValidationError, match="request list: body: no 'requests'"):
        parse_request_list({})
    with pytest.raises(ResponseValidationError, match=r"requests\[1\]: no 'status'"):
        parse_request_list({"requests": [{"id": "a", "status": "started"}, {"id": "b"}]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-07-01T14:47:01.863880448Z", datetime(2024, 7, 1, 14, 47, 1, 863880, tzinfo=UTC)),
        ("2024-07-01T14:47:01Z", datetime(2024, 7, 1, 14, 47, 1, tzinfo=UTC)),
        ("2024-07-01 14:47:01.5", datetime(2024, 7, 1, 14, 47, 1, 500000, tzinfo=UTC)),
        (
            "2024-07-01T14:47:01.123+0900",
            datetime(2024, 7, 1, 14, 47, 1, 123000, tzinfo=timezone(timedelta(hours=9))),
        ),
        ("2024-13-01T00:00:00Z", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_timestamp(text: str | None, expected: datetime | None) -> None:
    """Nanoseconds are cut, offsets kept, naive times read as UTC, junk gives None."""
    assert parse_timestamp(text) == expected


def test_models_are_frozen_and_hashable() -> None:
    """Models cannot be changed in place and can be hashed (raw left out)."""
    result = parse_result(SEED_SHAPE)
    with pytest.raises(AttributeError):
        result.model = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        result.pages[0].words[0].text = "x"  # type: ignore[misc]
    assert hash(result) == hash(parse_result(SEED_SHAPE))
    assert isinstance(result.pages[0], Page)
    assert BoundingBox(0.1, 0.2, 0.4, 0.6).width == pytest.approx(0.3)
