"""The `ocr` command: a bulk run with its resume journal, report, outputs and display.

```
inputs -> plan (stat, journal, maybe hash) -> BulkRun -> write output -> journal, report, stdout
               skipped / copied / failed rows go straight to the report
```

Resume (what the journal says about each input, and the check of submits a
stopped run left open) is `_resume`; finding the inputs is `_discovery`; what
is shown is `_display`.

Several runs on one output folder share its journal (see `_journal`). Each
input is claimed before it is planned:
- held by another live run: set aside and tried again every `_RECHECK`
  seconds. Finished by the other meanwhile: `skipped`, with its output. The
  other run stopped (its lease ran out, or its pid is gone): taken over and
  planned like any input of a resumed run (a request id is polled; a
  `submitting` row without one is settled against the request list first).
  Once this run's own work is done, what is still held is `skipped` with the
  reason "run ... holds it": left to that run, which writes its output.
- the start-up check takes only the cut-off submits no live run holds.
So each run's report and summary hold exactly the inputs it was given, and a
document is sent by one run only.

Ctrl-C once: no more inputs are read; what was taken finishes (journal and
report as usual). Twice: everything stops at once; the journal stays
consistent and the next run picks up the open requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio
from anyio.abc import TaskGroup

from .._bulk import BulkEvent, BulkItem, Resume, Submission
from .._client import AsyncUpstageOCR
from .._config import (
    DEFAULT_LIMITS,
    DEFAULT_POLLING,
    DocumentLimits,
    Limits,
    Polling,
    RateLimit,
    resolve_api_key,
)
from .._exceptions import (
    AuthenticationError,
    ConfigurationError,
    DocumentError,
    MissingAPIKeyError,
    PageBudgetError,
    PartialResultError,
    PermissionDeniedError,
    UpstageOCRError,
)
from .._inputs import OutputMapper
from .._journal import Claim, Entry, Journal, RunInfo
from .._outputs._files import Written, output_paths
from .._pages import format_pages
from .._preflight import Mode
from .._report import ReportRow, ReportWriter, error_of
from .._storage import safe_url
from . import _remote
from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, error, no_key
from ._discovery import Discovery, Seen
from ._display import RunDisplay, choose_style
from ._resume import (
    Unresolved,
    already_done,
    cut_off,
    kept,
    request_to_poll,
    settle_part,
    settle_submitting,
)

if TYPE_CHECKING:
    from ..testing import EmulatorConfig

__all__ = ["EMULATOR_KEY", "EMULATOR_POLLING", "OcrOptions", "run_command", "run_ocr"]

logger = logging.getLogger("aioupstage_ocr")


#: Polling against the in-process emulator: its batches take tenths of a second.
EMULATOR_POLLING: Final = Polling(initial=0.1, maximum=1.0, factor=1.5, jitter=0.1)
#: The key sent to the in-process emulator (it takes any).
EMULATOR_KEY: Final = "emulator"

# Outputs being written at once (each an fsynced atomic write).
_WRITERS = 8
# How often inputs held by other runs are tried again, in seconds.
_RECHECK = 0.5


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
    #: The journal's file (default: beside local outputs; see `_remote` for a URL output).
    journal: str | None = None
    #: Outputs besides the `.ocr.json` (always written: resume and `convert` read it).
    formats: tuple[str, ...] = ("json",)
    base_url: str | None = None
    emulator: bool = False
    quiet: bool = False
    pages: str | None = None
    allow_partial: bool = False
    max_pages: int | None = None


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
        error(str(MissingAPIKeyError(no_key(emulator_flag=True))))
        return EXIT_USAGE
    shown = display or RunDisplay(choose_style(quiet=options.quiet))
    quiet_libraries()
    try:
        return asyncio.run(_main(options, shown, emulator_config, polling))
    except KeyboardInterrupt:  # a third Ctrl-C during the clean-up
        shown.close()
        error("interrupted")
        return EXIT_INTERRUPTED


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
        mapper = _remote.make_mapper(options.inputs, options.output_dir)
    except (ConfigurationError, OSError) as exc:
        error(str(exc))
        return EXIT_USAGE
    async with contextlib.AsyncExitStack() as stack:
        base_url = options.base_url
        api_key = None
        if options.emulator:
            from ..testing import EmulatorConfig, UpstageEmulator  # noqa: PLC0415 - only when asked

            emulator = UpstageEmulator(emulator_config or EmulatorConfig())
            await stack.enter_async_context(emulator)
            base_url, api_key = emulator.base_url, EMULATOR_KEY
            polling = polling or EMULATOR_POLLING
        try:
            journal_file = _remote.journal_file(mapper, options.journal)
            journal = Journal(journal_file, fresh=not options.resume)
            await journal.open()
        except ConfigurationError as exc:
            error(str(exc))
            return EXIT_USAGE
        except OSError as exc:
            error(f"cannot open the journal {journal_file}: {exc}")
            return EXIT_USAGE
        stack.push_async_callback(journal.close)
        report: ReportWriter | None = None
        if options.report:
            try:
                report = ReportWriter(options.report).open()
            except OSError as exc:
                error(f"cannot write the report: {exc}")
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
            error(str(exc))
            return EXIT_USAGE
        await stack.enter_async_context(client)
        stack.enter_context(display)
        run = OcrCommand(
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
        if run.over_budget:
            display.message(
                f"--max-pages {options.max_pages}: {run.over_budget} input(s) not sent "
                "(skipped, not in the journal): run again to send them"
            )
        display.summary(interrupted=interrupted, report=report.path if report else None)
        if run.fatal is not None:
            error(_fatal_message(run.fatal))
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


def _resume_hint(run: OcrCommand) -> None:
    again = "the same command" if run.options.resume else "the same command without --no-resume"
    error(
        f"interrupted: run {again} again to resume (finished outputs are kept; "
        "open requests are fetched, not submitted again)"
    )


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
    parts_recorded: bool = False


@dataclass(slots=True)
class _Waiting:
    """An input another live run holds (`holder`), or one whose check was deferred (None)."""

    seen: Seen
    holder: RunInfo | None


class OcrCommand:
    """One `ocr` command's state: planning each input, the bulk run, writing, rows."""

    def __init__(
        self,
        options: OcrOptions,
        *,
        client: AsyncUpstageOCR,
        journal: Journal,
        report: ReportWriter | None,
        mapper: OutputMapper | _remote.RemoteMapper,
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
        self.over_budget = 0  # inputs not sent: --max-pages was reached
        self._meta: dict[str, _Meta] = {}
        self._unresolved = Unresolved()
        self._waiting: dict[str, _Waiting] = {}
        self._next_check = 0.0
        self._found = 0
        self._writers = anyio.Semaphore(_WRITERS)
        self._group: TaskGroup | None = None
        self._limits: DocumentLimits = client.document_limits
        self._formats = ("json", *(f for f in options.formats if f != "json"))
        self._settling = anyio.Lock()  # parts found open are settled one at a time

    # ------------------------------------------------------------------ the whole run

    async def execute(self) -> None:
        if self.options.resume:
            orphans = await self.journal.claim_orphans()
            self._unresolved = await self._settle(orphans)
            await self.journal.release_all()  # claimed again as each input comes up
        bulk = self.client.ocr_many(
            self._documents(),
            mode=self.options.mode,
            on_event=self._on_event,
            before_submit=self._before_submit,
            after_submit=self._after_submit,
            known_part=self._known_part if self.options.resume else None,
            pages=self.options.pages,
            max_pages=self.options.max_pages,
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
        discovery = Discovery(self.options.inputs, self.mapper, hash_limit)
        try:
            while not self.stopper.requested:
                got: list[Seen | None] = []
                with self.stopper.guard():
                    got.append(await discovery.next())
                if not got:
                    return  # the first Ctrl-C: read no more
                seen = got[0]
                if seen is None:
                    self.display.total_known(self._found)
                    break
                self._found += 1
                self.display.found()
                document = await self._plan(seen)
                if document is not None:
                    yield document
                if self._waiting and time.monotonic() >= self._next_check:
                    async for document in self._check_waiting(final=False):
                        yield document
        finally:
            discovery.close()
        while self._waiting and not self._stopping():
            with self.stopper.guard():
                await anyio.sleep(max(0.0, self._next_check - time.monotonic()))
            if self._stopping():
                return
            # Once this run's own work is done, what others still hold is theirs.
            async for document in self._check_waiting(final=not self._meta):
                yield document

    def _stopping(self) -> bool:
        return self.stopper.requested

    async def _check_waiting(self, *, final: bool) -> AsyncIterator[str | Resume]:
        """Try again the inputs other runs held; `final`: report those still held as theirs."""
        self._next_check = time.monotonic() + _RECHECK
        left: list[tuple[str, RunInfo]] = []
        waiting_now, self._waiting = self._waiting, {}
        keys: list[str | os.PathLike[str]] = list(waiting_now)
        claims = await self.journal.claim_many(keys)
        for (key, waiting), claim in zip(waiting_now.items(), claims, strict=True):
            if claim.holder is not None and final:
                left.append((key, claim.holder))
            elif claim.holder is not None:
                self._waiting[key] = _Waiting(waiting.seen, claim.holder)
            else:
                document = await self._plan_claimed(waiting.seen, claim, waited=True)
                if document is not None:
                    yield document
        for key, holder in left:
            reason = f"{holder} holds it on this output folder: left to it"
            await self._row(ReportRow(key, "skipped", reason=reason))
        if left:
            self.display.message(
                f"{len(left)} input(s) left to other runs on {safe_url(str(self.mapper.out_dir))} "
                "(they write the outputs; the report has a reason on each row)"
            )

    async def _settle(self, rows: list[Entry]) -> Unresolved:
        return await settle_submitting(self.client, self.journal, self._limits, rows)

    async def _plan(self, seen: Seen) -> str | Resume | None:
        """A path to submit, a `Resume`, or None when the input's row is already written
        (or it waits for another run that holds it)."""
        path = seen.item.path
        key = os.fspath(path)
        if seen.error is not None or seen.output is None:
            error = seen.error or DocumentError(key, "cannot be read")
            await self._row(ReportRow.failed(key, error))
            return None
        if self.options.resume:  # done with its output in place: skipped, no claim needed
            entry = await self.journal.lookup(path, seen.size, seen.mtime_ns)
            if entry is not None and _same_content(entry, seen):
                done = await kept(self.journal, key, seen, entry)
                if done is not None:
                    await self._already_done(key, done, claimed=False)
                    return None
        return await self._plan_claimed(seen, await self.journal.claim(key), waited=False)

    async def _plan_claimed(self, seen: Seen, claim: Claim, *, waited: bool) -> str | Resume | None:
        """`_plan` once the journal answered the claim of the input (`waited`: after a wait)."""
        path = seen.item.path
        key = os.fspath(path)
        if claim.holder is not None:
            self._waiting[key] = _Waiting(seen, claim.holder)
            return None
        if claim.taken_from is not None:
            logger.warning("%s: %s stopped while it held it; taken over", key, claim.taken_from)
        row = claim.entry
        if (
            self.options.resume
            and row is not None
            and cut_off(row)
            and self._unresolved.resend.get(key) != row.updated_at
            and key not in self._unresolved.ambiguous
        ):
            # A run stopped while sending it: settled with every other such row.
            orphans = await self.journal.claim_orphans()
            self._unresolved.update(await self._settle([row, *orphans]))
            for orphan in orphans:
                await self.journal.release(orphan.path)
            row = await self.journal.get(key)  # adopted: now with its request id
            if key in self._unresolved.deferred:
                await self.journal.release(key)
                self._waiting[key] = _Waiting(seen, None)
                return None
        ambiguous = self._unresolved.ambiguous.get(key)
        if ambiguous is not None:
            await self.journal.release(key)
            await self._row(ReportRow.failed(key, ambiguous, mode="async"))
            return None
        if waited and row is not None:  # the run that held it may have finished it
            done = await already_done(self.journal, key, seen, row, seen.sha256, own=True)
            if done is not None:
                await self._already_done(key, done, claimed=True)
                return None
        entry: Entry | None = None
        sha256: str | None = None
        own = True
        if self.options.resume:
            sha256 = seen.sha256
            if row is not None and (row.size, row.mtime_ns) == (seen.size, seen.mtime_ns):
                entry = row  # the row as claimed: what `lookup` would answer
            if entry is not None and not _same_content(entry, seen):
                entry = None  # same size and mtime, other content: judged by content
            if entry is None and sha256 is not None:  # new, touched, or a copy
                entry = await self.journal.find_by_hash(sha256)
                own = entry is not None and entry.path == path
        assert seen.output is not None
        meta = _Meta(seen.output, seen.size, seen.mtime_ns, sha256)
        if entry is not None:
            done = await already_done(self.journal, key, seen, entry, sha256, own=own)
            if done is not None:
                await self._already_done(key, done, claimed=True)
                return None
            request_id = request_to_poll(entry)
            if request_id is not None:
                self._remember(key, meta)
                return Resume(_remote.document_of(key), request_id)
        self._remember(key, meta)
        return _remote.document_of(key)

    async def _already_done(self, key: str, done: ReportRow, *, claimed: bool) -> None:
        """Write the row of an input found done (its claim let go first, if `claimed`)."""
        if claimed:
            await self.journal.release(key)
        await self._row(await self._with_outputs(key, done))

    async def _with_outputs(self, key: str, row: ReportRow) -> ReportRow:
        """A done input's row, its other outputs checked: those missing (a format added
        since, a file deleted) are made from its `.ocr.json`, never by the service."""
        assert row.output is not None
        json_path = _remote.key_of(row.output)
        paths = output_paths(json_path, self._formats)
        missing = await anyio.to_thread.run_sync(
            lambda: tuple(fmt for fmt, path in paths.items() if not _remote.exists(path))
        )
        if not missing:
            return replace(row, outputs={fmt: os.fspath(path) for fmt, path in paths.items()})
        try:
            result = await anyio.to_thread.run_sync(_remote.read_output, json_path)
        except (UpstageOCRError, OSError) as exc:
            error = _output_error(key, "json", exc)
            return ReportRow.failed(key, error, mode=row.mode, request_id=row.request_id)
        written = await anyio.to_thread.run_sync(
            functools.partial(
                _remote.put_outputs,
                result,
                missing,
                json_path,
                document=_remote.document_of(key),
                name=_shown(key),
            )
        )
        written.paths = {fmt: written.paths.get(fmt, paths[fmt]) for fmt in paths}
        for fmt in written.errors:
            del written.paths[fmt]
        return _outputs_row(replace(row, status="ok"), written)

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
        key = _remote.key_text(submission.source)
        meta = self._meta.get(key)
        part = submission.part_sha256 is not None
        if meta is not None and (part or meta.size == submission.size):
            size, mtime_ns = meta.size, meta.mtime_ns
        else:
            size, mtime_ns = submission.size, await anyio.to_thread.run_sync(_mtime, key)
        if meta is not None:
            meta.sha256 = submission.sha256
        if not part:
            await self.journal.record_submitting(
                key, submission.sha256, submission.route, size=size, mtime_ns=mtime_ns
            )
            return
        assert submission.part_sha256 is not None
        if submission.repair_of is None and (meta is None or not meta.parts_recorded):
            if meta is not None:
                meta.parts_recorded = True
            # Route "parts", no request id: the start-up check leaves it alone, and
            # a resume sends it again, its parts settled one by one (`_known_part`).
            await self.journal.record_submitting(
                key, submission.sha256, "parts", size=size, mtime_ns=mtime_ns
            )
        await self.journal.record_part_submitting(
            key,
            submission.part_sha256,
            format_pages(submission.source_pages or ()),
            submission.route,
        )

    async def _after_submit(self, submission: Submission) -> None:
        assert submission.request_id is not None
        key = _remote.key_text(submission.source)
        if submission.part_sha256 is not None:
            await self.journal.record_part_submitted(
                key, submission.part_sha256, submission.request_id
            )
            return
        await self.journal.record_submitted(key, submission.request_id)

    async def _known_part(self, submission: Submission) -> str | None:
        """An earlier run's request for this part, or None to send it (`settle_part`)."""
        assert submission.part_sha256 is not None
        key = _remote.key_text(submission.source)
        row = await self.journal.part(key, submission.part_sha256)
        if row is None:
            return None
        async with self._settling:
            return await settle_part(self.client, self.journal, row)

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
        key = _remote.key_text(item.source)
        meta = self._forget(key)
        if meta is None:  # not one of ours: cannot happen, but never lose a row
            meta = _Meta(self.mapper.output_for(key), 0, 0)
        sha256 = item.sha256 or meta.sha256
        stat = {"size": meta.size or None, "mtime_ns": meta.mtime_ns or None}
        if item.result is not None:
            written = await anyio.to_thread.run_sync(
                functools.partial(
                    _remote.put_outputs,
                    item.result,
                    self._formats,
                    meta.output,
                    document=_remote.document_of(key),
                    name=_shown(key),
                )
            )
            pages = item.pages if item.pages is not None else item.result.num_pages
            json_path = written.paths.get("json")
            if json_path is None:  # the result itself could not be kept
                error = _output_error(key, "json", written.errors["json"])
                await self.journal.record_failed(
                    key, type(error).__name__, str(error), sha256=sha256, **stat
                )
                await self._row(
                    ReportRow.failed(key, error, mode=item.route, request_id=item.request_id)
                )
                return
            # The result is on disk: a later run never pays for it again, whatever else failed.
            await self.journal.record_done(
                key,
                json_path,
                item.pages or item.result.num_pages,
                sha256=sha256,
                route=item.route,
                request_id=item.request_id,
                **stat,
            )
            await self._row(
                _outputs_row(
                    ReportRow(
                        key,
                        "ok",
                        output=os.fspath(json_path),
                        pages=pages,
                        mode=item.route,
                        request_id=item.request_id,
                    ),
                    written,
                )
            )
            return
        error = item.error or UpstageOCRError(f"{key}: no result")
        if isinstance(error, PageBudgetError):  # never sent: the journal leaves it for next time
            self.over_budget += 1
            await self._row(ReportRow(key, "skipped", mode=item.route, reason=str(error)))
            return
        await self.journal.record_failed(
            key, type(error).__name__, str(error), sha256=sha256, **stat
        )
        if (
            self.options.allow_partial
            and isinstance(error, PartialResultError)
            and error.partial is not None
        ):
            await self._partial(key, meta.output, item, error)
            return
        await self._row(ReportRow.failed(key, error, mode=item.route, request_id=item.request_id))

    async def _partial(
        self, key: str, output: Path, item: BulkItem, error: PartialResultError
    ) -> None:
        """`--allow-partial`: the pages that came back are written, the missing ones listed.

        Only the JSON output (other `--format`s need the whole document). The
        journal keeps the input `failed`, so the next run tries the missing
        pages again.
        """
        try:
            written = await anyio.to_thread.run_sync(
                _remote.put_bytes, output, error.partial.to_json()
            )
        except (OSError, UpstageOCRError) as exc:
            failure = UpstageOCRError(f"{key}: cannot write the output: {exc}")
            await self._row(
                ReportRow.failed(key, failure, mode=item.route, request_id=item.request_id)
            )
            return
        self.display.message(f"partial: {error}")
        await self._row(
            ReportRow(
                key,
                "ok",
                output=os.fspath(written),
                pages=error.partial.num_pages,
                mode=item.route,
                request_id=item.request_id,
                error=error_of(error),
                missing_pages=error.missing_pages,
            )
        )

    async def _row(self, row: ReportRow) -> None:
        row = _shown_row(row)
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
                _shown(_remote.key_text(event.source)),  # as `_row` names it
                event.pages_completed or 0,
            )


def _same_content(entry: Entry, seen: Seen) -> bool:
    """False when both hashes are known and differ."""
    return seen.sha256 is None or entry.sha256 in (None, seen.sha256)


def _output_error(key: str, fmt: str, exc: UpstageOCRError | OSError) -> UpstageOCRError:
    """The error of one output format, naming the input (an `OSError` says which file)."""
    if isinstance(exc, UpstageOCRError):
        return exc
    return UpstageOCRError(f"{key}: cannot write the {fmt} output: {exc}")


def _outputs_row(row: ReportRow, written: Written) -> ReportRow:
    """`row` with its outputs; failed (naming the first format that failed) when one did."""
    outputs = {fmt: os.fspath(path) for fmt, path in written.paths.items()}
    if written.ok:
        return replace(row, outputs=outputs)
    fmt, exc = next(iter(written.errors.items()))
    return replace(
        row, status="failed", error=error_of(_output_error(row.input, fmt, exc)), outputs=outputs
    )


def _mtime(path: str) -> int:
    try:
        return _remote.stat_of(path)[1]
    except (OSError, UpstageOCRError):
        return 0


def _shown(key: str) -> str:
    return _remote.shown(key) or key


def _shown_row(row: ReportRow) -> ReportRow:
    """A row as printed and reported: URLs for object-storage keys (credential-free)."""
    outputs = row.outputs or {}
    if not any(_remote.url_of(path) for path in (row.input, row.output or "", *outputs.values())):
        return row
    return replace(
        row,
        input=_shown(row.input),
        output=_remote.shown(row.output),
        outputs=None if row.outputs is None else {f: _shown(p) for f, p in outputs.items()},
    )
