"""Plain text, hOCR and ALTO: read back by independent parsers, ALTO against the XSD."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioupstage_ocr import AsyncUpstageOCR, OCRResult
from aioupstage_ocr._outputs._lines import NOMINAL_SIZE, Placed, group_lines
from aioupstage_ocr.testing import make_image, make_pdf

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
REAL = SHARED / "real-ocr"
SCHEMAS = SHARED / "schemas"
REAL_NAMES = ("multi_page", "rotate", "check_box", "reciepts")


def real_result(name: str) -> OCRResult:
    """A recorded answer of the live service; skips where the shared folder is absent."""
    path = REAL / f"{name}.response.json"
    if not path.is_file():
        pytest.skip(f"no recorded answers at {REAL}")
    return OCRResult.load(path)


def answer(
    pages: list[tuple[int | None, int | None, list[tuple[str, list[tuple[int, int]]]]]],
) -> OCRResult:
    """A result in the live shape: per page its size and (text, pixel quad) words."""
    body: dict[str, Any] = {"apiVersion": "1.1", "modelVersion": "ocr-test", "pages": []}
    for index, (width, height, words) in enumerate(pages):
        page: dict[str, Any] = {
            "id": index,
            "text": " ".join(text for text, _ in words),
            "confidence": 0.9,
            "words": [
                {
                    "id": k,
                    "text": text,
                    "confidence": 0.5 + k % 5 / 10,
                    "boundingBox": {"vertices": [{"x": x, "y": y} for x, y in quad]},
                }
                for k, (text, quad) in enumerate(words)
            ],
        }
        if width is not None:
            page["width"], page["height"] = width, height
        body["pages"].append(page)
    return OCRResult.from_json(body)


def expected_words(result: OCRResult) -> list[list[tuple[str, tuple[int, int, int, int]]]]:
    """Per page: every word with text, and its pixel box, in the service's order."""
    out = []
    for page in result.pages:
        words = []
        for word in page.words:
            if not word.text.strip():
                continue
            box = word.pixel_bbox
            assert box is not None
            words.append(
                (word.text.strip(), (round(box.x0), round(box.y0), round(box.x1), round(box.y1)))
            )
        out.append(words)
    return out


# --------------------------------------------------------------------------- text


def test_text_separates_pages_with_a_form_feed() -> None:
    result = real_result("multi_page")
    text = result.to_text()
    assert text.endswith("\n")
    assert text.rstrip("\n").split("\f") == [page.text.rstrip("\n") for page in result.pages]
    assert text.count("\f") == 2
    assert "타코야키" in text.split("\f")[1]


# --------------------------------------------------------------------------- hOCR


