"""The searchable PDF: the original pages, untouched, under an invisible text layer.

- A PDF input is written as an incremental update (pypdf): the original bytes
  come first, unchanged, so every content stream, image and font stays byte
  for byte; the update rewrites only each page's dictionary (its `/Contents`
  become `[q, the original streams..., Q + text layer]`, its resources gain
  the one font) and appends the new objects. Encrypted PDFs are refused
  (`UnreadableDocumentError`): an update would have to be encrypted too.
- An image input becomes one page per frame (every frame of a multi-page
  TIFF), the image filling it at its own resolution: its DPI where the file
  records one, else 72 (one pixel per point); a page that would pass PDF's
  200-inch limit is scaled down to fit. JPEG bytes are embedded as they are
  (`DCTDecode`), and so is a PNG's compressed pixel data where PDF can
  take it (grey, RGB or palette, not interlaced, no transparency: Flate with
  the PNG predictors); other PNGs, BMPs and TIFF frames are embedded as their
  decoded pixels, Flate compressed (lossless; alpha as a soft mask; palettes
  expanded). An EXIF orientation of 3, 6 or 8 becomes the page's `/Rotate`
  (the image itself stays as stored) unless the answer's page shape shows
  the service read the image as stored; mirrored orientations are not undone.
- The text layer puts each word with text, in the service's order, in render
  mode 3 (invisible) in a glyphless font (`_font`): a text matrix per word
  sends its characters from the bottom-left corner of its box along the box's
  top edge, each character 1/n of the box's width and the box's full height,
  so a rotated box gives rotated text. A space follows each word that has a
  next word on its line, so copied text keeps its words apart.
- Pixels map to the page by the page's own shape: the answer's `width` x
  `height` spread over the visible box (`/CropBox`, else `/MediaBox`, with its
  origin), turned by the page's `/Rotate`. A page of unknown pixel size uses
  its words' 0..1 coordinates the same way. A result with another page count,
  or a page whose shape differs from the document's by more than 2 %, is
  refused (`ResultMismatchError`).
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageSequence, UnidentifiedImageError
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    EncodedStreamObject,
    IndirectObject,
    NameObject,
    NumberObject,
    PdfObject,
    TextStringObject,
)

from .._exceptions import (
    DocumentNotFoundError,
    EmptyDocumentError,
    ResultMismatchError,
    UnreadableDocumentError,
    UnsupportedFormatError,
)
from .._formats import Format, detect_format
from .._preflight import _os_reason
from ._font import FONT_NAME, Codes, cid_to_gid_map, to_unicode_cmap, truetype
from ._lines import PlacedPage, group_lines, place

if TYPE_CHECKING:
    from .._models import OCRResult, Page
    from .._preflight import Document

__all__ = ["searchable_pdf"]

#: How far (relative) a page's aspect ratio may differ from the answer's.
SHAPE_TOLERANCE = 0.02
#: The resolution an image is placed at when it records none.
DEFAULT_DPI = 72.0
#: The least width and height (points) a word's box is given: the service answers some
#: boxes of no width, and readers drop glyphs that small (pdfium under 0.01 pt).
MIN_SIDE = 0.1
#: The largest page side PDF readers take (200 inches), in points.
MAX_SIDE = 14400.0
_FONT_KEY = "FAioUpstageOCR"
_IMAGE_FORMATS = (Format.JPEG, Format.PNG, Format.BMP, Format.TIFF)

Affine = tuple[float, float, float, float, float, float]


def searchable_pdf(document: Document, result: OCRResult, *, name: str | None = None) -> bytes:
    """See `aioupstage_ocr.searchable_pdf` (the public wrapper of this)."""
    data, name = _read(document, name)
    fmt = detect_format(io.BytesIO(data))
    if fmt is Format.PDF:
        return _from_pdf(data, result, name)
    if fmt in _IMAGE_FORMATS:
        return _from_image(data, result, name)
    what = (
        f"a {fmt.value.upper()} document" if fmt is not None else "not a format the service takes"
    )
    raise UnsupportedFormatError(
        name, f"a searchable PDF is made from a PDF or an image (JPEG, PNG, BMP, TIFF); {what}"
    )


def _read(document: Document, name: str | None) -> tuple[bytes, str]:
    """The document's bytes and the name its errors use (as preflight names documents)."""
    if isinstance(document, str | os.PathLike):
        label = name or os.fspath(document)
        try:
            with open(document, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise DocumentNotFoundError(label, _os_reason(exc)) from None
    elif isinstance(document, bytes | bytearray | memoryview):
        label, data = name or "<bytes>", bytes(document)
    else:
        own_name = getattr(document, "name", None)
        label = name or (own_name if isinstance(own_name, str) else "<stream>")
        data = document.read()
    if not data:
        raise EmptyDocumentError(label, "the document has no bytes")
    return data, label


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True, slots=True)
class _PageBox:
    """A PDF page's visible box in user space and its turn (`/Rotate`, clockwise)."""

    x0: float
    y0: float
    width: float
    height: float
    rotate: int

    @property
    def shown(self) -> tuple[float, float]:
        """Width and height as a viewer shows the page."""
        if self.rotate in (90, 270):
            return self.height, self.width
        return self.width, self.height


