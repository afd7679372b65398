"""The `--report` file of a bulk run: one JSON object per line, one line per input.

Fields, in this order: `input`, `status` (`ok` | `failed` | `skipped`),
`output`, `pages`, `mode`, `request_id`, `error` (`{"type", "message"}` or
null), `reason` (why a `skipped` input was not done by this run, e.g. another
run on the same output folder holds it; else null), `outputs` (every output
file of the input by format, `{"json": ..., "pdf": ...}`, or null where none
was written); and `missing_pages` (the pages of the input that did not come
back) only on an `ok` row written with `--allow-partial`, whose `error` says
why. Paths are absolute; a name that is not valid UTF-8 is written with
`\\xNN` escapes for the bytes that are not.

How it is written: each row goes out as one whole line, flushed at once, to
`<report>.partial` beside the report (memory stays flat however many inputs;
`tail -f` shows progress). Closing the writer, also on an error or Ctrl-C,
fsyncs that file and renames it over the report. So the report path only ever
holds a complete file of whole lines: the previous run's, or this run's. A
run killed outright leaves the report untouched and its rows in the
`.partial` file; the journal keeps the real state, and the next run's report
lists the inputs finished before as `skipped`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeAlias, TypedDict

import orjson

__all__ = ["PARTIAL_SUFFIX", "ReportError", "ReportRow", "ReportStatus", "ReportWriter", "error_of"]

ReportStatus: TypeAlias = Literal["ok", "failed", "skipped"]
_STATUSES = frozenset({"ok", "failed", "skipped"})

#: Appended to the report's name for the file rows stream to during the run.
PARTIAL_SUFFIX = ".partial"


class ReportError(TypedDict):
    """The `error` field of a failed row."""

    type: str
    message: str


def error_of(exc: BaseException) -> ReportError:
    """The report's view of an exception: its class name and message."""
    return {"type": type(exc).__name__, "message": str(exc)}


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One input's line in the report."""

    input: str
    status: ReportStatus
    output: str | None = None
    pages: int | None = None
    mode: str | None = None
    request_id: str | None = None
    error: ReportError | None = None
    reason: str | None = None
    outputs: dict[str, str] | None = None
    missing_pages: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"report status must be ok, failed or skipped, not {self.status!r}")

    @classmethod
    def failed(
        cls,
        input: str | os.PathLike[str],
        exc: BaseException,
        *,
        mode: str | None = None,
        request_id: str | None = None,
    ) -> ReportRow:
        """The row of an input that failed with `exc`."""
        return cls(
            os.fspath(input), "failed", mode=mode, request_id=request_id, error=error_of(exc)
        )

    def to_json(self) -> bytes:
        """The row as one JSON line, newline included."""
        fields: dict[str, object] = {
            "input": self.input,
            "status": self.status,
            "output": self.output,
            "pages": self.pages,
            "mode": self.mode,
            "request_id": self.request_id,
            "error": self.error,
            "reason": self.reason,
            "outputs": self.outputs,
        }
        if self.missing_pages is not None:
            fields["missing_pages"] = list(self.missing_pages)
        try:
            return orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError:  # a str orjson refuses: lone surrogates from a file name
            return orjson.dumps(_printable(fields), option=orjson.OPT_APPEND_NEWLINE)


def _printable(value: object) -> object:
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8", "surrogateescape")  # back to the name's bytes
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {key: _printable(item) for key, item in value.items()}
    return value


class ReportWriter:
    """Writes the report at `path`, creating its folder (see the module docstring).

    Use as a context manager, or `open()` and `close()`. `write` is one short
    system call, fine to call from the event loop; it is safe across threads.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
        self.partial_path = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        #: Rows written so far.
        self.rows = 0
        self._fd: int | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReportWriter({os.fspath(self.path)!r})"

    def __enter__(self) -> ReportWriter:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> ReportWriter:
        """Start an empty `.partial` file beside the report."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: report already open")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_BINARY", 0)
        self._fd = os.open(self.partial_path, flags, 0o666)
        self.rows = 0
        return self

    def write(self, row: ReportRow) -> None:
        """Append `row` as one whole line."""
        data = memoryview(row.to_json())
        with self._lock:
            if self._fd is None:
                raise RuntimeError(f"{self.path}: report is not open")
            while data:
                data = data[os.write(self._fd, data) :]
            self.rows += 1

    def close(self) -> None:
        """Make the rows durable and move them to the report path. Safe to call twice."""
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.partial_path, self.path)
