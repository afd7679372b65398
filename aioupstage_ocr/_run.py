"""The `ocr` command: a bulk run with its resume journal, report, outputs and display.

```
inputs -> plan (stat, journal, maybe hash) -> BulkRun -> write output -> journal, report, stdout
               skipped / copied / failed rows go straight to the report
```

Resume (the journal is `DIR/.aioupstage-ocr-journal.sqlite3`, see `_journal`):

1. On start, rows left `submitting` without a request id (the run stopped
   between the journal write and the service's answer) are settled first:
   - sync route: sent again. A sync request leaves nothing at the service to
     look up, so sending it again is the only way to a result; the most it can
     cost is one document's pages once more (the client's own rule for a sync
     call that dropped).
   - async route: the service's request list is read and matched by
     `_reconcile`, as the client's `SubmitLedger` does for an ambiguous submit.
     Requests the journal does not know, created in a row's time window (its
     journal write, plus the longest a submit can take, widened by the margin
     for clock skew), with the row's page count where both are known, are its
     candidates. A candidate that fits exactly one
     row, for a row with exactly one candidate, is adopted (`submitted` with that
     id, then polled); a row with none is sent again (nothing was created); a row
     with several stays `submitting` and its input fails with
     `AmbiguousSubmitError` naming the candidates, rather than pay twice.
2. Each input is hashed as it is found (a thread a little ahead of the run),
   then looked up by path, size and mtime, else by its hash (the same file
   with another mtime, or an identical file elsewhere). Then:
   - done, output present: `skipped` (its path is printed again); an identical
     file's output, or this file's under another name, is copied: `ok`;
   - submitted (or done without its output, or failed on the way back with a
     request id and not by the service's verdict): polled and fetched with
     `Resume`, never submitted again (results live 30 days at the service);
   - anything else: submitted.
3. `before_submit` writes `submitting` (durable) before each request,
   `after_submit` writes `submitted` with the id (durable); `done` is written
   after the output is on disk (atomic write), `failed` with the error. So a
   crash at any instant loses nothing and pays for nothing twice.

Ctrl-C once: no more inputs are read; what was taken finishes (journal and
report as usual). Twice: everything stops at once; the journal stays
consistent and the next run picks up the open requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio
from anyio.abc import TaskGroup

from . import _reconcile
from ._atomic import atomic_write_bytes
from ._bulk import BulkEvent, BulkItem, Resume, Submission
from ._client import AsyncUpstageOCR
from ._config import (
    DEFAULT_LIMITS,
    DEFAULT_POLLING,
    DocumentLimits,
    Limits,
    Polling,
    RateLimit,
    resolve_api_key,
)
from ._exceptions import (
    AmbiguousSubmitError,
    APIError,
    AuthenticationError,
    ConfigurationError,
    DocumentError,
    MissingAPIKeyError,
    PermissionDeniedError,
    ResponseValidationError,
    UpstageOCRError,
)
from ._inputs import InputItem, OutputMapper, iter_inputs
from ._journal import Entry, Journal, State, journal_path
from ._models import RequestSummary
from ._preflight import Mode, prepare
from ._progress import RunDisplay, choose_style
from ._reconcile import Window
from ._report import ReportRow, ReportWriter
from .testing._config import EmulatorConfig

__all__ = ["EMULATOR_KEY", "EMULATOR_POLLING", "OcrOptions", "run_command", "run_ocr"]

logger = logging.getLogger("aioupstage_ocr")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

#: Polling against the in-process emulator: its batches take tenths of a second.
EMULATOR_POLLING: Final = Polling(initial=0.1, maximum=1.0, factor=1.5, jitter=0.1)
#: The key sent to the in-process emulator (it takes any).
EMULATOR_KEY: Final = "emulator"

# Inputs the discovery thread may find ahead of the run.
_AHEAD = 256
# Outputs being written at once (each an fsynced atomic write).
_WRITERS = 8
# Errors that are the service's verdict on a request: it is sent again, not polled.
_VERDICTS = frozenset({"RequestFailedError", "BatchFailedError", "IncompleteResultError"})


@dataclass(frozen=True, slots=True)
class OcrOptions:
    """What `aioupstage-ocr ocr` was asked to do."""

    inputs: tuple[str, ...]
    output_dir: str | None = None
    mode: Mode = "auto"
    concurrency: int | None = None
    rps: float | None = None
    ppm: float | None = None
    report: str | None = None
    resume: bool = True
    base_url: str | None = None
    emulator: bool = False
    quiet: bool = False


# --------------------------------------------------------------------------- entry point


def run_command(
    options: OcrOptions,
    *,
    emulator_config: EmulatorConfig | None = None,
    polling: Polling | None = None,
    display: RunDisplay | None = None,
) -> int:
    """Run the `ocr` command to its end; the exit code (0, 1, 2 or 130).

    `emulator_config` (with `options.emulator`) configures the in-process
    emulator; `polling` overrides the status polling; `display` replaces the
    one chosen from the terminal and `--quiet`.
    """
    if not options.emulator and resolve_api_key(None) is None:
        _error(str(MissingAPIKeyError(_missing_key())))
        return EXIT_USAGE
    shown = display or RunDisplay(choose_style(quiet=options.quiet))
    quiet_libraries()
    try:
        return asyncio.run(_main(options, shown, emulator_config, polling))
    except KeyboardInterrupt:  # a third Ctrl-C during the clean-up
        shown.close()
        _error("interrupted")
        return EXIT_INTERRUPTED


def _missing_key() -> str:
    return (
        "no API key: set the UPSTAGE_API_KEY environment variable "
        "(export UPSTAGE_API_KEY=...), or add --emulator to run on the bundled emulator"
    )


def quiet_libraries() -> None:
    """pypdf warns about every font it cannot fully parse: only its errors are worth a line."""
    logging.getLogger("pypdf").setLevel(logging.ERROR)


async def _main(
    options: OcrOptions,
    display: RunDisplay,
    emulator_config: EmulatorConfig | None,
    polling: Polling | None,
) -> int:
    stop = _Stopper(display)
    work = asyncio.get_running_loop().create_task(
        run_ocr(options, display, emulator_config=emulator_config, polling=polling, stop=stop)
    )
    stop.install(work)
    try:
        return await work
    except asyncio.CancelledError:
        if work.cancelled() and stop.presses:
            return EXIT_INTERRUPTED
        raise
    finally:
        stop.uninstall()


class _Stopper:
    """Ctrl-C: the first stops reading inputs, the second cancels the run."""

    def __init__(self, display: RunDisplay) -> None:
        self.presses = 0
        self.requested = False
        self._display = display
        self._work: asyncio.Task[int] | None = None
        self._scopes: set[anyio.CancelScope] = set()
        self._installed = False

    def install(self, work: asyncio.Task[int]) -> None:
        self._work = work
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self.press)
            self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
            self._installed = False

    def press(self) -> None:
        """One Ctrl-C."""
        self.presses += 1
        if self.presses == 1:
            self.requested = True
            for scope in list(self._scopes):
                scope.cancel()
            self._display.message(
                "stopping: no more inputs are read; the documents already taken finish. "
                "Ctrl-C again to stop at once (open requests are resumed next run)."
            )
        elif self._work is not None and not self._work.done():
            self._work.cancel()

    @contextlib.contextmanager
    def guard(self) -> Iterator[anyio.CancelScope]:
        """A scope cancelled by the first Ctrl-C (around a wait for more input)."""
        with anyio.CancelScope() as scope:
            if self.requested:
                scope.cancel()
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)


# --------------------------------------------------------------------------- the run


async def run_ocr(
    options: OcrOptions,
    display: RunDisplay,
    *,
    emulator_config: EmulatorConfig | None = None,
    polling: Polling | None = None,
    stop: _Stopper | None = None,
) -> int:
    """One `ocr` run inside a running event loop; the exit code."""
    stopper = stop or _Stopper(display)
    try:
        mapper = OutputMapper.from_args(options.inputs, options.output_dir)
    except (ConfigurationError, OSError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    async with contextlib.AsyncExitStack() as stack:
        base_url = options.base_url
        api_key = None
        if options.emulator:
            from .testing._emulator import UpstageEmulator  # noqa: PLC0415 - only when asked

            emulator = UpstageEmulator(emulator_config or EmulatorConfig())
            await stack.enter_async_context(emulator)
            base_url, api_key = emulator.base_url, EMULATOR_KEY
            polling = polling or EMULATOR_POLLING
        try:
            journal = Journal(journal_path(mapper.out_dir), fresh=not options.resume)
            await journal.open()
        except ConfigurationError as exc:
            _error(f"{exc} (choose another output folder with -o DIR)")
            return EXIT_USAGE
        except OSError as exc:
            _error(f"cannot open the journal in {mapper.out_dir}: {exc}")
            return EXIT_USAGE
        stack.push_async_callback(journal.close)
        report: ReportWriter | None = None
        if options.report:
            try:
                report = ReportWriter(options.report).open()
            except OSError as exc:
                _error(f"cannot write the report: {exc}")
                return EXIT_USAGE
            stack.callback(report.close)
        try:
            client = AsyncUpstageOCR(
                api_key,
                base_url=base_url,
                limits=_limits(options.concurrency),
                rate=RateLimit(rps=options.rps, ppm=options.ppm),
                polling=polling or DEFAULT_POLLING,
            )
        except ConfigurationError as exc:
            _error(str(exc))
            return EXIT_USAGE
        await stack.enter_async_context(client)
        stack.enter_context(display)
        run = _Run(
            options,
            client=client,
            journal=journal,
            report=report,
            mapper=mapper,
            display=display,
            stopper=stopper,
        )
        with _LogToDisplay(display):
            try:
                await run.execute()
            except asyncio.CancelledError:  # the second Ctrl-C
                display.summary(interrupted=True, report=report.path if report else None)
                _resume_hint(run)
                raise
        interrupted = stopper.requested
        display.summary(interrupted=interrupted, report=report.path if report else None)
        if run.fatal is not None:
            _error(_fatal_message(run.fatal))
            return EXIT_FAILED
        if interrupted:
            _resume_hint(run)
            return EXIT_INTERRUPTED
        return EXIT_FAILED if display.totals.failed else EXIT_OK
    raise AssertionError("unreachable")  # pragma: no cover - the stack re-raises or returns


def _limits(concurrency: int | None) -> Limits:
    if concurrency is None:
        return DEFAULT_LIMITS
    return Limits(
        max_connections=max(DEFAULT_LIMITS.max_connections, concurrency),
        max_concurrency=concurrency,
        max_downloads=min(DEFAULT_LIMITS.max_downloads, concurrency),
        max_polls=min(DEFAULT_LIMITS.max_polls, concurrency),
        max_open_documents=max(DEFAULT_LIMITS.max_open_documents, concurrency),
    )


def _fatal_message(exc: BaseException) -> str:
    text = f"the run stopped: {type(exc).__name__}: {exc}"
    if isinstance(exc, AuthenticationError):
        text += " (the key was refused: check UPSTAGE_API_KEY)"
    elif isinstance(exc, PermissionDeniedError):
        text += " (no credit left on the account?)"
    return text + "; run the same command again to resume"


def _resume_hint(run: _Run) -> None:
    again = "the same command" if run.options.resume else "the same command without --no-resume"
    _error(
        f"interrupted: run {again} again to resume (finished outputs are kept; "
        "open requests are fetched, not submitted again)"
    )


def _error(text: str) -> None:
    sys.stderr.write(f"aioupstage-ocr: {text}\n")
    sys.stderr.flush()


class _LogToDisplay(logging.Handler):
    """The package's warnings, shown through the display (above the bar, not through it)."""

    def __init__(self, display: RunDisplay) -> None:
        super().__init__(logging.WARNING)
        self._display = display
        self._logger = logging.getLogger("aioupstage_ocr")
        self._propagate = self._logger.propagate

    def __enter__(self) -> _LogToDisplay:
        self._logger.addHandler(self)
        self._logger.propagate = False
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._logger.removeHandler(self)
        self._logger.propagate = self._propagate

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._display.message(record.getMessage())
        except Exception:  # noqa: BLE001 - logging never raises into the run
            self.handleError(record)