def _aspect_fits(a: tuple[float, float], b: tuple[float, float]) -> bool:
    if min(*a, *b) <= 0:
        return False
    return abs((a[0] / a[1]) / (b[0] / b[1]) - 1) <= SHAPE_TOLERANCE


def _transform(box: _PageBox, frame: tuple[float, float]) -> Affine:
    """The affine map from the answer's pixel frame (y down) to the page's user space."""
    shown_w, shown_h = box.shown
    sx, sy = shown_w / frame[0], shown_h / frame[1]
    # Shown space (y up): dx = sx*px, dy = shown_h - sy*py. Then undo the turn.
    w, h = box.width, box.height
    if box.rotate == 90:  # ux = w - dy, uy = dx
        a, b, c, d, e, f = 0.0, sx, sy, 0.0, w - shown_h, 0.0
    elif box.rotate == 180:  # ux = w - dx, uy = h - dy
        a, b, c, d, e, f = -sx, 0.0, 0.0, sy, w, h - shown_h
    elif box.rotate == 270:  # ux = dy, uy = h - dx
        a, b, c, d, e, f = 0.0, -sx, -sy, 0.0, shown_h, h
    else:
        a, b, c, d, e, f = sx, 0.0, 0.0, -sy, 0.0, shown_h
    return a, b, c, d, e + box.x0, f + box.y0


def _fit(name: str, page: Page, placed: PlacedPage, box: _PageBox) -> _PageBox:
    """`box` if the answer's page shape fits it (or fits it unturned: the turn is dropped)."""
    if not placed.known:
        return box
    frame = (placed.width, placed.height)
    if _aspect_fits(frame, box.shown):
        return box
    if box.rotate in (90, 270) and _aspect_fits(frame, (box.width, box.height)):
        return _PageBox(box.x0, box.y0, box.width, box.height, 0)
    raise ResultMismatchError(
        name,
        f"page {page.index + 1}: the result's page is {placed.width}x{placed.height} px, "
        f"the document's {box.shown[0]:g}x{box.shown[1]:g} pt (not the same shape)",
    )


# --------------------------------------------------------------------------- text layer


