"""The `ocr` command on object storage: inputs and outputs at URLs (`s3://...`).

The run works in keys (`_journal` keys are absolute paths; `_discovery`,
`_resume` and `_ocr` pass paths around). A URL is carried as a *key path*,
`/@url/<scheme>/<bucket>/<key>`: an absolute path that `os.path.abspath` and
`Path` leave as it is, turned back into the URL wherever storage is touched
(`url_of`), a document is handed to the client (`document_of`), or a row is
shown (`shown`). Everything that reads or writes goes through `_storage`
(credential-free URLs, one put per output).

- Inputs: a URL argument naming an object is that one document; any other is
  a prefix, listed streaming (`_storage.iter_prefix`: recursive, supported
  extensions only). Each object's size and time come from one HEAD; S3 times
  have whole seconds, so the nanoseconds carry 9 digits of the ETag: a new
  put of other content, even within the same second, reads as changed.
- Outputs (when inputs or `-o` is a URL): `_storage.output_url` mirrors the
  key under the common prefix of the inputs under the output prefix, keeping
  the full name (`in/a/x.pdf` -> `out/a/x.pdf.ocr.json`: telling whether
  `x.ocr.json` would collide needs a listing of each folder). The files of a
  result are made in a temporary folder (`_outputs`), then each is put whole.
- The journal of an object-storage output is a local file (`--journal FILE`,
  default `default_journal`): SQLite cannot live in a bucket.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _storage
from .._exceptions import DocumentNotFoundError, UpstageOCRError
from .._formats import EXTENSIONS
from .._inputs import InputItem, OutputMapper, absolute_path, common_folder, iter_inputs
from .._journal import JOURNAL_NAME
from .._outputs._files import Written, write_outputs

if TYPE_CHECKING:
    from .._models import OCRResult

__all__ = [
    "RemoteMapper",
    "copy_output",
    "default_journal",
    "document_of",
    "exists",
    "iter_all",
    "journal_file",
    "key_of",
    "key_text",
    "make_mapper",
    "put_bytes",
    "put_outputs",
    "read_output",
    "shown",
    "stat_of",
    "url_of",
    "uses_storage",
]

_MARK = "/@url/"


def key_of(url: str) -> Path:
    """The key path of a URL (credential-free); a local path made absolute."""
    if not _storage.is_url(url):
        return absolute_path(url)
    scheme, rest = _storage.safe_url(url).split("://", 1)
    return Path(_MARK + scheme + "/" + rest.strip("/"))


def url_of(key: str | os.PathLike[str]) -> str | None:
    """The URL a key path stands for; None for a local path."""
    text = os.fspath(key)
    if not text.startswith(_MARK):
        return None
    scheme, _, rest = text[len(_MARK) :].partition("/")
    return f"{scheme}://{rest}"


def key_text(source: object) -> str:
    """The journal key of a document the client reports (a URL or a path)."""
    text = os.fspath(source)  # type: ignore[call-overload]
    return os.fspath(key_of(text)) if _storage.is_url(text) else text


def document_of(key: str) -> str:
    """What the client reads for a key: the URL, or the path."""
    return url_of(key) or key


def shown(key: str | os.PathLike[str] | None) -> str | None:
    """How a key is printed and reported: the URL (no credentials), or the path."""
    if key is None:
        return None
    return url_of(key) or os.fspath(key)


def uses_storage(inputs: Sequence[str], output_dir: str | None) -> bool:
    """Whether the run touches object storage (a URL input or output)."""
    return _storage.is_url(output_dir) or any(_storage.is_url(arg) for arg in inputs)


def exists(key: str | os.PathLike[str]) -> bool:
    """Whether the output at a key is there (an object, or a local file)."""
    url = url_of(key)
    return os.path.isfile(key) if url is None else _storage.exists(url)


def stat_of(key: str | os.PathLike[str]) -> tuple[int, int]:
    """(size, mtime_ns) of an input; for an object, the nanoseconds hold ETag digits."""
    url = url_of(key)
    if url is None:
        info = os.stat(key)
        return info.st_size, info.st_mtime_ns
    size, mtime_ns, etag = _storage.stat(url)
    if etag:
        digits = int(hashlib.sha256(etag.encode()).hexdigest(), 16) % 1_000_000_000
        mtime_ns = mtime_ns - mtime_ns % 1_000_000_000 + digits
    return size, mtime_ns


def iter_all(args: Sequence[str]) -> Iterator[InputItem]:
    """The inputs of `args`: local ones as `iter_inputs` finds them, then each URL's."""
    local = [arg for arg in args if not _storage.is_url(arg)]
    if local:
        yield from iter_inputs(local)
    for arg in args:
        if _storage.is_url(arg):
            yield from _iter_url(arg)


def _iter_url(url: str) -> Iterator[InputItem]:
    if _single(url):
        yield InputItem(key_of(url), explicit=True)
        return
    try:
        for found in _storage.iter_prefix(url):
            yield InputItem(key_of(found), explicit=False)
    except UpstageOCRError as exc:
        reason = getattr(exc, "reason", str(exc))
        missing = DocumentNotFoundError(_storage.safe_url(url), reason)
        yield InputItem(key_of(url), explicit=True, error=missing)


def _single(url: str) -> bool:
    """A URL naming one object (a supported name that is there), not a prefix."""
    if posixpath.splitext(url.rstrip("/"))[1].lower() not in EXTENSIONS:
        return False
    try:
        return _storage.exists(url)
    except UpstageOCRError:
        return False


