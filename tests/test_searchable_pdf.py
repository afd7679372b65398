"""The searchable PDF, read by independent readers: pdfminer.six and pypdfium2 (pdfium).

Every word of the answer is in the text layer, in the service's order, and
each upright word's extracted box overlaps its answer box; the original pages
render the same (PDF) or keep their image bytes (JPEG) and pixels (PNG, TIFF);
the font is a valid TrueType; bad input fails naming the file.
"""

from __future__ import annotations

import asyncio
import ctypes
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioupstage_ocr import (
    AsyncUpstageOCR,
    DocumentNotFoundError,
    OCRResult,
    ResultMismatchError,
    UnreadableDocumentError,
    UnsupportedFormatError,
    searchable_pdf,
    write_searchable_pdf,
)
from aioupstage_ocr._outputs._font import FONT_NAME
from aioupstage_ocr.testing import make_image, make_pdf, make_tiff

pdfium = pytest.importorskip("pypdfium2")
pytest.importorskip("pdfminer")
from pdfminer.converter import PDFPageAggregator  # noqa: E402
from pdfminer.layout import LTChar  # noqa: E402
from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager  # noqa: E402
from pdfminer.pdfpage import PDFPage  # noqa: E402
from pypdf import PdfReader, PdfWriter  # noqa: E402
from pypdf.generic import NameObject, NumberObject, RectangleObject  # noqa: E402

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "real-ocr"
REAL_DOCS = {
    "multi_page": "multi_page.pdf",
    "rotate": "rotate.jpg",
    "check_box": "check_box.png",
    "reciepts": "reciepts.jpg",
}

Box = tuple[float, float, float, float]


def real(name: str) -> tuple[Path, OCRResult]:
    document = REAL / REAL_DOCS[name]
    if not document.is_file():
        pytest.skip(f"no recorded documents at {REAL}")
    return document, OCRResult.load(REAL / f"{name}.response.json")


# --------------------------------------------------------------------------- readers


def layer_chars(pdf: bytes) -> list[list[tuple[str, Box]]]:
    """Per page, the text layer's characters (pdfminer, content-stream order) and boxes."""
    pages = []
    manager = PDFResourceManager()
    device = PDFPageAggregator(manager, laparams=None)  # no layout analysis: stream order
    interpreter = PDFPageInterpreter(manager, device)
    for pdf_page in PDFPage.get_pages(io.BytesIO(pdf)):
        interpreter.process_page(pdf_page)
        page = device.get_result()
        chars = [
            (item.get_text(), item.bbox)
            for item in page
            if isinstance(item, LTChar) and FONT_NAME in item.fontname
        ]
        pages.append(chars)
    return pages


def pdfium_text(pdf: bytes) -> list[str]:
    """Per page, the text as pdfium (Chrome's reader) extracts it."""
    document = pdfium.PdfDocument(pdf)
    return [document[i].get_textpage().get_text_range() for i in range(len(document))]


def squash(text: str) -> str:
    return "".join(text.split())


def in_order(words: list[str], text: str) -> bool:
    """Every word appears in `text`, one after another (whitespace ignored)."""
    flat, at = squash(text), 0
    for word in words:
        found = flat.find(squash(word), at)
        if found < 0:
            return False
        at = found + len(squash(word))
    return True


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def page_sizes(pdf: bytes) -> list[tuple[float, float]]:
    document = pdfium.PdfDocument(pdf)
    return [document[i].get_size() for i in range(len(document))]


def _upright(word: Any) -> bool:
    (ax, ay), (bx, by) = word.vertices[0], word.vertices[1]  # 0..1 of the page
    return bool(bx > ax and abs(by - ay) <= 0.05 * (bx - ax))