def _num(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass
class _Layer:
    """The text layer's font (once per document) and the codes it has handed out."""

    writer: PdfWriter
    codes: Codes = field(default_factory=Codes)
    font: IndirectObject | None = None
    _type0: DictionaryObject | None = None

    def font_ref(self) -> IndirectObject:
        if self.font is None:
            self.font = self._build_font()
        return self.font

    def add(self, obj: PdfObject) -> IndirectObject:
        """`obj` added to the document; its reference."""
        return self.writer._add_object(obj)

    def stream(self, data: bytes, **entries: PdfObject) -> IndirectObject:
        """A Flate stream of `data` (with `entries` in its dictionary), added."""
        stream = DecodedStreamObject()
        stream.set_data(data)
        encoded = stream.flate_encode(level=9)
        for key, value in entries.items():
            encoded[NameObject(f"/{key}")] = value
        return self.add(encoded)

    def _build_font(self) -> IndirectObject:
        font_file = truetype()
        descriptor = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/FontDescriptor"),
                NameObject("/FontName"): NameObject(f"/{FONT_NAME}"),
                NameObject("/Flags"): NumberObject(4),  # symbolic
                NameObject("/FontBBox"): ArrayObject([NumberObject(v) for v in (0, 0, 1000, 1000)]),
                NameObject("/ItalicAngle"): NumberObject(0),
                NameObject("/Ascent"): NumberObject(1000),
                NameObject("/Descent"): NumberObject(0),
                NameObject("/CapHeight"): NumberObject(1000),
                NameObject("/StemV"): NumberObject(80),
                NameObject("/FontFile2"): self.stream(
                    font_file, Length1=NumberObject(len(font_file))
                ),
            }
        )
        cid_font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/CIDFontType2"),
                NameObject("/BaseFont"): NameObject(f"/{FONT_NAME}"),
                NameObject("/CIDSystemInfo"): DictionaryObject(
                    {
                        NameObject("/Registry"): TextStringObject("Adobe"),
                        NameObject("/Ordering"): TextStringObject("Identity"),
                        NameObject("/Supplement"): NumberObject(0),
                    }
                ),
                NameObject("/FontDescriptor"): self.add(descriptor),
                NameObject("/DW"): NumberObject(1000),
                NameObject("/CIDToGIDMap"): self.stream(cid_to_gid_map()),
            }
        )
        self._type0 = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type0"),
                NameObject("/BaseFont"): NameObject(f"/{FONT_NAME}"),
                NameObject("/Encoding"): NameObject("/Identity-H"),
                NameObject("/DescendantFonts"): ArrayObject([self.add(cid_font)]),
            }
        )
        return self.add(self._type0)

    def finish(self) -> None:
        """Write the ToUnicode CMap, now that every code the pages use is known."""
        if self._type0 is not None:
            cmap = to_unicode_cmap(self.codes.chars)
            self._type0[NameObject("/ToUnicode")] = self.stream(cmap)

    def operators(self, placed: PlacedPage, to_page: Affine, font_key: str) -> bytes:
        """The content stream that sets `placed`'s words invisibly (empty: no words)."""
        if not placed.words:
            return b""
        a, b, c, d, e, f = to_page

        def point(x: float, y: float) -> tuple[float, float]:
            return a * x + c * y + e, b * x + d * y + f

        ops = [b"BT", b"3 Tr", f"/{font_key} 1 Tf".encode()]
        for line in group_lines(placed.words):
            for k, word in enumerate(line):
                codes = self.codes.encode(word.text)
                n = len(codes) // 2
                if not n:
                    continue
                p0, p1, p2, p3 = (point(x, y) for x, y in word.quad)
                ux = ((p1[0] - p0[0]) + (p2[0] - p3[0])) / 2
                uy = ((p1[1] - p0[1]) + (p2[1] - p3[1])) / 2
                vx = ((p0[0] - p3[0]) + (p1[0] - p2[0])) / 2
                vy = ((p0[1] - p3[1]) + (p1[1] - p2[1])) / 2
                length = math.hypot(ux, uy)
                if length < MIN_SIDE:  # a box with (almost) no width: a sliver, along x
                    ux, uy = (
                        (ux / length * MIN_SIDE, uy / length * MIN_SIDE)
                        if length
                        else (MIN_SIDE, 0.0)
                    )
                    length = MIN_SIDE
                if math.hypot(vx, vy) < MIN_SIDE:  # no height: a sliver across the text
                    vx, vy = -uy / length * MIN_SIDE, ux / length * MIN_SIDE
                if k + 1 < len(line):
                    codes += self.codes.encode(" ")
                matrix = " ".join(_num(v) for v in (ux / n, uy / n, vx, vy, p3[0], p3[1]))
                ops.append(f"{matrix} Tm <{codes.hex()}> Tj".encode())
        ops.append(b"ET")
        return b"\n".join(ops) + b"\n"


