"""Preflight: judge a document before uploading it, and choose its endpoint.

`prepare` is blocking file work (stat, magic bytes, page and pixel counts, a
streamed sha256): run it off the event loop with `anyio.to_thread.run_sync`,
except where `prepares_inline` says it costs less than the trip to a thread.
Every refusal is a `DocumentError` subclass naming the file and the reason, so
nothing the service would reject is ever uploaded.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Literal, TypeAlias

from ._config import DEFAULT_DOCUMENT_LIMITS, DocumentLimits
from ._exceptions import (
    DocumentError,
    DocumentNotFoundError,
    DocumentTooLargeError,
    EmptyDocumentError,
    PageRangeError,
    TooManyPagesError,
    TooManyPixelsError,
    UnreadableDocumentError,
    UnsupportedFormatError,
)
from ._formats import Format, NeedsFullParseError, detect_format, inspect_document
from ._pages import CUTTABLE, Cut, PageRanges, cut_document, page_list, plan_cuts, select_pages
from ._storage import RemoteDocument, is_url, open_document

__all__ = [
    "CHUNK_BYTES",
    "Document",
    "Mode",
    "Plan",
    "PreparedDocument",
    "Route",
    "choose_route",
    "cut_pages",
    "plan",
    "prepare",
]

#: What `ocr`, `submit` and `ocr_many` take: a path, the bytes themselves, or a
#: binary file object (read from its start; left open and rewound, never closed).
Document: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]
Mode: TypeAlias = Literal["auto", "sync", "async"]
Route: TypeAlias = Literal["sync", "async"]

#: Hashing reads this much at a time, so memory stays flat whatever the size.
CHUNK_BYTES = 1 << 20

# The extension a format is uploaded under when the given name's does not match
# its content (first entry), and the endings that already match.
_SUFFIXES: dict[Format, tuple[str, ...]] = {
    Format.PDF: (".pdf",),
    Format.JPEG: (".jpg", ".jpeg", ".jpe"),
    Format.PNG: (".png",),
    Format.BMP: (".bmp",),
    Format.TIFF: (".tiff", ".tif"),
    Format.HEIC: (".heic", ".heif"),
    Format.DOCX: (".docx",),
    Format.PPTX: (".pptx",),
    Format.XLSX: (".xlsx",),
    Format.HWP: (".hwp",),
    Format.HWPX: (".hwpx",),
}

_ACCEPTED = ", ".join(f.name for f in Format)


#: Files up to this size are read whole for their upload; larger ones stream from disk.
SMALL_UPLOAD = 256 * 1024
#: Local files up to this size are read on the event loop itself: one open and read
#: of a few pages costs less than the hop to a worker thread and back.
INLINE_READ = 64 * 1024


#: PDFs up to this size are prepared on the event loop where their page tree is plain.
INLINE_PDF = 16 * 1024

#: Suffixes of the formats judged from their headers alone: no PDF or office parse.
_HEADER_ONLY = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".bmp"})


def prepares_inline(document: object) -> bool:
    """Whether `prepare(document)` is cheap enough to run on the event loop.

    True for a local image file (PNG, JPEG, BMP by its name) of at most
    `INLINE_READ` bytes: one stat, then one read and header checks, ~40 us in
    all. Sending it to a worker thread and back costs more than that:
    measured in benchmark 3, ~0.3 ms of CPU a document once the loop and the
    thread contend for the GIL. True too for a PDF of at most `INLINE_PDF`
    bytes: `prepare_inline` reads its page tree (~40 us) where it is plain
    (`page_tree_count`), and leaves any other to a thread, where pypdf reads
    it (a compressed stream on the loop could take long), as it does a file
    whose content needs a full parse whatever its name. An office file, a
    large file, a URL or a file object goes to a thread. Blocking only for a
    stat (the precedent is `INLINE_READ` itself).
    """
    return _inline_stat(document) is not None


def prepare_inline(
    document: Document,
    *,
    filename: str | None = None,
    mode: Mode = "auto",
    limits: DocumentLimits = DEFAULT_DOCUMENT_LIMITS,
    pages: PageRanges | None = None,
) -> PreparedDocument | None:
    """`prepare(document)` where `prepares_inline` says yes (its one stat serves both);
    None where it says no, or where the content needs more than a header or a
    plain page tree read (`inspect_document`'s `quick`): prepare that one in a
    worker thread."""
    info = _inline_stat(document)
    if info is None:
        return None
    assert isinstance(document, str | os.PathLike)
    try:
        return _prepare_path(
            document, info, filename=filename, mode=mode, limits=limits, pages=pages, quick=True
        )
    except NeedsFullParseError:
        return None


def _inline_stat(document: object) -> os.stat_result | None:
    """The stat of a document `prepares_inline` takes; None for any other."""
    if not isinstance(document, str | os.PathLike) or is_url(document):
        return None
    name = os.fspath(document)
    if not isinstance(name, str):
        return None
    suffix = os.path.splitext(name)[1].lower()
    most = INLINE_READ if suffix in _HEADER_ONLY else INLINE_PDF if suffix == ".pdf" else 0
    if not most:
        return None
    try:
        info = os.stat(name)
    except (OSError, ValueError):
        return None  # the thread's prepare says why
    return info if stat.S_ISREG(info.st_mode) and info.st_size <= most else None


@dataclass(frozen=True, slots=True, eq=False)
class PreparedDocument:
    """A document that passed preflight, ready to upload.

    - `name`: how messages name it (the path as given, or the filename).
    - `source`: a `Path` (streamed from disk at upload), a `RemoteDocument`
      (an object-storage URL, streamed from the store at upload), the
      `bytes`, or the caller's binary file object (rewound for each attempt,
      never closed).
    - `upload_name`: the filename sent; its extension matches the real format.
    - `pages` / `max_pixels`: None where they cannot be told without rendering.
    - `route`: the endpoint it goes to, `"sync"` or `"async"` (for a document
      sent in `parts`, "async" when any part goes async).
    - `parts`: when not empty, the document is not uploaded itself: these are
      sent instead, each its own request (only the pages asked for, or a
      document over a limit cut under it; see `_pages`), and their results
      merged. `pages` is then the pages they hold together, and
      `document_pages` the document's own count.
    - `source_pages`: on a part, the pages of the original it holds (from 1).
    - `repair_of`: on a part that sends a failed batch's pages again, the
      request it repairs.
    - `body`: a local file of at most `INLINE_READ` bytes as preflight read
      and hashed it; its uploads send these bytes and do not read it again.
    """

    name: str
    source: Path | RemoteDocument | bytes | IO[bytes]
    size: int
    format: Format
    pages: int | None
    max_pixels: int | None
    sha256: str
    route: Route
    upload_name: str
    parts: tuple[PreparedDocument, ...] = ()
    source_pages: tuple[int, ...] | None = None
    document_pages: int | None = None
    repair_of: str | None = None
    body: bytes | None = field(default=None, repr=False)

    @property
    def opens_inline(self) -> bool:
        """Whether `open()` is cheap enough to call on the event loop: bytes, or a
        local file of at most `INLINE_READ` bytes."""
        return (
            self.body is not None
            or isinstance(self.source, bytes)
            or (isinstance(self.source, Path) and self.size <= INLINE_READ)
        )

    @property
    def content_type(self) -> str:
        """The MIME type sent with the upload, from the format found by content."""
        return self.format.mime_type

    def with_route(self, route: Route) -> PreparedDocument:
        """The same document sent to another endpoint (a sync time-out going async)."""
        return replace(self, route=route)

    def open(self) -> bytes | io.IOBase:
        """The upload body for one attempt (blocking: call it from a worker thread).

        A path is opened afresh (the caller closes it when the attempt ends);
        one of at most `SMALL_UPLOAD` bytes is read whole here instead, in this
        thread, so its upload costs the event loop one write and no file reads
        (memory stays bounded by the uploads in flight). A file object is
        rewound and wrapped so the upload cannot close it; bytes are returned
        as they are.
        """
        if self.body is not None:
            return self.body
        if isinstance(self.source, bytes):
            return self.source
        if isinstance(self.source, RemoteDocument):
            return self._open_remote(self.source)
        if isinstance(self.source, Path):
            try:
                handle = self.source.open("rb")
            except OSError as exc:
                raise DocumentNotFoundError(self.name, _os_reason(exc)) from exc
            size = os.fstat(handle.fileno()).st_size
            if size != self.size:
                handle.close()
                raise UnreadableDocumentError(
                    self.name,
                    f"the file changed since it was checked ({self.size} -> {size} bytes)",
                )
            if size <= SMALL_UPLOAD:
                with handle:
                    return handle.read()
            return handle
        self.source.seek(0)
        if _has_fileno(self.source):
            return _Borrowed(self.source)
        # An in-memory stream (BytesIO and the like) is already in memory.
        return bytes(self.source.read())

    def _open_remote(self, remote: RemoteDocument) -> bytes | io.IOBase:
        """A URL opened afresh: read whole up to `SMALL_UPLOAD`, else a ranged file object."""
        body = open_document(remote.url, small=SMALL_UPLOAD)
        size = len(body) if isinstance(body, bytes) else int(getattr(body, "size", self.size))
        if size != self.size:
            if not isinstance(body, bytes):
                body.close()
            raise UnreadableDocumentError(
                self.name, f"the object changed since it was checked ({self.size} -> {size} bytes)"
            )
        if isinstance(body, bytes):
            return body
        assert isinstance(body, io.IOBase)  # fsspec's files are
        return body


@dataclass(frozen=True, slots=True)
class Plan:
    """How a document would be sent, as `AsyncUpstageOCR.plan` (and `--dry-run`) tell it.

    - `pages`: the pages that would be sent and billed (None: the service counts).
    - `document_pages`: the document's own page count.
    - `route`: `"sync"`, `"async"` or `"parts"` (cut into `len(parts)` requests).
    - `parts`: each part's pages of the original (from 1) and route.
    - `error`: the `DocumentError` preflight would raise; then nothing is sent.
    """

    name: str
    pages: int | None = None
    document_pages: int | None = None
    route: str | None = None
    parts: tuple[tuple[tuple[int, ...], Route], ...] = ()
    error: Exception | None = None

    @classmethod
    def of(cls, document: PreparedDocument) -> Plan:
        """The plan of a prepared document."""
        route: str = document.route
        if len(document.parts) == 1:
            route = document.parts[0].route
        elif document.parts:
            route = "parts"
        return cls(
            name=document.name,
            pages=document.pages,
            document_pages=document.document_pages,
            route=route,
            parts=tuple((p.source_pages or (), p.route) for p in document.parts),
        )

    @property
    def requests(self) -> int:
        """The requests it would take (0 when refused)."""
        return 0 if self.error is not None else max(1, len(self.parts))

    @property
    def describe(self) -> str:
        """`12 pages, async`, `1050 pages, split into 2 parts (async)`, or the error."""
        if self.error is not None:
            return f"refused: {self.error}"
        if self.pages is None:
            pages = "? pages (counted by the service)"
        else:
            pages = f"{self.pages} page{'' if self.pages == 1 else 's'}"
        if self.document_pages is not None and self.pages != self.document_pages:
            pages += f" of {self.document_pages}"
        if self.route == "parts":
            routes = "/".join(sorted({route for _pages, route in self.parts}))
            return f"{pages}, split into {len(self.parts)} parts ({routes})"
        return f"{pages}, {self.route}"


class _Borrowed(io.RawIOBase):
    """A caller's file object lent to one upload: reads pass through, close does not."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__()
        self._inner = inner

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._inner.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def fileno(self) -> int:
        return self._inner.fileno()