def check_layer(pdf: bytes, result: OCRResult, *, min_iou: float = 0.7) -> list[float]:
    """The layer holds each page's words in order; boxes overlap (mean IoU per page: of the
    upright words, then of the turned ones' enclosing boxes)."""
    layers = layer_chars(pdf)
    texts = pdfium_text(pdf)
    sizes = page_sizes(pdf)
    assert len(layers) == len(texts) == result.num_pages
    means: list[float] = []
    turned_means: list[float] = []
    for page, chars, text, (pw, ph) in zip(result.pages, layers, texts, sizes, strict=True):
        words = [w for w in page.words if w.text.strip()]
        expected = [w.text.strip() for w in words]
        # pdfminer, in content-stream order: exactly the words, in the service's order
        assert squash("".join(c for c, _ in chars)) == "".join(squash(w) for w in expected)
        # pdfium, as a viewer extracts it: every word; in order where the text is upright
        # (pdfium regroups turned text by its own reading of the lines' flow)
        if all(_upright(w) for w in words):
            assert in_order(expected, text), (expected[:20], text[:400])
        else:
            assert all(squash(w) in squash(text) for w in expected)
        glyphs = [c for c in chars if c[0].strip()]
        scores: dict[bool, list[float]] = {True: [], False: []}
        for word in words:
            n = len(squash(word.text))  # a word may hold spaces: they are no glyphs here
            mine, glyphs = glyphs[:n], glyphs[n:]
            box = word.bbox  # 0..1 of the page: the same for pages of unknown pixel size
            got = (
                min(b[0] for _, b in mine),
                min(b[1] for _, b in mine),
                max(b[2] for _, b in mine),
                max(b[3] for _, b in mine),
            )
            want = (box.x0 * pw, ph - box.y1 * ph, box.x1 * pw, ph - box.y0 * ph)
            scores[_upright(word)].append(iou(got, want))
        upright, turned = scores[True], scores[False]
        if upright:
            mean = sum(upright) / len(upright)
            assert mean >= min_iou, (page.index, mean)
            means.append(mean)
        if turned:  # boxes around turned boxes: looser, but the text sits on its word
            assert sum(turned) / len(turned) >= 0.6, (page.index, sum(turned) / len(turned))
            turned_means.append(sum(turned) / len(turned))
    return means + turned_means


def render(pdf: bytes, index: int, scale: float = 1.0) -> bytes:
    document = pdfium.PdfDocument(pdf)
    bitmap = document[index].render(scale=scale, may_draw_forms=False)
    image = bitmap.to_pil().convert("RGB")
    return image.tobytes()


# --------------------------------------------------------------------------- real documents


@pytest.mark.parametrize("name", list(REAL_DOCS))
def test_real_documents_are_searchable_in_order_and_in_place(name: str) -> None:
    document, result = real(name)
    pdf = searchable_pdf(document, result)
    means = check_layer(pdf, result)
    assert means
    print(name, [round(m, 3) for m in means])


def test_real_pdf_keeps_its_pages_and_grows_by_a_few_kb_a_page() -> None:
    document, result = real("multi_page")
    original = document.read_bytes()
    pdf = searchable_pdf(document, result)
    assert pdf.startswith(original)  # an incremental update: every original byte kept
    added = len(pdf) - len(original)
    words = sum(len(p.words) for p in result.pages)
    print(f"added {added} bytes for {result.num_pages} pages, {words} words")
    assert added <= 4096 * result.num_pages
    for index in range(result.num_pages):
        assert render(pdf, index) == render(original, index)


@pytest.mark.parametrize("name", ["rotate", "reciepts"])
def test_real_jpeg_is_embedded_byte_for_byte(name: str) -> None:
    document, result = real(name)
    pdf = pdfium.PdfDocument(searchable_pdf(document, result))
    (image,) = [o for o in pdf[0].get_objects() if isinstance(o, pdfium.PdfImage)]
    assert image.get_filters() == ["DCTDecode"]
    assert bytes(image.get_data(decode_simple=False)) == document.read_bytes()


def test_real_png_keeps_its_pixels() -> None:
    from PIL import Image

    document, result = real("check_box")
    pdf = searchable_pdf(document, result)
    original = Image.open(document)
    reader = PdfReader(io.BytesIO(pdf))
    (image,) = reader.pages[0].images
    xobject = image.indirect_reference.get_object()  # type: ignore[union-attr]
    assert xobject["/Filter"] == "/FlateDecode"
    assert xobject["/Width"] == original.width
    assert "/SMask" in xobject
    rgb = Image.frombytes("RGB", original.size, xobject.get_data())
    alpha = Image.frombytes("L", original.size, xobject["/SMask"].get_object().get_data())
    assert rgb.tobytes() == original.convert("RGB").tobytes()
    assert alpha.tobytes() == original.getchannel("A").tobytes()


# --------------------------------------------------------------------------- generated documents