def _check_count(name: str, result: OCRResult, pages: int) -> None:
    if result.num_pages != pages:
        raise ResultMismatchError(
            name, f"the result has {result.num_pages} pages, the document {pages}"
        )


# --------------------------------------------------------------------------- PDF input


def _inherited(page: DictionaryObject, key: str) -> Any:
    node: Any = page
    for _ in range(64):  # page trees are shallow; a loop in a broken one must end
        if node is None:
            return None
        node = node.get_object()
        if key in node:
            return node[key].get_object()
        node = node.get("/Parent")
    return None


def _page_box(page: DictionaryObject) -> _PageBox:
    raw = _inherited(page, "/CropBox") or _inherited(page, "/MediaBox")
    values = [float(v) for v in raw] if raw is not None and len(raw) == 4 else [0, 0, 612, 792]
    x0, x1 = sorted((values[0], values[2]))
    y0, y1 = sorted((values[1], values[3]))
    rotate = _inherited(page, "/Rotate")
    turn = int(rotate) % 360 if isinstance(rotate, int | float) else 0
    return _PageBox(x0, y0, x1 - x0, y1 - y0, turn if turn in (0, 90, 180, 270) else 0)


def _from_pdf(data: bytes, result: OCRResult, name: str) -> bytes:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableDocumentError(
                name,
                "the PDF is encrypted (password-protected or restricted): "
                "a searchable PDF cannot be added to it",
            )
        writer = PdfWriter(reader, incremental=True)
        pages = list(writer.pages)
    except PdfReadError as exc:
        raise UnreadableDocumentError(name, f"not a readable PDF ({exc})") from None
    _check_count(name, result, len(pages))
    layer = _Layer(writer)
    opening: IndirectObject | None = None
    for page, pdf_page in zip(result.pages, pages, strict=True):
        placed = place(page)
        box = _fit(name, page, placed, _page_box(pdf_page))
        if not placed.words:
            continue
        key, resources = _with_font(pdf_page, layer)
        text = layer.operators(placed, _transform(box, (placed.width, placed.height)), key)
        original = pdf_page.get("/Contents")
        streams: list[PdfObject] = []
        if original is not None:
            resolved = original.get_object()
            items = list(resolved) if isinstance(resolved, ArrayObject) else [original]
            if opening is None:
                opening = layer.stream(b"q\n")
            streams = [opening, *items]
            text = b"Q\n" + text
        streams.append(layer.stream(text))
        pdf_page[NameObject("/Contents")] = ArrayObject(streams)
        pdf_page[NameObject("/Resources")] = resources
    layer.finish()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _with_font(page: DictionaryObject, layer: _Layer) -> tuple[str, DictionaryObject]:
    """A copy of `page`'s resources (entries shared, not copied) with the layer's font added."""
    original = _inherited(page, "/Resources")
    resources = DictionaryObject()
    if isinstance(original, DictionaryObject):
        resources.update({NameObject(k): v for k, v in original.items()})
    fonts = DictionaryObject()
    old_fonts = resources.get("/Font")
    if old_fonts is not None and isinstance(old_fonts.get_object(), DictionaryObject):
        fonts.update({NameObject(k): v for k, v in old_fonts.get_object().items()})
    key, n = _FONT_KEY, 0
    while f"/{key}" in fonts:
        n += 1
        key = f"{_FONT_KEY}{n}"
    fonts[NameObject(f"/{key}")] = layer.font_ref()
    resources[NameObject("/Font")] = fonts
    return key, resources


# --------------------------------------------------------------------------- image input

_ORIENTATION_TURN = {3: 180, 6: 90, 8: 270}