def _has_fileno(stream: IO[bytes]) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "cannot be read (permission denied)"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file"
    return f"cannot be read ({exc.strerror or exc})"


def choose_route(name: str, pages: int | None, mode: Mode, limits: DocumentLimits) -> Route:
    """The endpoint for a document of `pages` pages, or `TooManyPagesError`.

    Auto mode sends up to `sync_max_pages` synchronously and up to
    `async_max_pages` asynchronously; a count that cannot be told (some office
    formats, HWP) goes sync, where the service counts for itself.
    """
    if mode not in ("auto", "sync", "async"):
        raise ValueError(f"mode must be 'auto', 'sync' or 'async', got {mode!r}")
    if mode == "sync":
        if pages is not None and pages > limits.sync_max_pages:
            raise TooManyPagesError(
                name,
                f"{pages} pages; the sync endpoint takes at most {limits.sync_max_pages} "
                "(use mode='async' or 'auto')",
            )
        return "sync"
    if pages is not None and pages > limits.async_max_pages:
        raise TooManyPagesError(
            name,
            f"{pages} pages; the service takes at most {limits.async_max_pages} pages "
            "per request (split the document)",
        )
    if mode == "async":
        return "async"
    return "sync" if pages is None or pages <= limits.sync_max_pages else "async"


def plan(
    document: Document,
    *,
    filename: str | None = None,
    mode: Mode = "auto",
    limits: DocumentLimits = DEFAULT_DOCUMENT_LIMITS,
    pages: PageRanges | None = None,
) -> Plan:
    """`prepare`'s verdict as a `Plan`: how the document would be sent, or its error (blocking)."""
    try:
        prepared = prepare(document, filename=filename, mode=mode, limits=limits, pages=pages)
    except DocumentError as exc:
        return Plan(exc.document, error=exc)
    return Plan.of(prepared)