async def test_generated_documents_through_the_emulator(client: AsyncUpstageOCR) -> None:
    from PIL import Image

    documents = {
        "three.pdf": make_pdf(3),
        "one.png": make_image("png", seed=1),
        "one.jpg": make_image("jpeg", seed=2),
        "one.bmp": make_image("bmp", seed=3),
        "frames.tiff": make_tiff(3, seed=4),
    }
    for filename, data in documents.items():
        result = await client.ocr(data, filename=filename)
        pdf = searchable_pdf(data, result, name=filename)
        check_layer(pdf, result)
        if filename.endswith(".pdf"):
            assert pdf.startswith(data)
            for index in range(result.num_pages):
                assert render(pdf, index) == render(data, index)
            continue
        # Each page is its frame at the frame's own resolution, pixels kept (as pdfium decodes).
        source = Image.open(io.BytesIO(data))
        document = pdfium.PdfDocument(pdf)
        for index in range(result.num_pages):
            source.seek(index)
            dpi = source.info.get("dpi", (72, 72))
            if min(dpi) < 10:  # Pillow's TIFFs say 1 dpi (no unit): read as none
                dpi = (72, 72)
            width, height = page_sizes(pdf)[index]
            assert width == pytest.approx(source.width * 72 / dpi[0], abs=0.01)
            assert height == pytest.approx(source.height * 72 / dpi[1], abs=0.01)
            if filename.endswith(".jpg"):
                continue  # lossy pixels: the bytes are compared below
            (image,) = [o for o in document[index].get_objects() if isinstance(o, pdfium.PdfImage)]
            drawn = image.get_bitmap().to_pil().convert("RGB")
            assert drawn.tobytes() == source.convert("RGB").tobytes(), filename
    jpeg = documents["one.jpg"]
    result = await client.ocr(jpeg, filename="one.jpg")
    (image,) = [
        o for o in pdfium.PdfDocument(searchable_pdf(jpeg, result))[0].get_objects()
        if isinstance(o, pdfium.PdfImage)
    ]  # fmt: skip
    assert bytes(image.get_data(decode_simple=False)) == jpeg


def live_answer(pages: list[tuple[int, int, list[tuple[str, list[tuple[int, int]]]]]]) -> OCRResult:
    body: dict[str, Any] = {"apiVersion": "1.1", "modelVersion": "ocr-test", "pages": []}
    for index, (width, height, words) in enumerate(pages):
        body["pages"].append(
            {
                "id": index,
                "width": width,
                "height": height,
                "text": " ".join(t for t, _ in words),
                "confidence": 0.9,
                "words": [
                    {
                        "id": k,
                        "text": t,
                        "confidence": 0.9,
                        "boundingBox": {"vertices": [{"x": x, "y": y} for x, y in quad]},
                    }
                    for k, (t, quad) in enumerate(words)
                ],
            }
        )
    return OCRResult.from_json(body)


def pdfium_layer_boxes(pdf: bytes, index: int, frame: tuple[int, int]) -> list[tuple[str, Box]]:
    """The text layer's glyphs as pdfium reads them, boxed in the answer's pixel frame by
    pdfium's own page-to-device map (which applies /Rotate and the box origin)."""
    document = pdfium.PdfDocument(pdf)
    page = document[index]
    textpage = page.get_textpage()
    out = []
    buffer = ctypes.create_string_buffer(256)
    flags = ctypes.c_int()
    for i in range(textpage.count_chars()):
        size = pdfium.raw.FPDFText_GetFontInfo(textpage.raw, i, buffer, 256, ctypes.byref(flags))
        char = textpage.get_text_range(i, 1)
        if FONT_NAME not in buffer.raw[:size].decode(errors="replace") or not char.strip():
            continue
        left, bottom, right, top = textpage.get_charbox(i)
        xs, ys = [], []
        for x, y in ((left, bottom), (right, top)):
            dx, dy = ctypes.c_int(), ctypes.c_int()
            pdfium.raw.FPDF_PageToDevice(
                page.raw, 0, 0, frame[0], frame[1], 0, x, y, ctypes.byref(dx), ctypes.byref(dy)
            )
            xs.append(dx.value)
            ys.append(dy.value)
        out.append((char, (min(xs), min(ys), max(xs), max(ys))))
    return out


