"""Small real documents made on the fly, for tests, benchmarks and the demo.

`make_pdf` writes a valid PDF with a text layer (Helvetica, one text line per
line of the page's text), so the emulator reads back exactly what was written;
`make_image` and `make_tiff` draw distinct pictures from a seed.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence

__all__ = ["make_image", "make_pdf", "make_tiff", "page_text"]

_LINE_CHARS = 80
_LEADING = 14


def page_text(number: int, words: int = 12) -> str:
    """A line of text that tells page `number` (from 1) apart from every other."""
    rng = random.Random(number)
    vocabulary = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta")
    tail = " ".join(rng.choice(vocabulary) for _ in range(max(0, words - 2)))
    return f"page {number} {tail}".strip()


def _escape(text: str) -> bytes:
    raw = text.encode("latin-1", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _wrap(text: str) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}".strip()
            if len(candidate) > _LINE_CHARS and current:
                lines.append(current)
                current = word
            else:
                current = candidate
        lines.append(current)
    return lines


def make_pdf(
    pages: int | Sequence[str], *, width: int = 612, height: int = 792, image_bytes: int = 0
) -> bytes:
    """A PDF of `pages` pages (or one page per given text) with a real text layer.

    With a count, page n reads `page_text(n)`. `image_bytes` gives each page an
    image of that many seeded random (incompressible) bytes, drawn in a corner:
    a scan-sized file whose text still reads back.
    """
    texts = [page_text(n) for n in range(1, pages + 1)] if isinstance(pages, int) else list(pages)
    if not texts:
        raise ValueError("a PDF needs at least one page")
    count = len(texts)
    # Object numbers: 1 catalog, 2 pages, 3 font, then (page, content) pairs,
    # then one image per page when asked for.
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    kids = []
    for index, text in enumerate(texts):
        page_obj, content_obj = 4 + 2 * index, 5 + 2 * index
        kids.append(f"{page_obj} 0 R".encode())
        lines = _wrap(text)
        ops = [b"BT", b"/F1 12 Tf", f"{_LEADING} TL".encode(), b"72 %d Td" % (height - 72)]
        for number, line in enumerate(lines):
            if number:
                ops.append(b"T*")
            ops.append(b"(" + _escape(line) + b") Tj")
        ops.append(b"ET")
        images = b""
        if image_bytes:
            image_obj = 4 + 2 * count + index
            pixels = random.Random(index).randbytes(image_bytes)
            objects[image_obj] = (
                b"<< /Type /XObject /Subtype /Image /Width %d /Height 1 " % image_bytes
                + b"/ColorSpace /DeviceGray /BitsPerComponent 8 /Length %d >>\n" % image_bytes
                + b"stream\n"
                + pixels
                + b"\nendstream"
            )
            ops.append(b"q 72 0 0 8 0 0 cm /Im1 Do Q")
            images = b" /XObject << /Im1 %d 0 R >>" % image_obj
        stream = b"\n".join(ops)
        objects[content_obj] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
        objects[page_obj] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] " % (
            width,
            height,
        ) + b"/Resources << /Font << /F1 3 0 R >>%s >> /Contents %d 0 R >>" % (images, content_obj)
    objects[2] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % count

    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = out.tell()
        out.write(b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n")
    xref = out.tell()
    size = max(objects) + 1
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for number in range(1, size):
        out.write(b"%010d 00000 n \n" % offsets[number])
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref))
    return out.getvalue()


def _picture(seed: int, width: int, height: int) -> object:
    from PIL import Image, ImageDraw  # noqa: PLC0415 - Pillow loads on first use

    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = (
            min(width - 1, x0 + rng.randrange(1, 80)),
            min(height - 1, y0 + rng.randrange(1, 40)),
        )
        draw.rectangle((x0, y0, max(x0, x1), max(y0, y1)), fill=(rng.randrange(256), 0, 0))
    return image


def make_image(fmt: str = "png", *, seed: int = 0, width: int = 320, height: int = 240) -> bytes:
    """An image (`png`, `jpeg`, `bmp` or `tiff`) whose pixels differ by `seed`."""
    image = _picture(seed, width, height)
    out = io.BytesIO()
    image.save(out, format=fmt.upper())  # type: ignore[attr-defined]
    return out.getvalue()


def make_tiff(frames: int, *, seed: int = 0, width: int = 200, height: int = 150) -> bytes:
    """A multi-page TIFF of `frames` distinct pages."""
    images = [_picture(seed * 1000 + n, width, height) for n in range(frames)]
    out = io.BytesIO()
    first, rest = images[0], images[1:]
    first.save(out, format="TIFF", save_all=True, append_images=rest)  # type: ignore[attr-defined]
    return out.getvalue()
