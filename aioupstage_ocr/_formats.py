"""What a document is, from its bytes: format, page count, page size in pixels.

Shared by the client's preflight and the emulator, so both judge a file the
same way. Everything here is blocking file work: call it from a worker thread.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import IO

from ._exceptions import UnreadableDocumentError

__all__ = [
    "EXTENSIONS",
    "Format",
    "Inspection",
    "detect_format",
    "inspect_document",
    "sniff_format",
]

HEAD_BYTES = 4096


class Format(StrEnum):
    """The formats the service accepts."""

    PDF = "pdf"
    JPEG = "jpeg"
    PNG = "png"
    BMP = "bmp"
    TIFF = "tiff"
    HEIC = "heic"
    DOCX = "docx"
    PPTX = "pptx"
    XLSX = "xlsx"
    HWP = "hwp"
    HWPX = "hwpx"

    @property
    def mime_type(self) -> str:
        return _MIME[self]

    @property
    def is_image(self) -> bool:
        return self in _IMAGES


_IMAGES = frozenset({Format.JPEG, Format.PNG, Format.BMP, Format.TIFF, Format.HEIC})

_MIME = {
    Format.PDF: "application/pdf",
    Format.JPEG: "image/jpeg",
    Format.PNG: "image/png",
    Format.BMP: "image/bmp",
    Format.TIFF: "image/tiff",
    Format.HEIC: "image/heic",
    Format.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    Format.PPTX: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    Format.HWP: "application/x-hwp",
    Format.HWPX: "application/hwp+zip",
}

#: File name endings of the supported formats (what a folder walk picks up).
EXTENSIONS: frozenset[str] = frozenset(
    {
        ".pdf",
        ".jpg",
        ".jpeg",
        ".png",
        ".bmp",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".docx",
        ".pptx",
        ".xlsx",
        ".hwp",
        ".hwpx",
    }
)

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
)


def sniff_format(head: bytes) -> Format | None:
    """The format told by a file's first bytes, or None.

    ZIP-based formats (DOCX, PPTX, XLSX, HWPX) and OLE-based HWP need more than
    the head: `detect_format` looks inside; this answers None for them.
    """
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return Format.PDF
    if head.startswith(b"\xff\xd8\xff"):
        return Format.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Format.PNG
    if head.startswith(b"BM") and len(head) >= 26:
        return Format.BMP
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return Format.TIFF
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return Format.HEIC
    return None


def detect_format(stream: IO[bytes]) -> Format | None:
    """The format of a seekable binary stream, judged by content; None if unsupported."""
    stream.seek(0)
    head = stream.read(HEAD_BYTES)
    found = sniff_format(head)
    if found is not None:
        return found
    if head.startswith(_ZIP_MAGIC):
        return _zip_format(stream)
    if head.startswith(_OLE_MAGIC):
        return _ole_format(stream)
    return None


def _zip_format(stream: IO[bytes]) -> Format | None:
    stream.seek(0)
    try:
        with zipfile.ZipFile(stream) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                mimetype = archive.read("mimetype")[:64].strip()
                if mimetype.startswith(b"application/hwp+zip"):
                    return Format.HWPX
            if "[Content_Types].xml" not in names:
                return None
            if "word/document.xml" in names:
                return Format.DOCX
            if "ppt/presentation.xml" in names:
                return Format.PPTX
            if "xl/workbook.xml" in names:
                return Format.XLSX
    except (zipfile.BadZipFile, OSError, KeyError):
        return None
    return None


def _ole_format(stream: IO[bytes]) -> Format | None:
    # An HWP 5 file is an OLE compound file whose "FileHeader" stream opens with
    # this signature; old .doc/.xls files are OLE too and are not taken.
    stream.seek(0)
    window = stream.read(1 << 20)
    return Format.HWP if b"HWP Document File" in window else None


@dataclass(frozen=True, slots=True)
class Inspection:
    """What preflight learns about a document.

    `pages` is None where it cannot be told without rendering (office formats
    without page metadata, HWP, HEIC); `max_pixels` is the largest page's pixel
    count, None where unknown (PDF pages have no pixel size until rendered).
    `page_sizes` holds (width, height) in pixels per page for raster formats.
    """

    format: Format
    pages: int | None
    max_pixels: int | None
    page_sizes: tuple[tuple[int, int], ...] = ()


class NeedsFullParseError(Exception):
    """`inspect_document(..., quick=True)` met a document only a library's full parse
    can count (a PDF pypdf must read, an office archive): inspect it in a worker thread."""


def inspect_document(
    stream: IO[bytes], fmt: Format, name: str, *, quick: bool = False
) -> Inspection:
    """Page count and pixel sizes of a seekable stream of a known format.

    Raises `UnreadableDocumentError` (naming `name`) for a corrupt or
    password-protected document. `quick`: on the event loop, so only image
    headers and a plain PDF's page tree (`page_tree_count`) are read; any
    other document raises `NeedsFullParseError`.
    """
    stream.seek(0)
    if fmt is Format.PDF:
        return Inspection(fmt, _pdf_pages(stream, name, quick=quick), None)
    if fmt in (Format.JPEG, Format.PNG, Format.BMP, Format.TIFF):
        size = _png_size(stream) if fmt is Format.PNG else None
        sizes = (size,) if size is not None else _raster_sizes(stream, name)
        return Inspection(fmt, len(sizes), max(w * h for w, h in sizes), sizes)
    if fmt is Format.HEIC:
        return Inspection(fmt, 1, None)
    if fmt in (Format.DOCX, Format.PPTX):
        if quick:
            raise NeedsFullParseError(name)
        return Inspection(fmt, _office_pages(stream, fmt, name), None)
    return Inspection(fmt, None, None)


def _pdf_pages(stream: IO[bytes], name: str, *, quick: bool = False) -> int:
    if stream.seek(0, io.SEEK_END) <= _PAGE_TREE_READ:
        stream.seek(0)
        count = page_tree_count(stream.read())
        if count is not None:
            return count
    if quick:
        raise NeedsFullParseError(name)
    stream.seek(0)
    from pypdf import PdfReader  # noqa: PLC0415 - imported on first use: it costs ~100 ms
    from pypdf.errors import PdfReadError  # noqa: PLC0415

    try:
        reader = PdfReader(stream, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocumentError(name, "the PDF is password-protected")
        count = len(reader.pages)
    except UnreadableDocumentError:
        raise
    except Exception as exc:  # pypdf raises many types on corrupt input
        if isinstance(exc, PdfReadError) and "decrypt" in str(exc).lower():
            raise UnreadableDocumentError(name, "the PDF is password-protected") from exc
        raise UnreadableDocumentError(name, f"the PDF cannot be read ({exc})") from exc
    if count < 1:
        raise UnreadableDocumentError(name, "the PDF has no pages")
    return count


# PDFs of at most this many bytes have their page tree read by `page_tree_count`.
_PAGE_TREE_READ = 256 * 1024
_PAGE_TREE_NODES = 4096  # page tree objects read, at most

_XREF_SECTION = re.compile(rb"[ \t\r\n]*(\d+) (\d+)[ \t]*(?:\r\n|\r|\n)")
_XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])(?: \r| \n|\r\n|\r|\n)")
_PDF_END = re.compile(  # the file's last lines, as pypdf wants them
    rb"(?:\r\n|\r|\n)startxref[ \t]*(?:\r\n|\r|\n)(\d+)[ \t]*(?:\r\n|\r|\n)%%EOF[ \t\r\n]*\Z"
)
_OBJ_HEADER = re.compile(rb"[ \t\r\n]*(\d+)[ \t\r\n]+(\d+)[ \t\r\n]+obj\b")
_PDF_TOKEN = re.compile(
    rb"""[ \t\r\n]*(?:
      (?P<open><<) | (?P<close>>>) | (?P<array>\[) | (?P<end>\])
    | (?P<ref>(?P<num>\d+)[ \t\r\n]+(?P<gen>\d+)[ \t\r\n]+R(?![^ \t\r\n()<>\[\]{}/%]))
    | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+))
    | (?P<name>/[!-~]*?(?![^ \t\r\n()<>\[\]{}/%]))  # printable, up to a delimiter
    | (?P<hex><[0-9A-Fa-f \t\r\n]*>)
    | (?P<string>\()
    | (?P<word>true|false|null)
    )""",
    re.VERBOSE | re.DOTALL,
)


_STRING_STOP = re.compile(rb"[()\\]")


class _NotPlainError(Exception):
    """The PDF is not one `page_tree_count` reads: pypdf reads it instead."""


def page_tree_count(data: bytes) -> int | None:
    """The pages of a plain PDF from its page tree, without pypdf; None for any other.

    Plain: a classic cross-reference table (no cross-reference stream, no
    incremental update), not encrypted, every page tree node a direct
    dictionary found through that table. Pages are counted as the tree's
    leaves, as pypdf does, not from `/Count`, which can be wrong. Anything
    else, or anything malformed, is None: pypdf reads it and names what is
    wrong. A one-page PDF takes ~40 us here against ~180 us in pypdf.
    """
    try:
        offsets, trailer = _xref_table(data)
        if any(key in trailer for key in (b"/Prev", b"/XRefStm", b"/Encrypt")):
            return None
        catalog = _pdf_object(data, offsets, trailer.get(b"/Root"))
        count, todo, seen = 0, [catalog.get(b"/Pages")], set[object]()
        while todo:
            ref = todo.pop()
            if ref in seen or len(seen) >= _PAGE_TREE_NODES:
                return None
            seen.add(ref)
            node = _pdf_object(data, offsets, ref)
            kind, kids = node.get(b"/Type"), node.get(b"/Kids")
            if kind == b"/Pages" and isinstance(kids, list):
                todo.extend(reversed(kids))
            elif kind == b"/Page" and kids is None:
                count += 1
            else:
                return None
    except (_NotPlainError, ValueError, IndexError, RecursionError):
        return None
    return count or None


def _xref_table(data: bytes) -> tuple[dict[int, int], dict[bytes, object]]:
    if not data.startswith(b"%PDF-"):
        raise _NotPlainError
    found = _PDF_END.search(data, max(0, len(data) - 1024))
    if found is None:
        raise _NotPlainError
    pos = int(found[1])
    if data[pos : pos + 4] != b"xref":
        raise _NotPlainError  # a cross-reference stream
    pos += 4
    offsets: dict[int, int] = {}
    while (section := _XREF_SECTION.match(data, pos)) is not None:
        first, entries = int(section[1]), int(section[2])
        pos = section.end()
        for number in range(first, first + entries):
            entry = _XREF_ENTRY.match(data, pos)
            if entry is None:
                raise _NotPlainError
            pos = entry.end()
            if entry[3] == b"n":
                offsets[number] = int(entry[1])
    found = re.compile(rb"[ \t\r\n]*trailer").match(data, pos)
    if found is None:
        raise _NotPlainError
    trailer, _ = _pdf_value(data, found.end(), 0)
    if not isinstance(trailer, dict):
        raise _NotPlainError
    return offsets, trailer


def _pdf_object(data: bytes, offsets: dict[int, int], ref: object) -> dict[bytes, object]:
    """The dictionary that indirect object `ref` (a `(number, generation)` pair) is."""
    if not isinstance(ref, tuple) or ref[0] not in offsets:
        raise _NotPlainError
    header = _OBJ_HEADER.match(data, offsets[ref[0]])
    if header is None or (int(header[1]), int(header[2])) != ref:
        raise _NotPlainError
    value, _ = _pdf_value(data, header.end(), 0)
    if not isinstance(value, dict):
        raise _NotPlainError
    return value


def _pdf_value(data: bytes, pos: int, depth: int) -> tuple[object, int]:
    """One PDF object at `pos`: a dict (name -> value), a list, a `(number, generation)`
    reference, or the token's bytes; and where it ends."""
    token = _PDF_TOKEN.match(data, pos)
    if token is None or depth > 32:
        raise _NotPlainError
    kind, pos = token.lastgroup, token.end()
    if kind == "open":
        entries: dict[bytes, object] = {}
        while (close := _PDF_TOKEN.match(data, pos)) is not None and close.lastgroup != "close":
            if close.lastgroup != "name":
                raise _NotPlainError
            entries[close[0].lstrip()], pos = _pdf_value(data, close.end(), depth + 1)
        if close is None:
            raise _NotPlainError
        return entries, close.end()
    if kind == "array":
        items: list[object] = []
        while (end := _PDF_TOKEN.match(data, pos)) is not None and end.lastgroup != "end":
            item, pos = _pdf_value(data, pos, depth + 1)
            items.append(item)
        if end is None:
            raise _NotPlainError
        return items, end.end()
    if kind == "ref":
        return (int(token["num"]), int(token["gen"])), pos
    if kind == "string":
        return b"()", _string_end(data, pos)
    if kind in ("close", "end"):
        raise _NotPlainError
    return token[0].lstrip(), pos