def prepare(
    document: Document,
    *,
    filename: str | None = None,
    mode: Mode = "auto",
    limits: DocumentLimits = DEFAULT_DOCUMENT_LIMITS,
    pages: PageRanges | None = None,
) -> PreparedDocument:
    """Check `document` against `limits` and choose its route (blocking).

    `filename` names bytes and file objects (and overrides a path's name in
    the upload). `pages` (from `parse_pages`) keeps only those pages. A PDF or
    TIFF over `limits` (pages, bytes), or with `pages` given, is cut into
    `parts`. Raises a `DocumentError` subclass for what the service would
    refuse (`PageRangeError` for pages it does not have); `TypeError` for
    something that is not a document at all.
    """
    if isinstance(document, (bytes, bytearray, memoryview)):
        return _prepare_bytes(
            bytes(document),
            name=filename or "<bytes>",
            upload=filename,
            mode=mode,
            limits=limits,
            pages=pages,
        )
    if is_url(document):
        assert isinstance(document, str)
        return _prepare_url(document, filename, mode, limits, pages)
    if isinstance(document, (str, os.PathLike)):
        try:
            info = os.stat(document)
        except OSError as exc:
            raise DocumentNotFoundError(os.fspath(document), _os_reason(exc)) from exc
        return _prepare_path(
            document, info, filename=filename, mode=mode, limits=limits, pages=pages
        )
    if hasattr(document, "read"):
        return _prepare_file_object(document, filename, mode, limits, pages)
    raise TypeError(
        f"a document is a path, bytes or a binary file object, not {type(document).__name__}"
    )