def union(boxes: list[Box]) -> Box:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_rotated_pages_with_an_offset_media_box(rotate: int) -> None:
    """The answer's pixels are the page as shown: /Rotate and the box origin are minded."""
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["a rotated page"], width=400, height=600)))
    page = writer.pages[0]
    page[NameObject("/MediaBox")] = RectangleObject([-50, 30, 350, 630])
    page[NameObject("/Rotate")] = NumberObject(rotate)
    out = io.BytesIO()
    writer.write(out)
    document = out.getvalue()
    frame = (1250, 833) if rotate in (90, 270) else (833, 1250)  # 150 dpi, shown
    quads = [
        ("Hello", [(100, 100), (300, 100), (300, 150), (100, 150)]),
        ("세계", [(320, 100), (420, 100), (420, 150), (320, 150)]),
        ("turned", [(200, 600), (400, 400), (435, 435), (235, 635)]),
    ]
    result = live_answer([(frame[0], frame[1], quads)])
    pdf = searchable_pdf(document, result, name="turned.pdf")
    assert pdf.startswith(document)
    (chars,) = layer_chars(pdf)
    assert squash("".join(c for c, _ in chars)) == "Hello세계turned"
    # pdfminer turns the page itself (its coordinates: the page as shown, from the box's
    # origin); pdfium maps its user-space boxes through its own page-to-device transform.
    shown_w, shown_h = page_sizes(pdf)[0]
    minded = [
        (c, (b[0] * frame[0] / shown_w, (shown_h - b[3]) * frame[1] / shown_h,
             b[2] * frame[0] / shown_w, (shown_h - b[1]) * frame[1] / shown_h))
        for c, b in chars
        if c.strip()
    ]  # fmt: skip
    by_pdfium = pdfium_layer_boxes(pdf, 0, frame)
    assert "".join(c for c, _ in by_pdfium) == "Hello세계turned"
    for glyphs in (minded, by_pdfium):
        for word, start, n in (("Hello", 0, 5), ("세계", 5, 2)):
            got = union([b for _, b in glyphs[start : start + n]])
            want = {"Hello": (100, 100, 300, 150), "세계": (320, 100, 420, 150)}[word]
            assert iou(got, want) >= 0.9, (rotate, word, got)
        turned = union([b for _, b in glyphs[7:]])
        assert iou(turned, (200, 400, 435, 635)) >= 0.8, (rotate, turned)
    assert render(pdf, 0) == render(document, 0)


def test_korean_and_characters_beyond_the_bmp_copy_out() -> None:
    words = [
        ("타코야키", [(10, 10), (200, 10), (200, 60), (10, 60)]),
        ("😀𠀀", [(220, 10), (300, 10), (300, 60), (220, 60)]),
        ("漢字", [(10, 100), (100, 100), (100, 150), (10, 150)]),
    ]
    result = live_answer([(320, 240, words)])
    pdf = searchable_pdf(make_image("png", width=320, height=240), result)
    (chars,) = layer_chars(pdf)
    assert squash("".join(c for c, _ in chars)) == "타코야키😀𠀀漢字"
    assert in_order(["타코야키", "😀𠀀", "漢字"], pdfium_text(pdf)[0])


def test_the_font_is_a_valid_truetype_and_is_stored_once() -> None:
    from fontTools.ttLib import TTFont

    document = make_pdf(4)
    words = [("word", [(10, 10), (100, 10), (100, 40), (10, 40)])]
    result = live_answer([(1275, 1650, words)] * 4)
    reader = PdfReader(io.BytesIO(searchable_pdf(document, result)))
    fonts = set()
    for page in reader.pages:
        for key, ref in page["/Resources"]["/Font"].items():
            if key.startswith("/FAioUpstageOCR"):
                fonts.add(ref.idnum)
    assert len(fonts) == 1
    type0 = reader.get_object(fonts.pop())
    descendant = type0["/DescendantFonts"][0].get_object()
    assert type0["/Encoding"] == "/Identity-H"
    assert descendant["/Subtype"] == "/CIDFontType2"
    font = TTFont(io.BytesIO(descendant["/FontDescriptor"]["/FontFile2"].get_data()))
    assert font.getGlyphOrder() == [".notdef", "space"]
    assert font["glyf"]["space"].numberOfContours == 1  # a line: a box, no ink
    assert font["head"].unitsPerEm == 1000