class _HocrReader(HTMLParser):
    """Pages and words of an hOCR file, as any hOCR consumer reads them (class and title)."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.pages: list[dict[str, Any]] = []
        self.lines = 0
        self._word: dict[str, Any] | None = None
        self._stack: list[str] = []

    @staticmethod
    def _title(value: str) -> dict[str, list[str]]:
        fields = {}
        for part in value.split(";"):
            key, *rest = part.strip().split()
            fields[key] = rest
        return fields

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self._stack.append(tag)
        if tag == "meta" and "name" in a:
            self.meta[a["name"]] = a["content"]
        kind = a.get("class")
        if kind == "ocr_page":
            title = self._title(a["title"])
            self.pages.append(
                {
                    "bbox": tuple(int(v) for v in title["bbox"]),
                    "ppageno": int(title["ppageno"][0]),
                    "words": [],
                }
            )
        elif kind == "ocr_line":
            self.lines += 1
        elif kind == "ocrx_word":
            title = self._title(a["title"])
            self._word = {
                "bbox": tuple(int(v) for v in title["bbox"]),
                "conf": int(title["x_wconf"][0]) if "x_wconf" in title else None,
                "text": "",
            }

    def handle_endtag(self, tag: str) -> None:
        self._stack.pop()
        if tag == "span" and self._word is not None:
            self.pages[-1]["words"].append(self._word)
            self._word = None

    def handle_data(self, data: str) -> None:
        if self._word is not None:
            self._word["text"] += data


def read_hocr(text: str) -> _HocrReader:
    ET.fromstring(text.split("\n", 3)[3])  # well-formed XHTML (after the XML and DOCTYPE lines)
    reader = _HocrReader()
    reader.feed(text)
    reader.close()
    return reader


@pytest.mark.parametrize("name", REAL_NAMES)
def test_hocr_reads_back_to_the_same_words_and_boxes(name: str) -> None:
    result = real_result(name)
    hocr = read_hocr(result.to_hocr(image=f"{name}.in"))
    assert hocr.meta["ocr-system"].startswith("aioupstage-ocr ")
    assert "ocr-2.2.1" in hocr.meta["ocr-system"]
    assert set(hocr.meta["ocr-capabilities"].split()) >= {"ocr_page", "ocr_line", "ocrx_word"}
    assert [p["ppageno"] for p in hocr.pages] == list(range(result.num_pages))
    for page, read, words in zip(result.pages, hocr.pages, expected_words(result), strict=True):
        assert read["bbox"] == (0, 0, page.width, page.height)
        assert [(w["text"], w["bbox"]) for w in read["words"]] == words
        confidences = [w.confidence for w in page.words if w.text.strip()]
        assert [w["conf"] for w in read["words"]] == [round(c * 100) for c in confidences]
    assert 0 < hocr.lines < sum(len(p["words"]) for p in hocr.pages)


def test_hocr_escapes_text_and_falls_back_to_a_nominal_page() -> None:
    result = answer(
        [
            (None, None, []),
            (100, 50, [('<b>&"x"', [(1, 2), (30, 2), (30, 12), (1, 12)]), ("", [(0, 0)] * 4)]),
        ]
    )
    body = result.raw  # a page without size, with ratios: the sync shape allows it
    body["pages"][0]["words"] = [
        {
            "text": "ratio",
            "confidence": 0.8,
            "bounding_box": {"vertices": [{"x": 0.1, "y": 0.2}, {"x": 0.3, "y": 0.2},
                                          {"x": 0.3, "y": 0.25}, {"x": 0.1, "y": 0.25}]},
        }
    ]  # fmt: skip
    result = OCRResult.from_json(body)
    hocr = read_hocr(result.to_hocr())
    assert hocr.pages[0]["bbox"] == (0, 0, NOMINAL_SIZE, NOMINAL_SIZE)
    assert hocr.pages[0]["words"][0]["bbox"] == (1000, 2000, 3000, 2500)
    assert [w["text"] for w in hocr.pages[1]["words"]] == ['<b>&"x"']  # the empty word left out


# --------------------------------------------------------------------------- ALTO


@pytest.fixture(scope="module")
def alto_schema() -> Any:
    xmlschema = pytest.importorskip("xmlschema")
    xsd = SCHEMAS / "alto-4-4.xsd"
    if not xsd.is_file():
        pytest.skip(f"no ALTO schema at {SCHEMAS}")
    return xmlschema.XMLSchema(
        str(xsd), locations=[("http://www.w3.org/1999/xlink", str(SCHEMAS / "xlink.xsd"))]
    )


NS = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}


def check_alto(schema: Any, result: OCRResult) -> ET.Element:
    text = result.to_alto(image="scan & co.pdf")
    schema.validate(text)  # raises, naming the misfit
    root = ET.fromstring(text)
    assert root.findtext("a:Description/a:MeasurementUnit", namespaces=NS) == "pixel"
    return root


@pytest.mark.parametrize("name", REAL_NAMES)
def test_alto_validates_and_holds_every_word(alto_schema: Any, name: str) -> None:
    result = real_result(name)
    root = check_alto(alto_schema, result)
    pages = root.findall("a:Layout/a:Page", NS)
    assert len(pages) == result.num_pages
    for page, element, words in zip(result.pages, pages, expected_words(result), strict=True):
        assert (element.get("WIDTH"), element.get("HEIGHT")) == (str(page.width), str(page.height))
        strings = element.findall(".//a:TextLine/a:String", NS)
        read = [
            (
                s.get("CONTENT"),
                (
                    int(s.get("HPOS", "")),
                    int(s.get("VPOS", "")),
                    int(s.get("HPOS", "")) + int(s.get("WIDTH", "")),
                    int(s.get("VPOS", "")) + int(s.get("HEIGHT", "")),
                ),
            )
            for s in strings
        ]
        assert read == words
        assert all(0 <= float(s.get("WC", "")) <= 1 for s in strings)
        lines = element.findall(".//a:TextLine", NS)
        spaces = element.findall(".//a:SP", NS)
        assert len(spaces) == len(strings) - len(lines)  # one between each two words of a line


async def test_alto_of_emulated_results_validates(
    alto_schema: Any, client: AsyncUpstageOCR
) -> None:
    for data, filename in ((make_pdf(3), "three.pdf"), (make_image("png", seed=4), "one.png")):
        result = await client.ocr(data, filename=filename)
        root = check_alto(alto_schema, result)
        contents = [s.get("CONTENT") for s in root.iter(f"{{{NS['a']}}}String")]
        assert contents == [w.text for page in result.pages for w in page.words if w.text.strip()]


def test_alto_of_odd_pages_validates(alto_schema: Any) -> None:
    result = answer(
        [
            (40, 40, []),
            (100, 50, [("<&>\x0c", [(5, 5), (20, 5), (20, 15), (5, 15)]),
                       ("b", [(18, 5), (30, 5), (30, 15), (18, 15)])]),
        ]
    )  # fmt: skip
    root = check_alto(alto_schema, result)
    assert [s.get("CONTENT") for s in root.iter(f"{{{NS['a']}}}String")] == ["<&>", "b"]


# --------------------------------------------------------------------------- lines


def placed_word(
    text: str, center: tuple[float, float], size: tuple[float, float], degrees: float
) -> Placed:
    """A word box of `size` centred at `center`, turned `degrees` counter-clockwise."""
    (cx, cy), (w, h) = center, size
    t = math.radians(degrees)
    ux, uy = math.cos(t), -math.sin(t)  # along the text, page frame (y down)
    vx, vy = math.sin(t), math.cos(t)  # down the text
    corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    quad = [(cx + a * ux + b * vx, cy + a * uy + b * vy) for a, b in corners]
    from aioupstage_ocr._outputs._lines import _placed

    return _placed(text, 0.9, quad)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.integers(1, 6), min_size=1, max_size=6),
    degrees=st.sampled_from([0.0, 3.0, -5.0, 30.0, 90.0, -90.0, 180.0]),
    height=st.floats(8, 40),
)
def test_lines_follow_the_words_direction(rows: list[int], degrees: float, height: float) -> None:
    """Rows of words (any turn) group back into the same rows, in order."""
    t = math.radians(degrees)
    ux, uy = math.cos(t), -math.sin(t)
    vx, vy = math.sin(t), math.cos(t)
    words, expected = [], []
    for r, count in enumerate(rows):
        row = []
        for k in range(count):
            a, b = k * 3.2 * height, r * 1.8 * height  # along, across
            word = placed_word(
                f"w{r}_{k}",
                (1000 + a * ux + b * vx, 1000 + a * uy + b * vy),
                (2.5 * height, height),
                degrees,
            )
            words.append(word)
            row.append(word.text)
        expected.append(row)
    assert [[w.text for w in line] for line in group_lines(words)] == expected


@pytest.mark.parametrize("name", REAL_NAMES)
def test_hocr_reads_in_ocrmypdf_where_installed(name: str, tmp_path: Path) -> None:
    """A real hOCR consumer (OCRmyPDF's parser, 16+) sees the same words and boxes."""
    parser = pytest.importorskip("ocrmypdf.hocrtransform.hocr_parser")
    result = real_result(name)
    path = tmp_path / f"{name}.hocr"
    path.write_text(result.to_hocr(image=name), encoding="utf-8")
    page = parser.HocrParser(path).parse()

    def walk(element: Any) -> list[Any]:
        return [e for child in element.children for e in (child, *walk(child))]

    words = [e for e in walk(page) if e.ocr_class == "ocrx_word"]
    read = [
        (w.text, tuple(round(v) for v in (w.bbox.left, w.bbox.top, w.bbox.right, w.bbox.bottom)))
        for w in words
    ]
    assert read == expected_words(result)[0]