def _prepare_path(
    document: str | os.PathLike[str],
    info: os.stat_result,
    *,
    filename: str | None,
    mode: Mode,
    limits: DocumentLimits,
    pages: PageRanges | None,
    quick: bool = False,
) -> PreparedDocument:
    """A local file, from its `info` (stat): read once if small, else streamed.

    `quick`: on the event loop (`inspect_document`'s `quick`).
    """
    path = Path(document)
    name = os.fspath(document)
    if stat.S_ISDIR(info.st_mode):
        raise DocumentNotFoundError(name, "is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise DocumentNotFoundError(name, "is not a regular file")
    _check_empty(name, info.st_size)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DocumentNotFoundError(name, _os_reason(exc)) from exc
    with handle:
        if info.st_size <= INLINE_READ:  # read once: hashed, checked and sent as read
            data = handle.read()
            return _prepare_stream(
                io.BytesIO(data),
                source=path,
                body=data,
                name=name,
                upload=filename or path.name,
                size=len(data),
                mode=mode,
                limits=limits,
                pages=pages,
                quick=quick,
            )
        return _prepare_stream(
            handle,
            source=path,
            name=name,
            upload=filename or path.name,
            size=info.st_size,
            mode=mode,
            limits=limits,
            pages=pages,
        )


def _prepare_url(
    url: str,
    filename: str | None,
    mode: Mode,
    limits: DocumentLimits,
    pages: PageRanges | None = None,
) -> PreparedDocument:
    """An object-storage URL: judged from a ranged read, uploaded from the store.

    One over `max_bytes` is refused (it is not read whole to be cut).
    """
    body = open_document(url, small=SMALL_UPLOAD)
    name = RemoteDocument(url).name
    upload = filename or name.rstrip("/").rpartition("/")[2]
    if isinstance(body, bytes):
        return _prepare_bytes(body, name=name, upload=upload, mode=mode, limits=limits, pages=pages)
    with body:
        size = body.seek(0, io.SEEK_END)
        body.seek(0)
        _check_size(name, size, limits)
        return _prepare_stream(
            body,
            source=RemoteDocument(url),
            name=name,
            upload=upload,
            size=size,
            mode=mode,
            limits=limits,
            pages=pages,
        )


def _prepare_file_object(
    stream: IO[bytes],
    filename: str | None,
    mode: Mode,
    limits: DocumentLimits,
    pages: PageRanges | None,
) -> PreparedDocument:
    own_name = getattr(stream, "name", None)
    name = filename or (own_name if isinstance(own_name, str) else "<stream>")
    upload = filename or (Path(own_name).name if isinstance(own_name, str) else None)
    if isinstance(getattr(stream, "encoding", None), str):  # a text stream
        raise TypeError(f"{name}: open the file in binary mode ('rb'), not text mode")
    seekable = False
    try:
        seekable = stream.seekable()
    except (AttributeError, OSError, ValueError):
        seekable = False
    if not seekable:
        # A pipe or socket: read it once, at most one byte past the limit.
        data = stream.read(limits.max_bytes + 1)
        if not isinstance(data, bytes):
            raise TypeError(f"{name}: the file object must be opened in binary mode")
        _check_size(name, len(data), limits)  # what is past the limit was never read
        return _prepare_bytes(data, name=name, upload=upload, mode=mode, limits=limits, pages=pages)
    try:
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
    except (OSError, ValueError) as exc:
        raise DocumentNotFoundError(name, f"cannot be read ({exc})") from exc
    _check_empty(name, size)
    return _prepare_stream(
        stream,
        source=stream,
        name=name,
        upload=upload,
        size=size,
        mode=mode,
        limits=limits,
        pages=pages,
    )


def _check_empty(name: str, size: int) -> None:
    if size == 0:
        raise EmptyDocumentError(name, "the file is empty (0 bytes)")


def _check_size(name: str, size: int, limits: DocumentLimits) -> None:
    _check_empty(name, size)
    if size > limits.max_bytes:
        raise DocumentTooLargeError(
            name,
            f"{_megabytes(size)} is over the limit of {_megabytes(limits.max_bytes)} "
            "(DocumentLimits.max_bytes)",
        )


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB ({size} bytes)"


def _prepare_bytes(
    data: bytes,
    *,
    name: str,
    upload: str | None,
    mode: Mode,
    limits: DocumentLimits,
    pages: PageRanges | None = None,
) -> PreparedDocument:
    """A document already in memory; it is its own upload body."""
    return _prepare_stream(
        io.BytesIO(data),
        source=data,
        name=name,
        upload=upload,
        size=len(data),
        mode=mode,
        limits=limits,
        pages=pages,
    )


def _prepare_stream(
    stream: IO[bytes],
    *,
    source: Path | RemoteDocument | bytes | IO[bytes],
    name: str,
    upload: str | None,
    size: int,
    mode: Mode,
    limits: DocumentLimits,
    pages: PageRanges | None = None,
    body: bytes | None = None,
    quick: bool = False,
) -> PreparedDocument:
    _check_empty(name, size)
    try:
        fmt = detect_format(stream)
    except OSError as exc:
        raise DocumentNotFoundError(name, _os_reason(exc)) from exc
    oversize = size > limits.max_bytes
    if oversize and fmt not in CUTTABLE:
        _check_size(name, size, limits)  # over the limit, and no part can be cut from it
    if fmt is None:
        stream.seek(0)
        raise UnsupportedFormatError(name, _unsupported_reason(name))
    inspection = inspect_document(stream, fmt, name, quick=quick)
    if inspection.max_pixels is not None and inspection.max_pixels > limits.max_pixels_per_page:
        raise TooManyPixelsError(
            name,
            f"a page has {inspection.max_pixels:,} pixels; the service takes at most "
            f"{limits.max_pixels_per_page:,} per page",
        )
    total = inspection.pages
    page_limit = limits.sync_max_pages if mode == "sync" else limits.async_max_pages
    cuts: list[Cut] | None = None
    wanted: tuple[int, ...] | None = None
    if pages is not None or oversize or (total is not None and total > page_limit):
        if total is None:
            raise PageRangeError(
                name,
                f"its page count cannot be told before upload ({fmt.name}): pages cannot be chosen",
            )
        wanted = select_pages(pages, total, name) if pages is not None else None
        cuts = plan_cuts(
            stream,
            fmt,
            name,
            wanted or tuple(range(1, total + 1)),
            total=total,
            size=size,
            max_pages=page_limit,
            max_bytes=limits.max_bytes,
        )
    whole = PreparedDocument(
        name=name,
        source=source,
        size=size,
        format=fmt,
        pages=total,
        max_pixels=inspection.max_pixels,
        sha256=hashlib.sha256(body).hexdigest() if body is not None else _sha256(stream),
        route=choose_route(name, total, mode, limits) if cuts is None else "async",
        upload_name=_upload_name(upload, fmt),
        document_pages=total,
        body=body,
    )
    if cuts is None:
        if wanted is None:
            return whole
        # Every page asked for, and it fits: sent as it is, its pages still labelled.
        return replace(whole, parts=(replace(whole, source_pages=wanted),))
    parts = tuple(_part(whole, cut, mode, limits) for cut in cuts)
    return replace(
        whole,
        pages=sum(len(cut.pages) for cut in cuts),
        route="async" if any(part.route == "async" for part in parts) else "sync",
        parts=parts,
    )


def cut_pages(
    document: PreparedDocument, pages: range, *, mode: Mode, limits: DocumentLimits
) -> PreparedDocument:
    """`pages` (from 1) of a sent `document` (whole, or a part) as a part of their own.

    Its `source_pages` are the original's. Blocking: run it off the event loop.
    """
    if document.format not in CUTTABLE:
        raise PageRangeError(document.name, f"pages of {document.format.name} cannot be cut out")
    body = document.open()
    try:
        stream = io.BytesIO(body) if isinstance(body, bytes) else body
        data = cut_document(stream, document.format, document.name, list(pages))  # type: ignore[arg-type]
    finally:
        if not isinstance(body, bytes):
            body.close()
    originals = document.source_pages or tuple(range(1, (document.pages or 0) + 1))
    base = replace(document, name=document.name.split(" (pages ")[0])
    return _part(base, Cut(tuple(originals[p - 1] for p in pages), data), mode, limits)


def _part(
    whole: PreparedDocument, cut: Cut, mode: Mode, limits: DocumentLimits
) -> PreparedDocument:
    """One part cut from `whole`: its own bytes, hash and route."""
    name = f"{whole.name} (pages {page_list(cut.pages)})"
    return replace(
        whole,
        name=name,
        source=cut.data,
        body=None,
        size=len(cut.data),
        pages=len(cut.pages),
        sha256=hashlib.sha256(cut.data).hexdigest(),
        route=choose_route(name, len(cut.pages), mode, limits),
        source_pages=cut.pages,
    )


def _unsupported_reason(name: str) -> str:
    suffix = Path(name).suffix.lower()
    claimed = next((f for f, endings in _SUFFIXES.items() if suffix in endings), None)
    said = f"named {suffix} but the content is not {claimed.name}; " if claimed else ""
    return f"{said}not a format the service takes (judged by content; it takes {_ACCEPTED})"


def _upload_name(given: str | None, fmt: Format) -> str:
    """`given`'s base name, its extension made to match the real format."""
    endings = _SUFFIXES[fmt]
    base = Path(given).name if given else ""
    stem, suffix = os.path.splitext(base)
    if not stem:
        return f"document{endings[0]}"
    if suffix.lower() in endings:
        return base
    return f"{stem}{endings[0]}"


_SMALL_HASH = 64 * 1024  # read and hashed in one piece; larger files go through a buffer


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    stream.seek(0)
    head = stream.read(_SMALL_HASH)
    digest.update(head)
    if len(head) < _SMALL_HASH:  # a small file, read whole: no buffer to allocate
        stream.seek(0)
        return digest.hexdigest()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    readinto = getattr(stream, "readinto", None)
    while True:
        if readinto is not None:
            count = readinto(view)
            if not count:
                break
            digest.update(view[:count])
        else:
            chunk = stream.read(CHUNK_BYTES)
            if not chunk:
                break
            digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()