def test_write_searchable_pdf_is_atomic(tmp_path: Path) -> None:
    document = make_pdf(1)
    result = live_answer([(1275, 1650, [("x", [(1, 1), (9, 1), (9, 9), (1, 9)])])])
    target = write_searchable_pdf(document, result, tmp_path / "out" / "a.ocr.pdf")
    assert target == (tmp_path / "out" / "a.ocr.pdf").resolve()
    assert target.read_bytes().startswith(document)
    with pytest.raises(ResultMismatchError):
        write_searchable_pdf(make_pdf(2), result, tmp_path / "b.ocr.pdf", name="two.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --------------------------------------------------------------------------- bad input


def test_bad_input_fails_naming_the_document(tmp_path: Path) -> None:
    one = live_answer([(1275, 1650, [])])
    with pytest.raises(ResultMismatchError, match=r"^three\.pdf: the result has 1 pages"):
        searchable_pdf(make_pdf(3), one, name="three.pdf")
    with pytest.raises(
        ResultMismatchError,
        match=r"^wide\.pdf: page 1: .*1275x1650 px, .* 1000x300 pt \(not the same shape\)",
    ):
        searchable_pdf(make_pdf(1, width=1000, height=300), one, name="wide.pdf")
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(1)))
    writer.encrypt("secret")
    locked = io.BytesIO()
    writer.write(locked)
    with pytest.raises(UnreadableDocumentError, match=r"^locked\.pdf: .*encrypted"):
        searchable_pdf(locked.getvalue(), one, name="locked.pdf")
    with pytest.raises(UnreadableDocumentError, match=r"^broken\.pdf"):
        searchable_pdf(b"%PDF-1.4\n" + b"\0" * 200, one, name="broken.pdf")
    with pytest.raises(UnsupportedFormatError, match=r"^notes\.txt: a searchable PDF is made"):
        searchable_pdf(b"just some text", one, name="notes.txt")
    heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64
    with pytest.raises(UnsupportedFormatError, match=r"^photo\.heic: .*; a HEIC document"):
        searchable_pdf(heic, one, name="photo.heic")
    with pytest.raises(DocumentNotFoundError, match=r"missing\.pdf: no such file"):
        searchable_pdf(tmp_path / "missing.pdf", one)


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("png", "L"),
        ("png", "P"),
        ("png", "LA"),
        ("png", "RGBA"),
        ("tiff", "1"),
        ("tiff", "L"),
        ("tiff", "RGB"),
        ("bmp", "P"),
    ],
)
def test_image_modes_keep_their_pixels(fmt: str, mode: str) -> None:
    """Each colour mode is embedded losslessly: pdfium decodes the same pixels back."""
    from PIL import Image

    source = Image.open(io.BytesIO(make_image("png", seed=7, width=90, height=60))).convert(mode)
    if mode == "P":
        source = Image.open(io.BytesIO(make_image("png", seed=7, width=90, height=60)))
        source = source.convert("RGB").quantize(16)
    buffer = io.BytesIO()
    source.save(buffer, format=fmt.upper())
    data = buffer.getvalue()
    result = live_answer([(90, 60, [("mode", [(5, 5), (40, 5), (40, 20), (5, 20)])])])
    pdf = searchable_pdf(data, result, name=f"x.{fmt}")
    check_layer(pdf, result)
    (image,) = [
        o for o in pdfium.PdfDocument(pdf)[0].get_objects() if isinstance(o, pdfium.PdfImage)
    ]
    drawn = image.get_bitmap(render=False).to_pil()
    decoded = Image.open(io.BytesIO(data))
    if decoded.mode in ("LA", "RGBA"):
        decoded = decoded.convert("L" if decoded.mode == "LA" else "RGB")  # alpha: the mask
    assert drawn.convert("RGB").tobytes() == decoded.convert("RGB").tobytes()
    if fmt == "png" and mode in ("L", "P"):  # compressed pixel data passed through as it is
        assert image.get_filters() == ["FlateDecode"]
        idat = data[data.index(b"IDAT") + 4 :]
        assert bytes(image.get_data(decode_simple=False))[:64] == idat[:64]


_WORD_TEXT = st.text(
    alphabet=st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=8
)


