"""Format sniffing and page counting, shared by preflight and the emulator."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioupstage_ocr import Format, UnreadableDocumentError
from aioupstage_ocr._formats import _png_size, detect_format, inspect_document, sniff_format
from aioupstage_ocr.testing._documents import make_image, make_pdf, make_tiff


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (make_pdf(2), Format.PDF),
        (make_image("png"), Format.PNG),
        (make_image("jpeg"), Format.JPEG),
        (make_image("bmp"), Format.BMP),
        (make_tiff(3), Format.TIFF),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", Format.HEIC),
        (b"hello, plain text", None),
        (b"", None),
    ],
)
def test_detect_by_content(data: bytes, expected: Format | None) -> None:
    """The format comes from the bytes, whatever the name."""
    assert detect_format(io.BytesIO(data)) is expected


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, body in entries.items():
            archive.writestr(name, body)
    return out.getvalue()


def test_office_containers() -> None:
    """ZIP containers are told apart by what they hold; a plain ZIP is refused."""
    docx = _zip(
        {
            "[Content_Types].xml": b"<Types/>",
            "word/document.xml": b"<w/>",
            "docProps/app.xml": b"<Properties><Pages>7</Pages></Properties>",
        }
    )
    pptx = _zip(
        {
            "[Content_Types].xml": b"<Types/>",
            "ppt/presentation.xml": b"<p/>",
            "ppt/slides/slide1.xml": b"<s/>",
            "ppt/slides/slide2.xml": b"<s/>",
        }
    )
    hwpx = _zip({"mimetype": b"application/hwp+zip", "Contents/section0.xml": b"<x/>"})
    assert detect_format(io.BytesIO(docx)) is Format.DOCX
    assert inspect_document(io.BytesIO(docx), Format.DOCX, "a.docx").pages == 7
    assert detect_format(io.BytesIO(pptx)) is Format.PPTX
    assert inspect_document(io.BytesIO(pptx), Format.PPTX, "a.pptx").pages == 2
    assert detect_format(io.BytesIO(hwpx)) is Format.HWPX
    assert detect_format(io.BytesIO(_zip({"a.txt": b"x"}))) is None


def test_pdf_and_tiff_pages() -> None:
    """Pages are counted for PDFs and multi-page TIFFs; images are one page with a size."""
    assert inspect_document(io.BytesIO(make_pdf(12)), Format.PDF, "x.pdf").pages == 12
    tiff = inspect_document(io.BytesIO(make_tiff(3, width=50, height=40)), Format.TIFF, "t")
    assert tiff.pages == 3
    assert tiff.page_sizes == ((50, 40),) * 3
    png = inspect_document(io.BytesIO(make_image(width=30, height=20)), Format.PNG, "p")
    assert (png.pages, png.max_pixels) == (1, 600)


def test_corrupt_pdf_names_the_file() -> None:
    """A PDF that cannot be read raises with the file's name and a reason."""
    with pytest.raises(UnreadableDocumentError, match=r"broken\.pdf: the PDF cannot be read"):
        inspect_document(io.BytesIO(b"%PDF-1.4\ngarbage"), Format.PDF, "broken.pdf")


def test_corrupt_tiff_names_the_file() -> None:
    """A TIFF with a damaged header is unreadable, named, never a raw TypeError."""
    data = bytearray(make_tiff(1))
    data[8] ^= 0xFF
    with pytest.raises(UnreadableDocumentError, match=r"bad\.tif: the image cannot be read"):
        inspect_document(io.BytesIO(bytes(data)), Format.TIFF, "bad.tif")


def test_samples(samples: Path) -> None:
    """The shared real documents are judged as their README says."""
    expected = {
        "phototest.tif": (Format.TIFF, 1),
        "eurotext.tif": (Format.TIFF, 1),
        "hebtypo.jpg": (Format.JPEG, 1),
        "smile-lzw.tiff": (Format.TIFF, 1),
        "pdflatex-4-pages.pdf": (Format.PDF, 4),
        "multicolumn.pdf": (Format.PDF, 3),
        "GeoTopo-komprimiert.pdf": (Format.PDF, 117),
    }
    for name, (fmt, pages) in expected.items():
        with (samples / name).open("rb") as stream:
            assert detect_format(stream) is fmt, name
            assert inspect_document(stream, fmt, name).pages == pages, name
    with (
        (samples / "libreoffice-writer-password.pdf").open("rb") as stream,
        pytest.raises(UnreadableDocumentError, match="password-protected"),
    ):
        inspect_document(stream, Format.PDF, "libreoffice-writer-password.pdf")


def test_sniff_needs_only_the_head() -> None:
    """sniff_format answers from leading bytes alone."""
    assert sniff_format(b"%PDF-1.7\n") is Format.PDF
    assert sniff_format(b"PK\x03\x04") is None


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    mode=st.sampled_from(["RGB", "L", "P", "RGBA", "1"]),
    text=st.booleans(),
)
def test_a_png_is_measured_from_its_header_as_pillow_measures_it(
    width: int, height: int, mode: str, text: bool
) -> None:
    """The PNG header reader finds Pillow's size, with ancillary chunks before the data."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("Comment", "x" * 500)
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, format="PNG", pnginfo=info)
    assert _png_size(io.BytesIO(out.getvalue())) == (width, height)
    found = inspect_document(io.BytesIO(out.getvalue()), Format.PNG, "a.png")
    assert (found.pages, found.max_pixels) == (1, width * height)


def test_an_animated_or_broken_png_is_left_to_pillow() -> None:
    """Frames of an APNG are pages, as Pillow counts them; a bad IHDR is unreadable."""
    from PIL import Image

    out = io.BytesIO()
    frames = [Image.new("RGB", (20, 10), color) for color in ("red", "blue", "green")]
    frames[0].save(out, format="PNG", save_all=True, append_images=frames[1:])
    assert _png_size(io.BytesIO(out.getvalue())) is None
    assert inspect_document(io.BytesIO(out.getvalue()), Format.PNG, "a.png").pages == 3
    png = bytearray(make_image("png", width=8, height=8))
    png[20] ^= 0xFF  # the height, under IHDR's CRC
    assert _png_size(io.BytesIO(bytes(png))) is None
    with pytest.raises(UnreadableDocumentError, match=r"broken\.png"):
        inspect_document(io.BytesIO(bytes(png)), Format.PNG, "broken.png")