@dataclass(slots=True)
class _Meta:
    """What the run knows of an input between planning and its row."""

    output: Path
    size: int
    mtime_ns: int
    sha256: str | None = None
    count: int = 1


@dataclass(slots=True)
class _Seen:
    """An input as discovery saw it (blocking work done in the discovery thread)."""

    item: InputItem
    output: Path | None = None
    size: int = 0
    mtime_ns: int = 0
    output_exists: bool = False
    sha256: str | None = None
    error: UpstageOCRError | None = None


def _see(item: InputItem, mapper: OutputMapper, hash_limit: int) -> _Seen:
    """Stat, output path, and (up to `hash_limit` bytes, 0 for none) the content's hash."""
    seen = _Seen(item)
    if item.error is not None:
        seen.error = item.error
        return seen
    try:
        seen.output = mapper.output_for(item.path)
    except ConfigurationError as exc:
        seen.error = exc
        return seen
    try:
        info = os.stat(item.path)
    except OSError:
        return seen  # preflight names the problem
    seen.size, seen.mtime_ns = info.st_size, info.st_mtime_ns
    seen.output_exists = os.path.isfile(seen.output)
    if 0 < seen.size <= hash_limit:
        seen.sha256 = _hash_file(item.path)
    return seen


class _End:
    """Discovery is over: every input was seen."""