@settings(max_examples=30, deadline=None)
@given(
    words=st.lists(
        st.tuples(
            _WORD_TEXT,
            st.integers(0, 350),
            st.integers(0, 260),
            st.integers(3, 50),
            st.integers(3, 40),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_any_words_come_back_in_order(words: list[tuple[str, int, int, int, int]]) -> None:
    """Whatever the text (any script, beyond the BMP) and boxes, the layer reads back exact."""
    quads = [(t, [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]) for t, x, y, w, h in words]
    result = live_answer([(400, 300, quads)])
    pdf = searchable_pdf(_PAGE_400x300, result)
    (chars,) = layer_chars(pdf)
    assert squash("".join(c for c, _ in chars)) == "".join(squash(t) for t, *_ in words)


_PAGE_400x300 = make_image("png", seed=9, width=400, height=300)


@pytest.mark.parametrize(("orientation", "turn"), [(1, 0), (3, 180), (6, 90), (8, 270)])
def test_exif_orientation_turns_the_page_as_the_answer_shows_it(
    orientation: int, turn: int
) -> None:
    """A JPEG stored on its side (EXIF 6/8) or upside down (3) is shown upright, as read."""
    from PIL import Image

    stored = Image.open(io.BytesIO(make_image("png", seed=5, width=320, height=240)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.convert("RGB").save(buffer, format="JPEG", exif=exif.tobytes())
    data = buffer.getvalue()
    frame = (240, 320) if turn in (90, 270) else (320, 240)
    words = [("upright", [(20, 30), (120, 30), (120, 60), (20, 60)])]
    result = live_answer([(frame[0], frame[1], words)])
    pdf = searchable_pdf(data, result, name="turned.jpg")
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    assert page.get("/Rotate", 0) == turn
    assert list(page.mediabox) == [0, 0, 320, 240]  # the page itself is the stored image
    shown = pdfium.PdfDocument(pdf)[0].render().to_pil()
    assert shown.size == frame  # a viewer shows it turned, as the service read it
    boxes = pdfium_layer_boxes(pdf, 0, frame)
    assert "".join(c for c, _ in boxes) == "upright"
    assert iou(union([b for _, b in boxes]), (20, 30, 120, 60)) >= 0.9
    # The answer for the stored orientation (a service that ignored EXIF) is laid unturned.
    if turn in (90, 270):
        flat = live_answer([(320, 240, words)])
        assert PdfReader(io.BytesIO(searchable_pdf(data, flat))).pages[0].get("/Rotate", 0) == 0


@pytest.mark.parametrize(
    "name",
    ["multicolumn.pdf", "pdflatex-4-pages.pdf", "eurotext.tif", "phototest.tif", "hebtypo.jpg"],
)
async def test_public_sample_documents(samples: Path, client: AsyncUpstageOCR, name: str) -> None:
    """Real public PDFs (text, two columns, LaTeX) and scans, OCRed by the emulator."""
    data = await asyncio.to_thread((samples / name).read_bytes)
    result = await client.ocr(data, filename=name)
    pdf = await asyncio.to_thread(searchable_pdf, data, result, name=name)
    await asyncio.to_thread(check_sample, data, pdf, result, name)


def check_sample(data: bytes, pdf: bytes, result: OCRResult, name: str) -> None:
    for page, chars in zip(result.pages, layer_chars(pdf), strict=True):
        expected = "".join(squash(w.text) for w in page.words)
        assert squash("".join(c for c, _ in chars)) == expected  # pdfminer: every word, in order
    if name.endswith(".pdf"):
        assert pdf.startswith(data)
        for index in range(result.num_pages):
            assert render(pdf, index, 0.5) == render(data, index, 0.5)
        assert len(pdf) - len(data) <= 6144 * result.num_pages  # dense pages: ~8 bytes a word


def test_boxes_of_no_width_or_height_stay_searchable() -> None:
    """The service answers some degenerate boxes; their words still reach a viewer's search."""
    words = [
        ("flat", [(10, 20), (60, 20), (60, 20), (10, 20)]),  # no height
        ("thin", [(80, 10), (80, 10), (80, 30), (80, 30)]),  # no width
        ("dot", [(100, 5), (100, 5), (100, 5), (100, 5)]),  # a point
        ("fine", [(120, 10), (170, 10), (170, 30), (120, 30)]),
    ]
    result = live_answer([(200, 50, words)])
    pdf = searchable_pdf(make_image("png", width=200, height=50), result)
    assert in_order(["flat", "thin", "dot", "fine"], pdfium_text(pdf)[0])
    (chars,) = layer_chars(pdf)
    assert squash("".join(c for c, _ in chars)) == "flatthindotfine"