def _string_end(data: bytes, pos: int) -> int:
    """Where a literal string whose `(` ends at `pos` closes: parentheses balance, `\\` escapes."""
    depth = 1
    while depth:
        found = _STRING_STOP.search(data, pos)
        if found is None:
            raise _NotPlainError
        pos = found.end()
        char = found[0]
        if char == b"(":
            depth += 1
        elif char == b")":
            depth -= 1
        else:
            pos += 1  # the escaped byte
    return pos


_PNG_CHUNKS_READ = 32  # ancillary chunks walked before the image data, at most


def _png_size(stream: IO[bytes]) -> tuple[int, int] | None:
    """A still PNG's (width, height) from its chunk headers; None leaves it to Pillow.

    Reads the IHDR chunk (its CRC checked) and walks the chunk headers up to the
    first IDAT. An animated PNG (an acTL chunk: several frames), anything
    malformed, or a long run of ancillary chunks is None: Pillow judges those.
    Pillow's open costs ~40 us a file, most of preflight's time for a small scan.
    """
    stream.seek(0)
    head = stream.read(33)
    if len(head) < 33 or head[8:16] != b"\x00\x00\x00\rIHDR":
        return None
    if struct.unpack(">I", head[29:33])[0] != zlib.crc32(head[12:29]):
        return None
    width, height = struct.unpack(">II", head[16:24])
    if not width or not height:
        return None
    at = 33
    for _ in range(_PNG_CHUNKS_READ):
        stream.seek(at)
        chunk = stream.read(8)
        if len(chunk) < 8:
            return None
        length, kind = struct.unpack(">I", chunk[:4])[0], chunk[4:]
        if kind == b"IDAT":
            return width, height
        if kind in (b"acTL", b"IEND") or length > 1 << 31:
            return None
        at += 12 + length
    return None


