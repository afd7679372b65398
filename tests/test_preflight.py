"""Preflight: every document the service would refuse is refused first, naming file and reason."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from aioupstage_ocr import (
    DocumentLimits,
    DocumentNotFoundError,
    DocumentTooLargeError,
    EmptyDocumentError,
    Format,
    TooManyPagesError,
    TooManyPixelsError,
    UnreadableDocumentError,
    UnsupportedFormatError,
)
from aioupstage_ocr._preflight import (
    CHUNK_BYTES,
    INLINE_READ,
    SMALL_UPLOAD,
    choose_route,
    prepare,
    prepare_inline,
    prepares_inline,
)
from aioupstage_ocr.testing._documents import make_image, make_pdf, make_tiff

SMALL = DocumentLimits(sync_max_pages=2, async_max_pages=5)


def test_path_pdf(tmp_path: Path) -> None:
    """A PDF path: format, pages, size, hash and route, streamed from disk."""
    data = make_pdf(3)
    path = tmp_path / "scan.pdf"
    path.write_bytes(data)
    doc = prepare(path)
    assert doc.format is Format.PDF
    assert doc.pages == 3
    assert doc.size == len(data)
    assert doc.sha256 == hashlib.sha256(data).hexdigest()
    assert doc.route == "sync"
    assert doc.upload_name == "scan.pdf"
    assert doc.content_type == "application/pdf"
    assert doc.source == path
    assert doc.name == str(path)
    assert doc.open() == data  # a small file is read whole for its upload


def test_large_path_streams_from_disk(tmp_path: Path) -> None:
    """A file over SMALL_UPLOAD is opened for its upload, never read whole."""
    data = make_image("png") + b"\0" * (SMALL_UPLOAD + 1)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    body = prepare(path).open()
    assert isinstance(body, io.BufferedReader)
    with body:
        assert body.read() == data


def test_hash_streams_large_file(tmp_path: Path) -> None:
    """The sha256 of a file bigger than one chunk is that of its whole content."""
    image = make_image("png")
    data = image + os.urandom(3 * CHUNK_BYTES + 17)  # trailing bytes after IEND still a PNG
    path = tmp_path / "big.png"
    path.write_bytes(data)
    assert prepare(path).sha256 == hashlib.sha256(data).hexdigest()


def test_bytes_with_filename() -> None:
    """Bytes are named by `filename`; without one they still go as `document.<ext>`."""
    data = make_pdf(1)
    named = prepare(data, filename="letter.pdf")
    assert (named.name, named.upload_name, named.source) == ("letter.pdf", "letter.pdf", data)
    anonymous = prepare(bytearray(data))
    assert anonymous.name == "<bytes>"
    assert anonymous.upload_name == "document.pdf"
    assert anonymous.open() == data


def test_png_named_pdf(tmp_path: Path) -> None:
    """The format comes from the content; the upload name's extension follows it."""
    path = tmp_path / "photo.pdf"
    path.write_bytes(make_image("png"))
    doc = prepare(path)
    assert doc.format is Format.PNG
    assert doc.upload_name == "photo.png"
    assert doc.content_type == "image/png"
    assert doc.pages == 1
    assert doc.max_pixels is not None


def test_file_object_is_rewound_and_never_closed(tmp_path: Path) -> None:
    """A caller's file object: read from its start, lent to the upload, left open."""
    data = make_tiff(2)
    path = tmp_path / "frames.tif"
    path.write_bytes(data)
    with path.open("rb") as handle:
        handle.read(10)
        doc = prepare(handle)
        assert doc.name == str(path)
        assert doc.upload_name == "frames.tif"
        assert (doc.format, doc.pages) == (Format.TIFF, 2)
        handle.read(5)
        body = doc.open()
        assert isinstance(body, io.RawIOBase)
        assert body.read() == data
        body.close()
        assert not handle.closed
        handle.seek(0)
        assert handle.read(4) == data[:4]


def test_in_memory_and_unseekable_streams() -> None:
    """A BytesIO goes as its bytes; a pipe is read once, up to one byte past the limit."""
    data = make_pdf(2)
    doc = prepare(io.BytesIO(data), filename="memo.pdf")
    assert doc.open() == data
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        piped = prepare(pipe, filename="piped.pdf")
    assert piped.source == data
    assert piped.pages == 2


