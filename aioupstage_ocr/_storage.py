"""Object storage through fsspec: a URL goes wherever a path goes.

A document or an output may be a URL of any protocol fsspec knows (`s3://`,
`gs://`, `az://`, `file://`, `memory://`, ...); a plain path stays a local
path. This module is a leaf: blocking calls, run them off the event loop.

- `is_url`: `scheme://...` with a scheme of two letters or more (so `C:\\x`
  stays a Windows path).
- `iter_prefix`: the documents under a prefix, streamed. On S3 the listing is
  read a page (1,000 keys) at a time; elsewhere one folder at a time
  (`fs.walk`). A million keys are never held at once.
- `open_document`: the bytes of a small object (one ranged GET), a seekable
  file object that reads in ranges for a larger one (the upload streams from
  storage).
- `write_whole`: one put of the complete bytes (S3 shows an object only once
  its put completed: a reader sees the old object or the whole new one); a
  local path goes through `_atomic`.
- `output_url`: an input's output under an output prefix, mirroring its key
  under the input prefix.

Credentials come from each store's own environment and config files (for S3
the usual `AWS_*` variables, `~/.aws`, and `AWS_ENDPOINT_URL` for another
endpoint): this module takes none and shows none. Every message names a URL
through `safe_url`, which drops user info (`s3://key:secret@bucket`), query
strings (signed links) and fragments.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from typing import IO, Any, cast
from urllib.parse import urlsplit, urlunsplit

from ._atomic import atomic_write_bytes
from ._exceptions import DocumentNotFoundError, UpstageOCRError
from ._formats import EXTENSIONS

__all__ = [
    "SMALL_READ",
    "RemoteDocument",
    "StorageError",
    "exists",
    "is_url",
    "iter_prefix",
    "join",
    "open_document",
    "output_url",
    "read_bytes",
    "safe_url",
    "stat",
    "write_whole",
]

#: Objects up to this size are read whole; larger ones are opened as files that
#: read in ranges, so an upload streams from storage and memory stays bounded.
SMALL_READ = 8 * 1024 * 1024

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_OUTPUT_SUFFIX = ".ocr.json"


class StorageError(UpstageOCRError):
    """Object storage refused or failed an operation (`url` names it, credentials never)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = safe_url(url)
        self.reason = reason
        super().__init__(f"{self.url}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.url, self.reason))


class RemoteDocument:
    """A document at an object-storage URL: opened afresh for each upload attempt."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def name(self) -> str:
        """How messages name it: the URL without credentials or query."""
        return safe_url(self.url)

    def __repr__(self) -> str:
        return f"RemoteDocument({self.name!r})"


def is_url(value: object) -> bool:
    """True for a string like `scheme://...` (two letters or more of scheme)."""
    return isinstance(value, str) and _SCHEME.match(value) is not None


def safe_url(url: object) -> str:
    """`url` without user info, query string or fragment: safe to show, log or trace.

    The one place that cleans a URL for showing (a store's, the API's, a signed
    download link; a `yarl.URL` too); a local path is returned as it is.
    """
    text = os.fspath(url) if isinstance(url, os.PathLike) else str(url)
    if not is_url(text):
        return text
    parts = urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def join(prefix: str, *names: str) -> str:
    """`prefix/name/...` for a URL or a local path."""
    if is_url(prefix):
        return "/".join([prefix.rstrip("/"), *(n.strip("/") for n in names)])
    return os.path.join(prefix, *names)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # Botocore and friends may quote a URL with its signature: keep only its path.
    text = re.sub(r"(https?|s3|gs|az|abfs)://[^\s'\"]+", lambda m: safe_url(m.group(0)), text)
    return text[:500]


def _fs(url: str) -> tuple[Any, str]:
    """(filesystem, path inside it) for a URL or a local path.

    A URL with user info (`s3://key:secret@bucket`) is refused before any
    library sees it (they log paths): credentials come from the store's config.
    """
    if is_url(url) and "@" in urlsplit(url).netloc:
        raise StorageError(
            url,
            "credentials in a URL are refused (they would end up in logs); "
            "use the store's environment or config files",
        )
    try:
        import fsspec  # noqa: PLC0415 - the [s3] extra, imported only where used
    except ImportError as exc:  # pragma: no cover - depends on the extras installed
        raise StorageError(
            url, "object storage needs fsspec: pip install 'aioupstage-ocr[s3]'"
        ) from exc
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except Exception as exc:  # noqa: BLE001 - unknown protocol, missing driver
        raise StorageError(url, f"no file system for it: {_reason(exc)}") from None
    return fs, path


def _url_of(fs: Any, path: str, like: str) -> str:
    """The URL of `path` on `fs`, in the scheme of `like` (`s3a://` stays `s3a://`)."""
    if not is_url(like):
        return path
    scheme = like.split("://", 1)[0]
    return f"{scheme}://{fs._strip_protocol(path)}"


def iter_prefix(prefix: str, *, suffixes: frozenset[str] | None = None) -> Iterator[str]:
    """URLs of the documents under `prefix` (by extension, any case), in listing order.

    Streams: S3 pages of 1,000 keys, other stores one folder at a time.
    `suffixes` defaults to the supported extensions.
    """
    wanted = EXTENSIONS if suffixes is None else suffixes
    fs, path = _fs(prefix)
    try:
        for key in _walk(fs, path):
            if posixpath.splitext(key)[1].lower() in wanted:
                yield _url_of(fs, key, prefix)
    except FileNotFoundError:
        raise DocumentNotFoundError(safe_url(prefix), "no such prefix or bucket") from None
    except Exception as exc:  # noqa: BLE001 - any store's client error, cleaned
        raise StorageError(prefix, f"cannot list it: {_reason(exc)}") from None


def _walk(fs: Any, path: str) -> Iterator[str]:
    iterdir = getattr(fs, "_iterdir", None)
    split = getattr(fs, "split_path", None)
    if iterdir is not None and split is not None and getattr(fs, "loop", None) is not None:
        yield from _walk_s3(fs, path)
        return
    for root, _dirs, files in fs.walk(path):
        for name in sorted(files):
            yield posixpath.join(root, name)


def _walk_s3(fs: Any, path: str) -> Iterator[str]:
    """Every key under `path`, one listing page at a time, driven on fsspec's loop."""
    from fsspec.asyn import sync  # noqa: PLC0415

    bucket, key, _ = fs.split_path(path)
    prefix = key.rstrip("/") + "/" if key else ""
    pages = fs._iterdir(bucket, delimiter="", prefix=prefix)
    try:
        while True:
            try:
                entry = sync(fs.loop, pages.__anext__)
            except StopAsyncIteration:
                return
            if entry.get("type") == "file":
                yield cast(str, entry["name"])
    finally:
        if fs.loop is not None and fs.loop.is_running():
            sync(fs.loop, pages.aclose)


def exists(url: str) -> bool:
    """Whether an object (or local file) is there."""
    if not is_url(url):
        return os.path.isfile(url)
    fs, path = _fs(url)
    try:
        return bool(fs.isfile(path))
    except Exception as exc:  # noqa: BLE001 - any store's client error, cleaned
        raise StorageError(url, f"cannot look it up: {_reason(exc)}") from None


def stat(url: str) -> tuple[int, int, str | None]:
    """(size, modification time in ns, ETag or None) of an object; `DocumentNotFoundError`
    when it is not there. A new put changes the time (and, on S3, the ETag)."""
    fs, path = _fs(url)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise DocumentNotFoundError(safe_url(url), "no such object") from None
    except Exception as exc:  # noqa: BLE001 - any store's client error, cleaned
        raise StorageError(url, f"cannot look it up: {_reason(exc)}") from None
    when = info.get("LastModified") or info.get("mtime") or info.get("created")
    if hasattr(when, "timestamp"):
        mtime_ns = int(when.timestamp() * 1_000_000_000)
    elif isinstance(when, int | float):
        mtime_ns = int(when * 1_000_000_000)
    else:
        mtime_ns = 0
    etag = info.get("ETag")
    return int(info.get("size") or 0), mtime_ns, None if etag is None else str(etag).strip('"')


def read_bytes(url: str) -> bytes:
    """The whole object; `DocumentNotFoundError` when it is not there."""
    if not is_url(url):
        try:
            with open(url, "rb") as file:
                return file.read()
        except FileNotFoundError:
            raise DocumentNotFoundError(url, "no such file") from None
    fs, path = _fs(url)
    try:
        return cast(bytes, fs.cat_file(path, **_one_get(fs)))
    except FileNotFoundError:
        raise DocumentNotFoundError(safe_url(url), "no such object") from None
    except Exception as exc:  # noqa: BLE001 - any store's client error, cleaned
        raise StorageError(url, f"cannot read it: {_reason(exc)}") from None


def _one_get(fs: Any) -> dict[str, Any]:
    """`cat_file` options for one GET: s3fs otherwise asks the size first (a HEAD,
    and a LIST when the key is missing) to read a large object in parallel parts."""
    return {"max_concurrency": 1} if hasattr(fs, "max_concurrency") else {}


def open_document(url: str, *, small: int = SMALL_READ) -> bytes | IO[bytes]:
    """The document at `url`: its bytes when at most `small`, else a seekable file object.

    The caller closes the file object. `DocumentNotFoundError` when missing.
    """
    fs, path = _fs(url)
    shown = safe_url(url)
    try:
        # One ranged GET: a small document comes whole, a larger one is opened.
        head = cast(bytes, fs.cat_file(path, start=0, end=small + 1))
        if len(head) <= small:
            return head
        handle = cast(IO[bytes], fs.open(path, "rb"))
    except UpstageOCRError:
        raise
    except (FileNotFoundError, IsADirectoryError):
        raise DocumentNotFoundError(shown, "no such object") from None
    except Exception as exc:  # noqa: BLE001 - any store's client error, cleaned
        raise StorageError(url, f"cannot read it: {_reason(exc)}") from None
    return handle


def write_whole(url: str, data: bytes) -> str:
    """Put `data` at `url` in one piece (local paths atomically); the URL or absolute path."""
    if not is_url(url):
        return os.fspath(atomic_write_bytes(url, data))
    fs, path = _fs(url)
    try:
        protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
        if "file" in protocols:
            return "file://" + os.fspath(atomic_write_bytes(path, data))
        fs.pipe_file(path, data)
    except Exception as exc:  # noqa: BLE001 - any store's client error, cleaned
        raise StorageError(url, f"cannot write it: {_reason(exc)}") from None
    return url


def output_url(source: str, input_prefix: str, output_prefix: str) -> str:
    """Where `source`'s result goes: its key under `input_prefix`, mirrored under `output_prefix`.

    The full name is kept and `.ocr.json` appended (`in/a/x.pdf` -> `out/a/x.pdf.ocr.json`):
    telling whether a shorter name would collide needs a listing of each folder,
    which object storage charges for. A source outside `input_prefix` keeps its
    whole key under `output_prefix/_root/`.
    """
    src = _key_of(source)
    base = _key_of(input_prefix).rstrip("/")
    if base and src.startswith(base + "/"):
        relative = src[len(base) + 1 :]
    elif not base:
        relative = src
    else:
        relative = posixpath.join("_root", src.lstrip("/"))
    return join(output_prefix, relative + _OUTPUT_SUFFIX)


def _key_of(url: str) -> str:
    """`bucket/key` of a URL, or the absolute POSIX form of a path."""
    if is_url(url):
        parts = urlsplit(url)
        return posixpath.join(parts.netloc.rpartition("@")[2], parts.path.lstrip("/"))
    return os.path.abspath(url).replace(os.sep, "/")