def _raster_sizes(stream: IO[bytes], name: str) -> tuple[tuple[int, int], ...]:
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 - imported on first use

    # Only headers are read here; this is not a decompression bomb risk, and
    # the service's own pixel limit is checked by the caller.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(stream) as image:
            frames = getattr(image, "n_frames", 1)
            sizes: list[tuple[int, int]] = []
            for index in range(frames):
                if index:
                    image.seek(index)
                sizes.append(image.size)
    except (UnidentifiedImageError, OSError, ValueError, EOFError, TypeError) as exc:
        # Pillow raises TypeError ("Missing dimensions") for some corrupt TIFF headers.
        raise UnreadableDocumentError(name, f"the image cannot be read ({exc})") from exc
    return tuple(sizes)


def _office_pages(stream: IO[bytes], fmt: Format, name: str) -> int | None:
    try:
        with zipfile.ZipFile(stream) as archive:
            if fmt is Format.PPTX:
                slides = [
                    n
                    for n in archive.namelist()
                    if n.startswith("ppt/slides/slide") and n.endswith(".xml")
                ]
                return len(slides) or None
            try:
                app = archive.read("docProps/app.xml")
            except KeyError:
                return None
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnreadableDocumentError(name, f"the document cannot be read ({exc})") from exc
    match = re.search(rb"<Pages>(\d+)</Pages>", app)
    return int(match.group(1)) if match else None