def test_missing_and_folder(tmp_path: Path) -> None:
    """A missing path and a folder are refused with the path in the message."""
    missing = tmp_path / "nope.pdf"
    with pytest.raises(DocumentNotFoundError, match=r"nope.pdf: no such file") as info:
        prepare(missing)
    assert info.value.document == str(missing)
    with pytest.raises(DocumentNotFoundError, match="is a folder"):
        prepare(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable(tmp_path: Path) -> None:
    """A file without read permission is refused as unreadable."""
    path = tmp_path / "locked.pdf"
    path.write_bytes(make_pdf(1))
    path.chmod(0)
    with pytest.raises(DocumentNotFoundError, match="permission denied"):
        prepare(path)


def test_empty(tmp_path: Path) -> None:
    """Zero bytes: its own error, whatever the kind of input."""
    path = tmp_path / "empty.pdf"
    path.touch()
    with pytest.raises(EmptyDocumentError, match=r"empty.pdf: the file is empty"):
        prepare(path)
    with pytest.raises(EmptyDocumentError, match=r"blank.png"):
        prepare(b"", filename="blank.png")


def test_too_big_sparse_file(tmp_path: Path) -> None:
    """A 51 MB (sparse) file is refused from its size alone, without reading it."""
    path = tmp_path / "huge.pdf"
    with path.open("wb") as handle:
        handle.truncate(51_000_000)
    with pytest.raises(DocumentTooLargeError, match=r"huge.pdf: 51.0 MB .* over the limit"):
        prepare(path)
    # A raised limit lets it through to the next check (content: all zeros).
    with pytest.raises(UnsupportedFormatError):
        prepare(path, limits=DocumentLimits(max_bytes=100_000_000))


def test_unsupported_text(tmp_path: Path) -> None:
    """A text file is not a format the service takes, whatever its name says."""
    path = tmp_path / "notes.txt"
    path.write_text("just some words\n")
    with pytest.raises(UnsupportedFormatError, match=r"notes.txt: not a format"):
        prepare(path)
    fake = tmp_path / "fake.pdf"
    fake.write_text("not a pdf at all")
    with pytest.raises(UnsupportedFormatError, match=r"named .pdf but the content is not PDF"):
        prepare(fake)


def test_corrupt_and_password_pdf(tmp_path: Path, samples: Path) -> None:
    """A PDF whose pages cannot be read (corrupt, or password-protected) is refused."""
    with pytest.raises(UnreadableDocumentError, match="password"):
        prepare(samples / "libreoffice-writer-password.pdf")
    corrupt = tmp_path / "corrupt.pdf"
    corrupt.write_bytes(b"%PDF-1.4\n" + b"garbage " * 100)
    with pytest.raises(UnreadableDocumentError, match=r"corrupt.pdf"):
        prepare(corrupt)


def test_page_limits_and_routes() -> None:
    """Auto routes by page count; past a limit a PDF is cut into parts under it."""
    four = make_pdf(4)
    assert prepare(make_pdf(2), limits=SMALL).route == "sync"
    assert prepare(four, limits=SMALL).route == "async"
    assert prepare(make_pdf(1), mode="async", limits=SMALL).route == "async"
    assert not prepare(four, limits=SMALL).parts
    # Sync mode: parts of at most sync_max_pages, each sent sync.
    forced = prepare(four, mode="sync", limits=SMALL, filename="four.pdf")
    routes = [(p.source_pages, p.route) for p in forced.parts]
    assert routes == [((1, 2), "sync"), ((3, 4), "sync")]
    assert forced.route == "sync"
    assert forced.pages == 4
    # Over async_max_pages: even parts, each its own async request.
    six = prepare(make_pdf(6), limits=SMALL)
    assert [p.source_pages for p in six.parts] == [(1, 2, 3), (4, 5, 6)]
    assert {p.route for p in six.parts} == {"async"}
    assert six.sha256 == hashlib.sha256(make_pdf(6)).hexdigest()  # the document's own hash
    assert all(p.sha256 == hashlib.sha256(p.source).hexdigest() for p in six.parts)  # type: ignore[arg-type]
    # A format that cannot be cut is still refused past a limit.
    with pytest.raises(TooManyPagesError):
        choose_route("a.docx", 6, "auto", SMALL)


def test_default_routes() -> None:
    """With the service's limits: 100 pages go sync, 101 async, 1001 are refused."""
    assert choose_route("a", 100, "auto", DocumentLimits()) == "sync"
    assert choose_route("a", 101, "auto", DocumentLimits()) == "async"
    assert choose_route("a", None, "auto", DocumentLimits()) == "sync"
    with pytest.raises(TooManyPagesError):
        choose_route("a", 1001, "auto", DocumentLimits())
    with pytest.raises(ValueError, match="mode"):
        choose_route("a", 1, "fast", DocumentLimits())  # type: ignore[arg-type]
    assert prepare(make_pdf(101)).route == "async"


def test_real_long_pdf_goes_async(samples: Path) -> None:
    """The 117-page sample goes async in auto mode."""
    doc = prepare(samples / "GeoTopo-komprimiert.pdf")
    assert (doc.pages, doc.route) == (117, "async")


def test_too_many_pixels() -> None:
    """A page over the pixel limit is refused with its count."""
    image = make_image("png")
    with pytest.raises(TooManyPixelsError, match="pixels; the service takes at most 100 per page"):
        prepare(image, filename="wide.png", limits=DocumentLimits(max_pixels_per_page=100))


def test_not_a_document(tmp_path: Path) -> None:
    """An int, or a file opened in text mode, is a programming error."""
    with pytest.raises(TypeError, match="path, bytes or a binary file object"):
        prepare(42)  # type: ignore[arg-type]
    path = tmp_path / "a.pdf"
    path.write_bytes(make_pdf(1))
    with path.open() as text, pytest.raises(TypeError, match="binary mode"):
        prepare(text)  # type: ignore[arg-type]


def test_file_changed_before_upload(tmp_path: Path) -> None:
    """A file that changed after preflight is never uploaded as if it were the one checked.

    A small one is sent as preflight read it (its hash and pages are of those
    bytes); a larger one, read again at upload, is refused if its size moved.
    """
    small = tmp_path / "moving.pdf"
    small.write_bytes(make_pdf(1))
    doc = prepare(small)
    small.write_bytes(make_pdf(3))
    assert doc.open() == make_pdf(1)
    assert hashlib.sha256(make_pdf(1)).hexdigest() == doc.sha256
    large = tmp_path / "large.pdf"
    large.write_bytes(make_pdf(1) + b"%" + bytes(INLINE_READ))
    doc = prepare(large)
    large.write_bytes(make_pdf(3))
    with pytest.raises(UnreadableDocumentError, match="changed since it was checked"):
        doc.open()


def test_which_documents_are_prepared_on_the_event_loop(tmp_path: Path) -> None:
    """Small local images and plain PDFs; large files, URLs, bytes and missing files go to a
    thread, and so does a small PDF whose page tree pypdf must read.

    A small image prepared in place is judged exactly as in a thread: the
    decision is where `prepare` runs, not what it checks.
    """
    small = tmp_path / "a.png"
    small.write_bytes(make_image("png", width=16, height=16))
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff" + bytes(INLINE_READ))
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(make_pdf(1))
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"not an image")
    updated = tmp_path / "updated.pdf"  # an incremental update: pypdf's to read
    updated.write_bytes(make_pdf(3).replace(b"/Root 1 0 R", b"/Root 1 0 R /Prev 9"))
    assert prepares_inline(small)
    assert prepares_inline(str(small))
    assert prepares_inline(fake)
    assert prepares_inline(pdf)
    inline = prepare_inline(pdf)
    assert inline is not None
    assert (inline.pages, inline.body) == (prepare(pdf).pages, pdf.read_bytes())
    assert prepares_inline(updated)
    assert prepare_inline(updated) is None
    assert prepare(updated).pages == 3
    disguised = tmp_path / "disguised.png"  # judged by its content: pypdf's, in a thread
    disguised.write_bytes(updated.read_bytes())
    assert prepares_inline(disguised)
    assert prepare_inline(disguised) is None
    for other in (big, tmp_path / "missing.png", "s3://bucket/a.png", small.read_bytes()):
        assert not prepares_inline(other)
    with pytest.raises(UnsupportedFormatError, match=r"fake\.png"):
        prepare(fake)