def _anchor(arg: str) -> str:
    """The prefix an argument's outputs are mirrored from: itself, or an object's parent."""
    if _storage.is_url(arg):
        url = _storage.safe_url(arg).rstrip("/")
        return url.rsplit("/", 1)[0] if _single(arg) else url
    return arg


def _common(args: Sequence[str]) -> str | None:
    """The common prefix of the inputs: a URL (all on one store), a folder, or None."""
    urls = [arg for arg in args if _storage.is_url(arg)]
    if not urls:
        folder = common_folder(args)
        return None if folder is None else os.fspath(folder)
    if len(urls) != len(args):
        return None  # local and remote inputs: each mirrored whole under `_root`
    schemes = {url.split("://", 1)[0] for url in urls}
    if len(schemes) != 1:
        return None
    scheme = schemes.pop()
    keys = [_anchor(url).split("://", 1)[1] for url in urls]
    try:
        return f"{scheme}://{posixpath.commonpath(keys)}"
    except ValueError:
        return None


class RemoteMapper:
    """Output paths when a URL is involved: `_storage.output_url`, as key paths."""

    def __init__(self, out: str, base: str | None) -> None:
        self.out_dir = out if _storage.is_url(out) else os.fspath(absolute_path(out))
        self.base = base or ""

    def __repr__(self) -> str:
        return f"RemoteMapper(out_dir={_storage.safe_url(self.out_dir)!r}, base={self.base!r})"

    def output_for(self, path: str | os.PathLike[str]) -> Path:
        """The key path of the input's `.ocr.json` (an object's, or a local file's)."""
        source = document_of(os.fspath(path))
        return key_of(_storage.output_url(source, self.base or "/", self.out_dir))


def make_mapper(inputs: Sequence[str], output_dir: str | None) -> OutputMapper | RemoteMapper:
    """The mapper of a run: `OutputMapper` for local runs, `RemoteMapper` with URLs."""
    if not uses_storage(inputs, output_dir):
        return OutputMapper.from_args(inputs, output_dir)
    out = output_dir if output_dir is not None else tempfile.gettempdir()
    return RemoteMapper(out, _common(inputs))


def journal_file(mapper: OutputMapper | RemoteMapper, journal: str | None) -> Path:
    """The journal's file: `--journal`, beside local outputs, or `default_journal`."""
    if journal is not None:
        return absolute_path(journal)
    if isinstance(mapper, RemoteMapper) and _storage.is_url(mapper.out_dir):
        return default_journal(mapper.out_dir)
    return Path(os.path.abspath(mapper.out_dir)) / JOURNAL_NAME


def default_journal(output_url: str) -> Path:
    """`$XDG_CACHE_HOME/aioupstage-ocr/journals/<URL hash>.sqlite3` (`~/.cache` by default)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256(_storage.safe_url(output_url).rstrip("/").encode()).hexdigest()[:24]
    return Path(cache, "aioupstage-ocr", "journals", f"{digest}.sqlite3")


def put_outputs(
    result: OCRResult, formats: Iterable[str], json_key: Path, *, document: str, name: str
) -> Written:
    """`write_outputs` for a key: local keys in place; objects made locally, each put whole.

    A searchable PDF of a document at a URL is made from its bytes (read once more).
    """
    formats = tuple(formats)
    original: bytes | str = document
    if "pdf" in formats and _storage.is_url(document):
        try:
            original = _storage.read_bytes(document)
        except UpstageOCRError as exc:
            written = put_outputs(
                result, [f for f in formats if f != "pdf"], json_key, document=document, name=name
            )
            written.errors["pdf"] = exc
            return written
    url = url_of(json_key)
    if url is None:
        return write_outputs(result, formats, json_key, document=original, name=name)
    with tempfile.TemporaryDirectory(prefix="aioupstage-ocr-") as folder:
        local = Path(folder, posixpath.basename(url))
        written = write_outputs(result, formats, local, document=original, name=name)
        prefix = url.rsplit("/", 1)[0]
        for fmt, path in list(written.paths.items()):
            target = _storage.join(prefix, path.name)
            try:
                _storage.write_whole(target, path.read_bytes())
            except UpstageOCRError as exc:
                del written.paths[fmt]
                written.errors[fmt] = exc
                continue
            written.paths[fmt] = key_of(target)
    return written


def read_output(key: Path) -> OCRResult:
    """The result saved at a `.ocr.json` key (an object, or a local file)."""
    from .._models import OCRResult  # noqa: PLC0415

    url = url_of(key)
    if url is None:
        return OCRResult.load(key)
    with tempfile.TemporaryDirectory(prefix="aioupstage-ocr-") as folder:
        local = Path(folder, "result.ocr.json")
        local.write_bytes(_storage.read_bytes(url))
        return OCRResult.load(local)


def put_bytes(key: Path, data: bytes) -> Path:
    """`data` at a key in one put (a local file atomically); the key written."""
    written = _storage.write_whole(document_of(os.fspath(key)), data)
    return key_of(written) if url_of(key) is not None else Path(written)


def copy_output(source: Path, target: Path) -> Path:
    """An output copied to another key (one put); the target key."""
    return put_bytes(target, _storage.read_bytes(document_of(os.fspath(source))))
