"""`BulkRun`: the facade that joins the stages of a bulk run, and its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from functools import partial
from types import TracebackType

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import _telemetry as telemetry
from .._engine import Engine
from .._exceptions import (
    AuthenticationError,
    BatchFailedError,
    ConfigurationError,
    DocumentError,
    LinkExpiredError,
    PageBudgetError,
    PermissionDeniedError,
    UpstageOCRError,
)
from .._models import OCRResult
from .._pages import PageRanges
from .._poller import PollScheduler, Progress
from .._preflight import Document, Mode, PreparedDocument
from .._priority import BULK, later, running_as
from . import _streams
from ._counters import Counters
from ._dedupe import Twins
from ._events import BulkEvent, BulkStats
from ._feed import feed
from ._items import Items
from ._jobs import Job, RunStopped, single
from ._outbox import Outbox
from ._prepare import BATCH, next_batch, prepare_batch
from ._ready import ReadyQueue
from ._send import Sender
from ._types import BulkItem, KnownHook, Resume, SubmitHook, name_of
from ._window import AdmissionWindow

__all__ = ["DEFAULT_MAX_PENDING", "BulkRun", "RunState"]

logger = logging.getLogger("aioupstage_ocr")

#: Documents taken and not yet handed over, by default (see `BulkRun`).
DEFAULT_MAX_PENDING = 256

_Ready = tuple[Job, PreparedDocument]


class RunState(enum.Enum):
    """Where a run is in its life; it only moves forward (as httpx's `ClientState`)."""

    NEW = "not started"  # made, not iterated yet
    RUNNING = "running"  # the pipeline task is working
    STOPPING = "stopping"  # told to stop (an error, a cancel): what is going ends
    ENDED = "ended"  # the pipeline is over; the loop reads what is left
    CLOSED = "closed"  # `aclose()` was called (before it ran, or after)


_ORDER = list(RunState)


class BulkRun:
    """One bulk run over `documents`: an async iterator of `BulkItem`, as each finishes.

    `documents` is any iterable or async iterable of documents (paths, bytes,
    binary file objects) and `Resume` entries, read lazily: a generator over a
    million paths is never listed up front. Lists and tuples are read in
    place, other iterables in a worker thread a few items at a time.

    - `mode`: `"auto"` (sync up to `DocumentLimits.sync_max_pages` pages, async
      above, a sync time-out going async once), `"sync"` or `"async"`.
    - `ordered`: yield in input order (a finished document waits for the ones
      before it, within `max_pending`); otherwise as each finishes.
    - `max_pending`: documents taken from the input and not yet handed to the
      loop, all stages and the reorder buffer included (default 256).
    - `on_event`: called with each `BulkEvent`, synchronously (keep it cheap;
      an error in it is logged, not raised).
    - `pages`: only these pages of each document are sent (`parse_pages`).
    - `max_pages`: the pages this run may send in all. A document that would
      take it past them is not sent, and neither is any after it: their items
      carry a `PageBudgetError` (a page count unknown before upload never fits).
    - `before_submit`: awaited with a `Submission` right before each document
      (or part of one) is sent; `after_submit` once an async request id is
      known; `known_part` before each part of a document cut into parts: a
      request id it gives is waited for instead of sending the part. A hook
      that raises stops the run with its error (a journal that cannot record
      a request must not let it be sent).
    - `owner`: a set the run is in while it goes (the client's, so that
      `AsyncUpstageOCR.aclose` stops it).

    Identical documents (by SHA-256) in flight at once are OCRed once: the
    later ones take the first one's result or error (`duplicate_of`).

    Iterate it once; `async with` or `aclose()` end it early and wait for
    everything it started. `stats` and `open_requests` can be read at any time.
    """

    def __init__(
        self,
        engine: Engine,
        documents: Iterable[Document | Resume] | AsyncIterable[Document | Resume],
        *,
        owner: set[BulkRun] | None = None,
        mode: Mode = "auto",
        ordered: bool = False,
        schema: str | None = None,
        max_pending: int | None = None,
        on_event: Callable[[BulkEvent], None] | None = None,
        before_submit: SubmitHook | None = None,
        after_submit: SubmitHook | None = None,
        known_part: KnownHook | None = None,
        pages: PageRanges | None = None,
        max_pages: int | None = None,
        priority: int = BULK,
    ) -> None:
        if isinstance(documents, str | bytes | bytearray | memoryview | os.PathLike) or not (
            isinstance(documents, Iterable | AsyncIterable)
        ):
            raise TypeError(
                "ocr_many takes an iterable of documents (paths, bytes, file objects); "
                f"got {type(documents).__name__} (for one document, use ocr())"
            )
        if mode not in ("auto", "sync", "async"):
            raise ValueError(f"mode must be 'auto', 'sync' or 'async', got {mode!r}")
        if max_pending is not None and max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending!r}")
        self._engine = engine
        self._priority = priority
        self._owner = owner
        self._documents = documents
        self._mode: Mode = mode
        self._pages = pages
        if max_pages is not None and max_pages < 0:
            raise ValueError(f"max_pages must not be negative, got {max_pages!r}")
        self._max_pages = max_pages
        self._pages_sent = 0  # pages this run has sent (or is sending), for `max_pages`
        self._budget_spent: str | None = None  # why no more documents are sent
        pending = max_pending or DEFAULT_MAX_PENDING
        self._workers = engine.limits.max_open_documents
        # Preflight tasks; each takes whatever is queued, up to a batch.
        self._preflighters = max(2, min(4, -(-self._workers // BATCH)))
        # A full window refills by this many at once, so preflight finds batches.
        self._window = AdmissionWindow(pending, refill=max(1, min(BATCH, pending // 4)))
        self._twins = Twins()
        self._outbox = Outbox(ordered=ordered)
        self._counters = Counters(on_event)
        self._sender = Sender(
            engine,
            self._counters,
            mode=mode,
            schema=schema,
            before_submit=before_submit,
            after_submit=after_submit,
            fatal=self._is_fatal,
            accepted=self._accepted,
            known_part=known_part,
            on_first=self._probe_key_soon,
        )
        self._state = RunState.NEW
        self._started_at: float | None = None
        self._open: dict[str, Job] = {}  # request id -> first job, until its item is taken
        self._next_index = 0
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._scope: anyio.CancelScope | None = None
        self._task_group: TaskGroup | None = None
        self._scheduler: PollScheduler | None = None

    def __repr__(self) -> str:
        s = self._counters.stats
        return (
            f"<BulkRun {self._state.value}: {s.queued} queued, {s.succeeded} succeeded, "
            f"{s.failed} failed, {len(self._open)} open requests>"
        )

    # ------------------------------------------------------------------ public

    @property
    def state(self) -> RunState:
        """Where the run is in its life."""
        return self._state

    @property
    def stats(self) -> BulkStats:
        """A snapshot of the counters."""
        stats = self._counters.stats
        snapshot = dataclasses.replace(stats)
        snapshot.pending = stats.queued - stats.yielded
        snapshot.open_requests = len(self._open)
        if self._started_at is not None:
            snapshot.elapsed = time.monotonic() - self._started_at
        return snapshot

    @property
    def open_requests(self) -> tuple[Resume, ...]:
        """Async requests submitted (or resumed) whose item was not handed over yet.

        After a stop or a cancellation these are the paid-for requests still
        to collect: feed them to another run (they are `Resume` entries) or
        `client.wait` each one.
        """
        return tuple(Resume(job.source, rid) for rid, job in self._open.items())

    def __aiter__(self) -> AsyncIterator[BulkItem]:
        if self._state is RunState.CLOSED and self._task is None:
            raise RuntimeError("this bulk run was closed before it started")
        if self._state is not RunState.NEW:
            raise RuntimeError("a bulk run is iterated once")
        self._advance(RunState.RUNNING)
        self._started_at = time.monotonic()
        if self._owner is not None:
            self._owner.add(self)
        self._engine.transport.pacer.pause_listeners.append(self._counters.paused)
        self._task = asyncio.get_running_loop().create_task(
            self._pipeline(), name="aioupstage-ocr bulk run"
        )
        return Items(
            self._outbox.receive,
            taken=self._taken,
            close=self.aclose,
            abandon=self._abandon,
            error=lambda: self._error,
        )

    async def __aenter__(self) -> BulkRun:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the run (if still going) and wait until everything it started has ended."""
        await self.stop()
        self._advance(RunState.CLOSED)
        self._outbox.receive.close()

    async def stop(self, error: BaseException | None = None) -> None:
        """Stop the run (if still going) and wait for its end; the loop then raises `error`.

        The loop still gets what had finished first. Without `error` it just ends.
        """
        task = self._task
        if task is None or task.done():
            return
        if error is not None and self._error is None:
            self._error = error
        self._cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait((task,))

    # ------------------------------------------------------------------ lifecycle

    def _advance(self, state: RunState) -> None:
        if _ORDER.index(state) > _ORDER.index(self._state):
            self._state = state

    @property
    def _going(self) -> bool:
        return self._state is RunState.RUNNING

    def _taken(self, item: BulkItem) -> None:
        """The loop took `item`: its place in the window is free, its request handed over."""
        self._window.give_back()
        self._counters.stats.yielded += 1
        if item.request_id is not None and item.duplicate_of is None:
            job = self._open.get(item.request_id)
            if job is not None and job.index == item.index:
                del self._open[item.request_id]

    def _abandon(self) -> None:
        """The loop dropped its iterator: stop the pipeline soon (safe from any thread)."""
        task = self._task
        if task is None or task.done():
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs anyway
            task.get_loop().call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        self._advance(RunState.STOPPING)
        if self._scope is not None:
            self._scope.cancel()
        elif self._task is not None:
            self._task.cancel()

    def _stop(self, error: BaseException) -> None:
        """End the run with `error`, raised by the loop once it has what finished."""
        if self._error is None:
            self._error = error
            stats = self._counters.stats
            error.add_note(
                f"the bulk run stopped: {stats.finished} of {stats.queued} documents taken "
                f"had finished; {len(self._open)} submitted request(s) are in run.open_requests"
            )
        self._advance(RunState.STOPPING)
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    def _is_fatal(self, exc: BaseException) -> bool:
        """Whether `exc` would hit every document the same way."""
        if isinstance(exc, AuthenticationError | ConfigurationError | RunStopped):
            return True
        if isinstance(exc, PermissionDeniedError):  # no credit; not a storage link's 403
            return not isinstance(exc, LinkExpiredError)
        return self._engine.transport.closed

    # ------------------------------------------------------------------ the pipeline

    async def _pipeline(self) -> None:
        try:
            with running_as(self._priority), anyio.CancelScope() as scope:
                self._scope = scope
                if not self._going:
                    scope.cancel()
                async with (
                    self._engine.scheduler(
                        on_progress=self._progress if self._counters.hook is not None else None,
                        on_retry=partial(self._counters.retrying, None),
                    ) as scheduler,
                    anyio.create_task_group() as group,
                ):
                    self._scheduler, self._task_group = scheduler, group
                    jobs_send, jobs = anyio.create_memory_object_stream[Job](
                        self._preflighters * BATCH
                    )
                    # Waiting for a sender, longest work first; a document is
                    # overtaken by at most as many as are sent at once.
                    ready = ReadyQueue[_Ready](self._preflighters, patience=self._workers)
                    async with jobs:
                        for _ in range(self._preflighters):
                            group.start_soon(self._preflight, jobs.clone(), ready)
                        for _ in range(self._workers):
                            group.start_soon(self._work, ready)
                    group.start_soon(self._feed, jobs_send)
        except Exception as exc:  # noqa: BLE001 - the input's own error, or a bug: the loop raises it
            self._advance(RunState.STOPPING)
            if self._error is None:
                self._error = single(exc)
        finally:
            self._advance(RunState.ENDED)
            if self._owner is not None:
                self._owner.discard(self)
            with contextlib.suppress(ValueError):
                self._engine.transport.pacer.pause_listeners.remove(self._counters.paused)
            self._outbox.close()  # what finished before a stop, in order; then the end

    async def _feed(self, send: MemoryObjectSendStream[Job]) -> None:
        async with send:
            await feed(self._documents, partial(self._admit, send=send))

    async def _admit(self, document: Document | Resume, send: MemoryObjectSendStream[Job]) -> None:
        await self._window.take()
        source = document.source if isinstance(document, Resume) else document
        job = Job(self._next_index, source, time.monotonic())
        self._next_index += 1
        self._counters.stats.queued += 1
        if self._counters.hook is not None:
            self._counters.event(BulkEvent("queued", job.index, job.source))
        if isinstance(document, Resume):
            self._resume(job, document.request_id)
            return
        await _streams.send(send, job)

    def _resume(self, job: Job, request_id: str) -> None:
        job.request_id, job.route, job.started_at = request_id, "async", job.queued_at
        job.name = name_of(job.source, job.index)
        self._counters.stats.resumed += 1
        first = self._open.get(request_id)
        if first is not None:  # the same request twice: one wait serves both
            first.followers.append(job)
            self._counters.stats.deduplicated += 1
            return
        self._open[request_id] = job
        assert self._task_group is not None
        self._task_group.start_soon(self._wait, job)

    async def _preflight(
        self, jobs: MemoryObjectReceiveStream[Job], ready: ReadyQueue[_Ready]
    ) -> None:
        """Prepare what is queued in one trip to a worker thread; pass on what is new."""
        try:
            await self._preflight_all(jobs, ready)
        finally:
            ready.done()

    async def _preflight_all(
        self, jobs: MemoryObjectReceiveStream[Job], ready: ReadyQueue[_Ready]
    ) -> None:
        async with jobs:
            while True:
                try:
                    first = await _streams.receive(jobs)
                except anyio.EndOfStream:
                    break
                batch = next_batch(first, jobs)
                now = time.monotonic()
                for job in batch:
                    job.started_at = now
                    job.name = name_of(job.source, job.index)
                outcomes = await prepare_batch(
                    batch, self._mode, self._engine.document_limits, self._pages
                )
                for job, outcome in zip(batch, outcomes, strict=True):
                    if not isinstance(outcome, PreparedDocument):
                        self._failed(job, outcome)
                    elif self._preflighted(job, outcome):
                        ready.put((job, outcome), outcome)

    def _preflighted(self, job: Job, prepared: PreparedDocument) -> bool:
        """Note a prepared document; False when an identical one in flight will serve it."""
        job.name, job.sha256 = prepared.name, prepared.sha256
        job.route, job.pages = prepared.route, prepared.pages
        self._counters.stats.preflighted += 1
        if self._counters.hook is not None:
            self._counters.event(
                BulkEvent("preflighted", job.index, job.source, route=job.route, pages=job.pages)
            )
        if self._twins.follows(job, prepared.sha256):
            self._counters.stats.deduplicated += 1
            return False
        return True

    async def _work(self, ready: ReadyQueue[_Ready]) -> None:
        while (taken := await ready.get()) is not None:
            job, prepared = taken
            try:
                await self._submit(job, prepared)
            except Exception as exc:  # noqa: BLE001 - one document's failure is its own item
                self._failed(job, exc)

    def _admit_pages(self, job: Job, prepared: PreparedDocument) -> None:
        """Count `prepared`'s pages against `max_pages`, or raise `PageBudgetError`."""
        if self._max_pages is None:
            return
        if self._budget_spent is None:
            pages = prepared.pages
            if pages is None:
                self._budget_spent = (
                    f"its page count is not known before upload, and this run may send "
                    f"at most {self._max_pages} pages (max_pages)"
                )
            elif self._pages_sent + pages > self._max_pages:
                self._budget_spent = (
                    f"{pages} more pages would take this run past {self._max_pages} pages "
                    f"(max_pages; {self._pages_sent} sent)"
                )
            else:
                self._pages_sent += pages
                return
            logger.warning("%s: %s; no more documents are sent", job.name, self._budget_spent)
            raise PageBudgetError(job.name, self._budget_spent)
        raise PageBudgetError(job.name, f"the page budget was spent ({self._budget_spent})")

    async def _submit(self, job: Job, prepared: PreparedDocument) -> None:
        with _traced(job).active():
            await self._submit_traced(job, prepared)

    async def _submit_traced(self, job: Job, prepared: PreparedDocument) -> None:
        self._admit_pages(job, prepared)
        if prepared.parts:  # its parts are sent and waited for here, in this worker
            assert self._scheduler is not None
            result = await self._engine.run_parts(
                prepared,
                send=partial(self._sender.send, job),
                wait=self._scheduler.track,
                known=partial(self._sender.known, job),
            )
            self._finish(job, result=result)
            return
        # Long work first where requests wait too (the pacer, the window): a sync
        # upload waits behind async submits and polls of its class.
        with later() if prepared.route == "sync" else contextlib.nullcontext():
            sent = await self._sender.send(job, prepared)
        if sent.result is not None:
            self._finish(job, result=sent.result)
            return
        assert self._task_group is not None
        self._task_group.start_soon(self._wait, job, sent.document)

    def _probe_key_soon(self) -> None:
        if self._task_group is not None:
            self._task_group.start_soon(self._probe_key)

    async def _probe_key(self) -> None:
        """List requests (a fast authenticated call) beside the first documents.

        A refused key stops the run at once; a valid one lets the key gate's
        wider wave go; anything else says nothing (the documents will tell).
        Once a document's answer opened the gate the probe is dropped.
        """
        async with anyio.create_task_group() as group:

            async def drop_when_open() -> None:
                await self._sender.wait_open()
                group.cancel_scope.cancel()

            group.start_soon(drop_when_open)
            try:
                if await self._engine.transport.check_key():
                    self._sender.key_valid()
            except AuthenticationError as exc:
                self._stop(exc)
            group.cancel_scope.cancel()

    def _accepted(self, job: Job) -> None:
        assert job.request_id is not None
        self._open[job.request_id] = job

    async def _wait(self, job: Job, prepared: PreparedDocument | None = None) -> None:
        """Wait for `job`'s request; failed batches are repaired from `prepared`'s pages.

        A resumed request has no `prepared`: its document is prepared when a
        batch failed, and the request waited for again (its results are kept
        at the service), now with the pages to repair from.
        """
        assert self._scheduler is not None
        assert job.request_id is not None
        with _traced(job).active():
            await self._wait_traced(job, prepared)

    async def _wait_traced(self, job: Job, prepared: PreparedDocument | None) -> None:
        assert self._scheduler is not None
        assert job.request_id is not None
        finish = partial(
            self._engine.finish,
            request_id=job.request_id,
            send=partial(self._sender.send, job),
            wait=self._scheduler.track,
            known=partial(self._sender.known, job),
        )
        try:
            try:
                result = await finish(prepared)
            except BatchFailedError as exc:
                if prepared is not None or not exc.failed_ranges:
                    raise
                again = await self._engine.prepare(job.source, mode="async")
                if again.sha256 != job.sha256 and job.sha256 is not None:
                    raise
                result = await finish(again)
        except Exception as exc:  # noqa: BLE001 - one request's failure is its own item
            self._failed(job, exc)
        else:
            self._finish(job, result=result)

    def _progress(self, progress: Progress) -> None:
        if not self._going or progress.done:
            return
        job = self._open.get(progress.request_id)
        if job is None:
            return
        self._counters.event(
            BulkEvent(
                "pages",
                job.index,
                job.source,
                request_id=progress.request_id,
                route="async",
                pages_total=progress.total_pages,
                pages_completed=progress.completed_pages,
                pages_downloaded=progress.downloaded_pages,
            )
        )

    # ------------------------------------------------------------------ endings

    def _failed(self, job: Job, exc: Exception) -> None:
        if isinstance(exc, RunStopped):
            self._stop(exc.error)
            return
        if self._is_fatal(exc):
            if self._engine.transport.closed and not isinstance(exc, UpstageOCRError):
                exc = RuntimeError("the client was closed while this bulk run was going")
            _end_trace(job, exc)
            self._stop(exc)
            return
        if isinstance(exc, UpstageOCRError):
            error = exc
        elif isinstance(exc, TypeError):  # not a document at all (preflight says which)
            error = DocumentError(job.name, str(exc))
            error.__cause__ = exc
        else:
            logger.error("%s: unexpected error", job.name, exc_info=exc)
            error = UpstageOCRError(f"{job.name}: unexpected error: {exc!r}")
            error.__cause__ = exc
        self._finish(job, error=error)

    def _finish(
        self,
        job: Job,
        *,
        result: OCRResult | None = None,
        error: UpstageOCRError | None = None,
    ) -> None:
        self._twins.finished(job)
        _end_trace(job, error, result)
        item = BulkItem(
            source=job.source,
            index=job.index,
            result=result,
            error=error,
            request_id=job.request_id,
            route=job.route,
            pages=result.num_pages if result is not None else job.pages,
            sha256=job.sha256,
            queued_at=job.queued_at,
            started_at=job.started_at,
            finished_at=time.monotonic(),
        )
        self._deliver(item)
        for follower in job.followers:
            self._deliver(
                dataclasses.replace(
                    item,
                    source=follower.source,
                    index=follower.index,
                    duplicate_of=job.index,
                    queued_at=follower.queued_at,
                    started_at=follower.started_at,
                )
            )
        job.followers.clear()

    def _deliver(self, item: BulkItem) -> None:
        self._counters.delivered(item)
        self._outbox.put(item)


def _traced(job: Job) -> telemetry.Document:
    """`job`'s document span, begun the first time it is sent or waited for."""
    if job.trace is None:
        job.trace = telemetry.Document(job.name)
    return job.trace


def _end_trace(job: Job, error: BaseException | None, result: OCRResult | None = None) -> None:
    trace = job.trace
    if trace is None:
        return
    trace.request_id = job.request_id
    trace.route = job.route
    trace.pages = result.num_pages if result is not None else job.pages
    trace.end(error)