def _dpi(frame: Image.Image) -> tuple[float, float]:
    dpi: Any = frame.info.get("dpi")
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return DEFAULT_DPI, DEFAULT_DPI
    if not (10 <= x <= 10000 and 10 <= y <= 10000):
        return DEFAULT_DPI, DEFAULT_DPI
    return x, y


def _flate_image(frame: Image.Image) -> tuple[bytes, dict[str, PdfObject], Image.Image | None]:
    """Lossless pixels: (Flate data, image dictionary entries, the alpha to mask with)."""
    image = frame
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "PA":
        image = image.convert("RGBA")
    alpha: Image.Image | None = None
    if image.mode in ("LA", "RGBA"):
        alpha = image.getchannel("A")
        image = image.convert("L" if image.mode == "LA" else "RGB")
    bits = 8
    if image.mode == "1":
        space, bits, raw = "/DeviceGray", 1, image.tobytes()
    elif image.mode == "L":
        space, raw = "/DeviceGray", image.tobytes()
    elif image.mode in ("I;16", "I;16B", "I;16L"):
        space, bits, raw = "/DeviceGray", 16, image.tobytes("raw", "I;16B")
    elif image.mode == "CMYK":
        space, raw = "/DeviceCMYK", image.tobytes()
    else:  # RGB, and what has no PDF colour space of its own (I, F, YCbCr, LAB...)
        image = image.convert("RGB") if image.mode != "RGB" else image
        space, raw = "/DeviceRGB", image.tobytes()
    entries: dict[str, PdfObject] = {
        "ColorSpace": NameObject(space),
        "BitsPerComponent": NumberObject(bits),
    }
    return zlib.compress(raw, 6), entries, alpha


@dataclass(frozen=True, slots=True)
class _Encoded:
    """Image data embedded as it is in the file: its filter and image dictionary entries."""

    data: bytes
    filter: str
    entries: dict[str, PdfObject]


def _jpeg(data: bytes, image: Image.Image) -> _Encoded | None:
    """A JPEG's own bytes as `DCTDecode` (None for a colour mode PDF has no space for)."""
    space = {"L": "/DeviceGray", "RGB": "/DeviceRGB", "CMYK": "/DeviceCMYK"}.get(image.mode)
    if space is None:
        return None
    entries: dict[str, PdfObject] = {
        "ColorSpace": NameObject(space),
        "BitsPerComponent": NumberObject(8),
    }
    if image.mode == "CMYK" and "adobe" in image.info:  # Adobe CMYK JPEGs are stored inverted
        entries["Decode"] = ArrayObject([NumberObject(v) for v in (1, 0) * 4])
    return _Encoded(data, "/DCTDecode", entries)