class _Discovery:
    """Inputs found by a daemon thread (folder walks and stdin block), handed to the loop.

    The thread runs `iter_inputs`, stats each input, maps its output, hashes
    it (for the journal's content checks), and stays at most `_AHEAD` inputs
    ahead of the run (so preflight reads the file again from the page cache).
    It is a daemon: a stdin that never ends cannot keep the process alive
    after the run stops.
    """

    def __init__(self, inputs: tuple[str, ...], mapper: OutputMapper, hash_limit: int) -> None:
        self._inputs = inputs
        self._mapper = mapper
        self._hash_limit = hash_limit
        self._room = threading.Semaphore(_AHEAD)
        self._items: deque[_Seen | _End | BaseException] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._discover, name="aioupstage-ocr inputs", daemon=True
        )
        self._thread.start()

    def _discover(self) -> None:
        try:
            for item in iter_inputs(self._inputs):
                seen = _see(item, self._mapper, self._hash_limit)
                self._room.acquire()
                if self._closed:
                    return
                self._loop.call_soon_threadsafe(self._push, seen)
            self._loop.call_soon_threadsafe(self._push, _End())
        except RuntimeError:
            return  # the loop closed: nobody is reading any more
        except BaseException as exc:  # noqa: BLE001 - handed to the run, raised there
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._push, exc)

    def close(self) -> None:
        """Stop finding inputs (a thread waiting on stdin ends with the process)."""
        self._closed = True
        self._room.release()

    def _push(self, value: _Seen | _End | BaseException) -> None:
        self._items.append(value)
        self._ready.set()

    async def next(self) -> _Seen | None:
        """The next input, or None when there are no more."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        value = self._items.popleft()
        if isinstance(value, _Seen):
            self._room.release()
            return value
        if isinstance(value, _End):
            self._items.appendleft(value)
            return None
        raise value


def _hash_file(path: Path) -> str | None:
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return None


def _copy(source: Path, target: Path) -> Path:
    return atomic_write_bytes(target, source.read_bytes())


@dataclass(slots=True)
class _Unresolved:
    """What the start-up check decided for `submitting` rows without a request id."""

    adopted: dict[str, str] = field(default_factory=dict)
    ambiguous: dict[str, AmbiguousSubmitError] = field(default_factory=dict)


class _Run:
    """One `ocr` run's state: planning, the bulk run, writing, rows."""

    def __init__(
        self,
        options: OcrOptions,
        *,
        client: AsyncUpstageOCR,
        journal: Journal,
        report: ReportWriter | None,
        mapper: OutputMapper,
        display: RunDisplay,
        stopper: _Stopper,
    ) -> None:
        self.options = options
        self.client = client
        self.journal = journal
        self.report = report
        self.mapper = mapper
        self.display = display
        self.stopper = stopper
        self.fatal: Exception | None = None
        self._meta: dict[str, _Meta] = {}
        self._unresolved = _Unresolved()
        self._found = 0
        self._writers = anyio.Semaphore(_WRITERS)
        self._group: TaskGroup | None = None
        self._limits: DocumentLimits = client.document_limits

    # ------------------------------------------------------------------ the whole run

    async def execute(self) -> None:
        if self.options.resume:
            self._unresolved = await self._settle_submitting()
        bulk = self.client.ocr_many(
            self._documents(),
            mode=self.options.mode,
            on_event=self._on_event,
            before_submit=self._before_submit,
            after_submit=self._after_submit,
        )
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                async with bulk:
                    async for item in bulk:
                        await self._writers.acquire()
                        group.start_soon(self._complete, item)
            except Exception as exc:  # noqa: BLE001 - a run-wide failure: a refused key, a full disk
                self.fatal = exc

    # ------------------------------------------------------------------ planning

    async def _documents(self) -> AsyncIterator[str | Resume]:
        hash_limit = self._limits.max_bytes if self.options.resume else 0
        discovery = _Discovery(self.options.inputs, self.mapper, hash_limit)
        try:
            while not self.stopper.requested:
                got: list[_Seen | None] = []
                with self.stopper.guard():
                    got.append(await discovery.next())
                if not got:
                    return  # the first Ctrl-C: read no more
                seen = got[0]
                if seen is None:
                    self.display.total_known(self._found)
                    return
                self._found += 1
                self.display.found()
                document = await self._plan(seen)
                if document is not None:
                    yield document
        finally:
            discovery.close()

    async def _plan(self, seen: _Seen) -> str | Resume | None:
        """A path to submit, a `Resume`, or None when the input's row is already written."""
        path = seen.item.path
        key = os.fspath(path)
        if seen.error is not None or seen.output is None:
            error = seen.error or DocumentError(key, "cannot be read")
            await self._row(ReportRow.failed(key, error))
            return None
        ambiguous = self._unresolved.ambiguous.get(key)
        if ambiguous is not None:
            await self._row(ReportRow.failed(key, ambiguous, mode="async"))
            return None
        entry: Entry | None = None
        sha256: str | None = None
        own = True
        if self.options.resume:
            sha256 = seen.sha256
            entry = await self.journal.lookup(path, seen.size, seen.mtime_ns)
            if entry is not None and sha256 is not None and entry.sha256 not in (None, sha256):
                entry = None  # same size and mtime, other content: judged by content
            if entry is None and sha256 is not None:  # new, touched, or a copy
                entry = await self.journal.find_by_hash(sha256)
                own = entry is not None and entry.path == path
        meta = _Meta(seen.output, seen.size, seen.mtime_ns, sha256)
        if entry is not None:
            done = await self._resume_done(key, seen, entry, meta, own=own)
            if done:
                return None
            request_id = _request_to_poll(entry)
            if request_id is not None:
                self._remember(key, meta)
                return Resume(key, request_id)
        self._remember(key, meta)
        return key

    async def _resume_done(
        self, key: str, seen: _Seen, entry: Entry, meta: _Meta, *, own: bool
    ) -> bool:
        """Settle an input whose content is already done: skipped, or copied. False if not."""
        if entry.state is not State.DONE or entry.output is None:
            return False
        assert seen.output is not None
        if own and entry.output == seen.output and seen.output_exists:
            if (entry.size, entry.mtime_ns) != (seen.size, seen.mtime_ns):
                await self.journal.record_done(
                    key, seen.output, entry.pages or 0, size=seen.size, mtime_ns=seen.mtime_ns
                )
            await self._row(
                ReportRow(
                    key,
                    "skipped",
                    output=os.fspath(seen.output),
                    pages=entry.pages,
                    mode=entry.route,
                    request_id=entry.request_id,
                )
            )
            return True
        if entry.output == seen.output:
            return False  # our own output is gone: fetch again or submit
        try:
            written = await anyio.to_thread.run_sync(_copy, entry.output, seen.output)
        except OSError:
            return False  # the other output is gone or unreadable: do the work
        await self.journal.record_done(
            key,
            written,
            entry.pages or 0,
            size=seen.size,
            mtime_ns=seen.mtime_ns,
            sha256=meta.sha256 or entry.sha256,
            route=entry.route,
            request_id=entry.request_id,
        )
        await self._row(
            ReportRow(
                key,
                "ok",
                output=os.fspath(written),
                pages=entry.pages,
                mode=entry.route,
                request_id=entry.request_id,
            )
        )
        return True

    def _remember(self, key: str, meta: _Meta) -> None:
        known = self._meta.get(key)
        if known is not None:
            known.count += 1
        else:
            self._meta[key] = meta

    def _forget(self, key: str) -> _Meta | None:
        meta = self._meta.get(key)
        if meta is not None:
            meta.count -= 1
            if meta.count <= 0:
                del self._meta[key]
        return meta

    # ------------------------------------------------------------------ journal hooks

    async def _before_submit(self, submission: Submission) -> None:
        key = os.fspath(submission.source)  # type: ignore[arg-type]
        meta = self._meta.get(key)
        if meta is not None and meta.size == submission.size:
            mtime_ns = meta.mtime_ns
        else:
            mtime_ns = await anyio.to_thread.run_sync(_mtime, key)
        if meta is not None:
            meta.sha256 = submission.sha256
        await self.journal.record_submitting(
            key, submission.sha256, submission.route, size=submission.size, mtime_ns=mtime_ns
        )

    async def _after_submit(self, submission: Submission) -> None:
        assert submission.request_id is not None
        key = os.fspath(submission.source)  # type: ignore[arg-type]
        await self.journal.record_submitted(key, submission.request_id)

    # ------------------------------------------------------------------ outcomes

    async def _complete(self, item: BulkItem) -> None:
        try:
            await self._complete_item(item)
        except Exception as exc:  # noqa: BLE001 - the journal or report failed: stop the run
            if self.fatal is None:
                self.fatal = exc
            if self._group is not None:
                self._group.cancel_scope.cancel()
        finally:
            self._writers.release()

    async def _complete_item(self, item: BulkItem) -> None:
        key = os.fspath(item.source)  # type: ignore[arg-type]
        meta = self._forget(key)
        if meta is None:  # not one of ours: cannot happen, but never lose a row
            meta = _Meta(self.mapper.output_for(key), 0, 0)
        sha256 = item.sha256 or meta.sha256
        stat = {"size": meta.size or None, "mtime_ns": meta.mtime_ns or None}
        if item.result is not None:
            data = item.result.to_json()
            try:
                written = await anyio.to_thread.run_sync(atomic_write_bytes, meta.output, data)
            except OSError as exc:
                error = UpstageOCRError(f"{key}: cannot write the output: {exc}")
                await self.journal.record_failed(
                    key, type(error).__name__, str(error), sha256=sha256, **stat
                )
                await self._row(
                    ReportRow.failed(key, error, mode=item.mode, request_id=item.request_id)
                )
                return
            await self.journal.record_done(
                key,
                written,
                item.pages or item.result.num_pages,
                sha256=sha256,
                route=item.mode,
                request_id=item.request_id,
                **stat,
            )
            await self._row(
                ReportRow(
                    key,
                    "ok",
                    output=os.fspath(written),
                    pages=item.pages if item.pages is not None else item.result.num_pages,
                    mode=item.mode,
                    request_id=item.request_id,
                )
            )
            return
        error = item.error or UpstageOCRError(f"{key}: no result")
        await self.journal.record_failed(
            key, type(error).__name__, str(error), sha256=sha256, **stat
        )
        await self._row(ReportRow.failed(key, error, mode=item.mode, request_id=item.request_id))

    async def _row(self, row: ReportRow) -> None:
        if self.report is not None:
            self.report.write(row)
        self.display.finished(row)

    def _on_event(self, event: BulkEvent) -> None:
        if event.kind == "retrying":
            self.display.retried()
        elif event.kind == "paused":
            self.display.paused()
        elif event.kind == "pages" and event.source is not None:
            self.display.pages_advanced(
                os.fspath(event.source),  # type: ignore[arg-type]
                event.pages_completed or 0,
            )

    # ------------------------------------------------------------------ start-up check

    async def _settle_submitting(self) -> _Unresolved:
        """Decide every `submitting` row without a request id (see the module docstring)."""
        decided = _Unresolved()
        rows = [
            row
            for row in await self.journal.open_requests()
            if row.state is State.SUBMITTING and row.request_id is None and row.route == "async"
        ]
        if not rows:
            return decided
        try:
            listed = await self.client.list_requests()
        except (APIError, ResponseValidationError) as exc:
            for row in rows:
                decided.ambiguous[os.fspath(row.path)] = AmbiguousSubmitError(
                    os.fspath(row.path),
                    "a submit may have reached the service before the last run stopped, and "
                    f"the request list that would tell could not be read ({exc}); not sending "
                    "it again (that could pay twice); run again later",
                )
            return decided
        # A row's window opens at its journal write (just before the submit) and
        # lasts as long as a submit can take with its retries.
        windows = {os.fspath(row.path): self.client.submit_window(row.updated_at) for row in rows}
        earliest = min(windows.values(), key=lambda window: window.low)
        span = earliest.high - earliest.low
        known = await self.journal.request_ids(
            min(row.updated_at for row in rows) - _reconcile.MARGIN_BLIND - span
        )
        ids = set(_reconcile.candidates(listed, Window(earliest.low, math.inf), known))
        candidates = [summary for summary in listed if summary.id in ids]
        pages = await self._candidate_pages(candidates)
        fits: dict[str, set[str]] = {}
        for row in rows:
            row_pages = await anyio.to_thread.run_sync(self._pages_of, row)
            window = windows[os.fspath(row.path)]
            fits[os.fspath(row.path)] = {
                summary.id
                for summary in candidates
                if window.holds(summary) and _reconcile.pages_fit(row_pages, pages.get(summary.id))
            }
        adopted, left_over = _reconcile.pair(fits)
        for key, request_id in adopted.items():
            await self.journal.record_submitted(key, request_id)
            decided.adopted[key] = request_id
            logger.warning(
                "%s: the last run stopped while submitting it; request %s, the only new "
                "request that fits, is taken as its own and fetched",
                key,
                request_id,
            )
        for key, left in left_over.items():
            if not left:
                continue  # nothing was created for it: sent again
            decided.ambiguous[key] = AmbiguousSubmitError(
                key,
                "a submit may have reached the service before the last run stopped; "
                f"{len(left)} request(s) could be it ({', '.join(sorted(left))}); not sending "
                "it again (that could pay twice): fetch the right one with "
                "`aioupstage-ocr fetch REQUEST_ID -o FILE`, or run with --no-resume",
                candidates=tuple(sorted(left)),
            )
        return decided

    async def _candidate_pages(self, candidates: list[RequestSummary]) -> dict[str, int | None]:
        pages: dict[str, int | None] = {}
        for summary in candidates:
            try:
                status = await self.client.get_request(summary.id)
            except (APIError, ResponseValidationError):
                pages[summary.id] = None
                continue
            pages[summary.id] = status.total_pages or None
        return pages

    def _pages_of(self, row: Entry) -> int | None:
        """The page count of a row's file, when it still has the content recorded."""
        try:
            prepared = prepare(row.path, mode="async", limits=self._limits)
        except (DocumentError, OSError, ValueError):
            return None
        return prepared.pages if prepared.sha256 == row.sha256 else None


def _request_to_poll(entry: Entry) -> str | None:
    """The request id to poll instead of submitting, if the row has one worth polling."""
    if entry.request_id is None:
        return None
    if entry.state in (State.SUBMITTED, State.DONE):
        return entry.request_id
    if entry.state is State.FAILED and entry.error_type not in _VERDICTS:
        return entry.request_id
    return None


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0