def _png(data: bytes) -> _Encoded | None:
    """A PNG's compressed pixel data (IDAT) as it is: PDF's Flate with the PNG predictors.

    For grey, RGB and palette PNGs without interlacing or transparency; None
    otherwise (those are decoded: the alpha becomes a soft mask).
    """
    header: tuple[int, ...] | None = None
    palette = b""
    idat: list[bytes] = []
    at = 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        body = data[at + 8 : at + 8 + length]
        at += 12 + length
        if kind == b"IHDR" and length == 13:
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"tRNS":
            return None
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        return None
    width, _, depth, color, _, _, interlace = header
    if interlace or color not in (0, 2, 3) or (color == 3 and not palette):
        return None
    space: PdfObject
    if color == 3:
        space = ArrayObject(
            [
                NameObject("/Indexed"),
                NameObject("/DeviceRGB"),
                NumberObject(len(palette) // 3 - 1),
                ByteStringObject(palette),
            ]
        )
    else:
        space = NameObject("/DeviceGray" if color == 0 else "/DeviceRGB")
    colors = 3 if color == 2 else 1
    parms = DictionaryObject(
        {
            NameObject("/Predictor"): NumberObject(15),
            NameObject("/Colors"): NumberObject(colors),
            NameObject("/BitsPerComponent"): NumberObject(depth),
            NameObject("/Columns"): NumberObject(width),
        }
    )
    entries: dict[str, PdfObject] = {
        "ColorSpace": space,
        "BitsPerComponent": NumberObject(depth),
        "DecodeParms": parms,
    }
    return _Encoded(b"".join(idat), "/FlateDecode", entries)


def _image_object(layer: _Layer, frame: Image.Image, encoded: _Encoded | None) -> IndirectObject:
    """The image XObject of `frame`: `encoded` as it is, else its pixels Flate compressed."""
    width, height = frame.size
    stream = EncodedStreamObject()
    alpha: Image.Image | None = None
    if encoded is None:
        data, entries, alpha = _flate_image(frame)
        encoded = _Encoded(data, "/FlateDecode", entries)
    stream._data = encoded.data
    stream[NameObject("/Filter")] = NameObject(encoded.filter)
    stream[NameObject("/Type")] = NameObject("/XObject")
    stream[NameObject("/Subtype")] = NameObject("/Image")
    stream[NameObject("/Width")] = NumberObject(width)
    stream[NameObject("/Height")] = NumberObject(height)
    for key, value in encoded.entries.items():
        stream[NameObject(f"/{key}")] = value
    if alpha is not None:
        mask = EncodedStreamObject()
        mask._data = zlib.compress(alpha.tobytes(), 6)
        for key, value in (
            ("/Type", NameObject("/XObject")),
            ("/Subtype", NameObject("/Image")),
            ("/Width", NumberObject(width)),
            ("/Height", NumberObject(height)),
            ("/ColorSpace", NameObject("/DeviceGray")),
            ("/BitsPerComponent", NumberObject(8)),
            ("/Filter", NameObject("/FlateDecode")),
        ):
            mask[NameObject(key)] = value
        stream[NameObject("/SMask")] = layer.add(mask)
    return layer.add(stream)


def _frames(image: Image.Image, name: str) -> list[Image.Image]:
    """Every frame, decoded (a TIFF's pages; one for other formats)."""
    try:
        return [frame.copy() for frame in ImageSequence.Iterator(image)]
    except (OSError, ValueError) as exc:
        raise UnreadableDocumentError(name, f"cannot decode the image ({exc})") from None


def _from_image(data: bytes, result: OCRResult, name: str) -> bytes:
    try:
        image = Image.open(io.BytesIO(data))  # reads the header; pixels only where needed
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableDocumentError(name, f"cannot decode the image ({exc})") from None
    encoded: _Encoded | None = None
    if image.format in ("JPEG", "MPO"):
        encoded = _jpeg(data, image)
    elif image.format == "PNG":
        encoded = _png(data)
    orientation = image.getexif().get(0x0112, 1) if image.format in ("JPEG", "MPO", "TIFF") else 1
    frames = [image] if encoded is not None else _frames(image, name)
    _check_count(name, result, len(frames))
    writer = PdfWriter()
    layer = _Layer(writer)
    for page, frame in zip(result.pages, frames, strict=True):
        width_px, height_px = frame.size
        xdpi, ydpi = _dpi(frame)
        width, height = width_px * 72 / xdpi, height_px * 72 / ydpi
        shrink = min(1.0, MAX_SIDE / max(width, height))
        width, height = width * shrink, height * shrink
        turn = _ORIENTATION_TURN.get(orientation, 0)
        placed = place(page)
        box = _fit(name, page, placed, _PageBox(0, 0, width, height, turn))
        pdf_page = writer.add_blank_page(width, height)
        if box.rotate:
            pdf_page[NameObject("/Rotate")] = NumberObject(box.rotate)
        key, resources = _with_font(pdf_page, layer)
        resources[NameObject("/XObject")] = DictionaryObject(
            {NameObject("/Im0"): _image_object(layer, frame, encoded)}
        )
        draw = f"q {_num(width)} 0 0 {_num(height)} 0 0 cm /Im0 Do Q\n".encode()
        text = layer.operators(placed, _transform(box, (placed.width, placed.height)), key)
        pdf_page[NameObject("/Resources")] = resources
        pdf_page[NameObject("/Contents")] = layer.stream(draw + text)
    layer.finish()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
