"""Bulk runs: thousands of documents at the pace the service allows, as each finishes.

```python
async with client.ocr_many(paths, ordered=False, on_event=show) as run:
    async for item in run:            # a BulkItem: source, result or error, request_id
        ...
print(run.stats, run.open_requests)   # counters; requests not yet handed over
```

One pipeline task owns everything a run starts (a task group inside one
`PollScheduler`); the iterator only reads finished items from a memory
stream, so nothing yields from inside a task group. The end of the items, an
error, a cancellation, `async with` and `aclose()` stop that task and wait for
it; a `break` out of a bare loop drops the iterator, which stops it at once
(and the client's `aclose()` waits for it): no task, connection or open file
outlives the run.

```
input --> feeder --jobs--> preflight (2-4 tasks) --ready--> submit (max_open_documents tasks)
          (window)         up to 8 per worker-thread        sync: the answer is the result
                           trip; identical files wait       async: PollScheduler.track,
                           for the first one                one waiting task per request
      --> items (reordered when `ordered`) --> your loop
```

Bounds, whatever the number of inputs:
- `max_pending` documents are taken from the input and not yet handed to you
  (waiting, being prepared or sent, open at the service, or finished and not
  yet taken, the reorder buffer of `ordered=True` included): a slow consumer
  holds the input back;
- `Limits.max_open_documents` documents are being sent at once, and at most
  a few batches of 8 are being prepared (one file open per preflight thread);
- every HTTP request passes the client's one concurrency limit and one pacer
  (RPS, PPM, `Retry-After` pauses, or the pace found from 429s), polls included;
  the one `PollScheduler` polls every open request from a timer heap.

A failure that every document would meet the same way (a refused key, no
credit left, a closed client, a journal hook that failed) stops the run: the
iterator hands out what had finished, then raises that one error, and
`open_requests` lists what was submitted and not handed over. Until one
submit has shown that the key works, documents are sent one at a time, so a
wrong key costs one request, not thousands.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Literal, TypeAlias, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._engine import Engine
from ._exceptions import (
    AuthenticationError,
    ConfigurationError,
    DocumentError,
    LinkExpiredError,
    PermissionDeniedError,
    RateLimitError,
    UpstageOCRError,
)
from ._models import OCRResult
from ._poller import PollScheduler, Progress
from ._preflight import Document, Mode, PreparedDocument, Route, prepare
from ._retry import RetryEvent
from ._transport import Transport

__all__ = [
    "BulkEvent",
    "BulkItem",
    "BulkRun",
    "BulkStats",
    "EventKind",
    "Resume",
    "Submission",
    "SubmitHook",
]

logger = logging.getLogger("aioupstage_ocr")

_T = TypeVar("_T")

#: Documents taken and not yet handed over, by default (see `BulkRun`).
DEFAULT_MAX_PENDING = 256
# A plain iterable is read in a worker thread, up to this many items, or for
# this long, per trip (a directory walk or stdin never blocks the event loop).
_PULL_ITEMS = 64
_PULL_SECONDS = 0.05
# Preflight prepares up to this many queued documents per trip to a worker
# thread: a trip costs more CPU than preparing a small image.
_PREFLIGHT_BATCH = 8


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True, slots=True)
class Resume:
    """An input that already has a request id at the service: polled, never submitted again.

    `source` is what the item will carry (the document's path, usually), e.g.
    from `run.open_requests` of a run that stopped, or from a resume journal.
    """

    source: Document
    request_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, str) or not self.request_id.strip():
            raise ValueError(f"Resume needs a non-empty request id, got {self.request_id!r}")


@dataclass(frozen=True, slots=True)
class Submission:
    """A document about to be sent (`request_id` None) or just accepted, for journal hooks.

    `name` is how messages name it (the path as given); `route` the endpoint.
    """

    source: Document
    index: int
    name: str
    sha256: str
    size: int
    pages: int | None
    route: Route
    request_id: str | None = None


#: `before_submit` and `after_submit`: awaited in the document's own worker.
SubmitHook: TypeAlias = Callable[[Submission], Awaitable[None]]


@dataclass(frozen=True, slots=True, repr=False)
class BulkItem:
    """One input's outcome: a `result` or an `error`, never both.

    - `index`: its place in the input (from 0); `source`: the input as given.
    - `mode`: the endpoint that produced it (`"sync"`/`"async"`; None if never sent).
    - `request_id`: the async request (also on a failed wait: fetch it later with
      `client.wait`); `duplicate_of`: the index of the identical document whose
      result (or error) this one shares.
    - times in seconds on the monotonic clock: `queued_at` (taken from the
      input), `started_at` (work began; None if it never did), `finished_at`.
    """

    source: Document
    index: int
    result: OCRResult | None = None
    error: UpstageOCRError | None = None
    request_id: str | None = None
    mode: Route | None = None
    pages: int | None = None
    sha256: str | None = None
    duplicate_of: int | None = None
    queued_at: float = 0.0
    started_at: float | None = None
    finished_at: float = 0.0

    @property
    def ok(self) -> bool:
        """True when there is a result."""
        return self.error is None

    @property
    def elapsed(self) -> float:
        """Seconds from being taken from the input to finishing."""
        return self.finished_at - self.queued_at

    @property
    def duration(self) -> float:
        """Seconds from work beginning to finishing (0 if work never began)."""
        return 0.0 if self.started_at is None else self.finished_at - self.started_at

    def __repr__(self) -> str:
        outcome = f"{self.pages} pages" if self.ok else f"error={self.error!r}"
        rid = f" request_id={self.request_id!r}" if self.request_id else ""
        return f"<BulkItem #{self.index} {_shown(self.source)} {self.mode} {outcome}{rid}>"


EventKind: TypeAlias = Literal[
    "queued", "preflighted", "submitted", "pages", "finished", "failed", "retrying", "paused"
]


@dataclass(frozen=True, slots=True, repr=False)
class BulkEvent:
    """Something that happened in a bulk run, for progress displays.

    - `queued`: a document was taken from the input (`index`, `source`).
    - `preflighted`: it passed preflight (`route`, `pages`).
    - `submitted`: it was sent (`route`; `request_id` once an async one is accepted).
    - `pages`: an async request moved (`pages_total`, `pages_completed` by the
      service, `pages_downloaded`).
    - `finished` / `failed`: its `item` is ready (yielded when the loop gets to it).
    - `retrying`: a request is tried again (`attempt` failed with `error`;
      waiting `wait` s); `index` is None for polls and downloads.
    - `paused`: the server's `Retry-After` holds every sender for `wait` s.
    """

    kind: EventKind
    index: int | None = None
    source: Document | None = None
    request_id: str | None = None
    route: Route | None = None
    pages: int | None = None
    pages_total: int | None = None
    pages_completed: int | None = None
    pages_downloaded: int | None = None
    item: BulkItem | None = None
    error: BaseException | None = None
    attempt: int | None = None
    wait: float | None = None

    def __repr__(self) -> str:
        fields = [
            f"{f.name}={value!r}"
            for f in dataclasses.fields(self)[1:]
            if (value := getattr(self, f.name)) is not None and f.name != "source"
        ]
        if self.source is not None:
            fields.insert(1, f"source={_shown(self.source)}")
        return f"<BulkEvent {self.kind} {' '.join(fields)}>"


@dataclass(slots=True)
class BulkStats:
    """A bulk run's counters (a snapshot, from `run.stats`).

    `queued` documents were taken from the input; each one ends `succeeded` or
    `failed` (`deduplicated` of them took an identical document's outcome, and
    `resumed` ones were polled from an earlier request id); `yielded` were handed
    to the loop. `submitted_sync`/`submitted_async` count documents sent (a sync
    time-out that went async counts in both). `pages` are the pages of the
    documents that succeeded. `retries` (`rate_limited` of them after a 429)
    and `pauses` (`paused_seconds` in all) are this run's share of the
    client's. `pending` and `open_requests` are as of the snapshot;
    `elapsed` is seconds since the run started.
    """

    queued: int = 0
    preflighted: int = 0
    submitted_sync: int = 0
    submitted_async: int = 0
    resumed: int = 0
    deduplicated: int = 0
    succeeded: int = 0
    failed: int = 0
    yielded: int = 0
    pages: int = 0
    retries: int = 0
    rate_limited: int = 0
    pauses: int = 0
    paused_seconds: float = 0.0
    pending: int = 0
    open_requests: int = 0
    elapsed: float = 0.0

    @property
    def finished(self) -> int:
        """Documents with an outcome (`succeeded + failed`)."""
        return self.succeeded + self.failed


# --------------------------------------------------------------------------- internals


def _shown(source: object) -> str:
    """A short name for a source (never a document's bytes)."""
    if isinstance(source, str | os.PathLike):
        return repr(os.fspath(source))
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    name = getattr(source, "name", None)
    return repr(name) if isinstance(name, str) else f"<{type(source).__name__}>"


class _RunStopped(Exception):  # noqa: N818 - internal carrier, never raised to a caller
    """Carries an error that ends the whole run (a hook failed)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


@dataclass(slots=True, eq=False)
class _Job:
    index: int
    source: Document
    queued_at: float
    name: str = ""
    started_at: float | None = None
    sha256: str | None = None
    route: Route | None = None
    pages: int | None = None
    request_id: str | None = None
    followers: list[_Job] = field(default_factory=list)


_Ready: TypeAlias = tuple[_Job, PreparedDocument]


def _pull(iterator: Iterator[_T], limit: int, seconds: float) -> tuple[list[_T], bool]:
    """Up to `limit` items, or what came in `seconds`; True when the iterator is done."""
    items: list[_T] = []
    deadline = time.monotonic() + seconds
    for item in iterator:
        items.append(item)
        if len(items) >= limit or time.monotonic() >= deadline:
            return items, False
    return items, True


# --------------------------------------------------------------------------- the run


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
    - `before_submit`: awaited with a `Submission` right before each document is
      sent; `after_submit` once an async request id is known. A hook that
      raises stops the run with its error (a journal that cannot record a
      request must not let it be sent).

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
        self._transport: Transport = engine.transport
        self._owner = owner  # the client's runs: in it while going, so `aclose` stops it
        self._documents = documents
        self._mode: Mode = mode
        self._ordered = ordered
        self._schema = schema
        self._max_pending = max_pending or DEFAULT_MAX_PENDING
        self._workers = engine.limits.max_open_documents
        # Preflight tasks; each takes whatever is queued, up to _PREFLIGHT_BATCH.
        self._preflighters = max(2, min(4, -(-self._workers // _PREFLIGHT_BATCH)))
        # A full window refills by this many at once, so preflight finds batches.
        self._refill = max(1, min(_PREFLIGHT_BATCH, self._max_pending // 4))
        self._on_event = on_event
        self._before_submit = before_submit
        self._after_submit = after_submit

        self._stats = BulkStats()
        self._started_at: float | None = None
        self._open: dict[str, _Job] = {}  # request id -> first job, until its item is taken
        self._by_hash: dict[str, _Job] = {}  # sha256 -> the job in flight for it
        self._reorder: dict[int, BulkItem] = {}
        self._next_out = 0
        self._next_index = 0
        self._error: BaseException | None = None
        self._stopping = False
        self._iterated = False
        self._closed = False
        self._gate = anyio.Event()  # set once a submit showed that the key works
        self._gate_open = False
        self._probe_taken = False

        self._task: asyncio.Task[None] | None = None
        self._scope: anyio.CancelScope | None = None
        self._task_group: TaskGroup | None = None
        self._scheduler: PollScheduler | None = None
        self._free = self._max_pending  # window slots: documents that may still be taken
        self._room: anyio.Event | None = None  # set when the window has `_refill` free
        self._out_send: MemoryObjectSendStream[BulkItem] | None = None
        self._out_receive: MemoryObjectReceiveStream[BulkItem] | None = None

    def __repr__(self) -> str:
        s = self._stats
        state = "closed" if self._closed else "running" if self._task else "not started"
        return (
            f"<BulkRun {state}: {s.queued} queued, {s.succeeded} succeeded, {s.failed} failed, "
            f"{len(self._open)} open requests>"
        )

    # ------------------------------------------------------------------ public

    @property
    def stats(self) -> BulkStats:
        """A snapshot of the counters."""
        snapshot = dataclasses.replace(self._stats)
        snapshot.pending = self._stats.queued - self._stats.yielded
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
        if self._iterated:
            raise RuntimeError("a bulk run is iterated once")
        self._iterated = True
        return _Items(self, self._start())

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
        self._closed = True
        await self.stop()
        if self._out_receive is not None:
            self._out_receive.close()

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

    # ------------------------------------------------------------------ the loop's side

    def _start(self) -> MemoryObjectReceiveStream[BulkItem]:
        if self._closed:
            raise RuntimeError("this bulk run was closed before it started")
        self._out_send, self._out_receive = anyio.create_memory_object_stream[BulkItem](math.inf)
        self._started_at = time.monotonic()
        if self._owner is not None:
            self._owner.add(self)
        self._transport.pacer.pause_listeners.append(self._paused)
        self._task = asyncio.get_running_loop().create_task(
            self._pipeline(), name="aioupstage-ocr bulk run"
        )
        return self._out_receive

    def _taken(self, item: BulkItem) -> None:
        self._free += 1
        if self._room is not None and self._free >= self._refill:
            self._room.set()
            self._room = None
        self._stats.yielded += 1
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
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()
        elif self._task is not None:
            self._task.cancel()

    # ------------------------------------------------------------------ the pipeline

    async def _pipeline(self) -> None:
        assert self._out_send is not None
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._stopping:
                    scope.cancel()
                async with (
                    self._engine.scheduler(
                        on_progress=self._progress if self._on_event is not None else None,
                        on_retry=partial(self._retrying, None),
                    ) as scheduler,
                    anyio.create_task_group() as group,
                ):
                    self._scheduler, self._task_group = scheduler, group
                    jobs_send, jobs = anyio.create_memory_object_stream[_Job](
                        self._preflighters * _PREFLIGHT_BATCH
                    )
                    ready_send, ready = anyio.create_memory_object_stream[_Ready](0)
                    async with jobs, ready, ready_send:
                        for _ in range(self._preflighters):
                            group.start_soon(self._preflight, jobs.clone(), ready_send.clone())
                        for _ in range(self._workers):
                            group.start_soon(self._work, ready.clone())
                    group.start_soon(self._feed, jobs_send)
        except Exception as exc:  # noqa: BLE001 - the input's own error, or a bug: the loop raises it
            self._stopping = True
            if self._error is None:
                self._error = _single(exc)
        finally:
            self._stopping = True
            if self._owner is not None:
                self._owner.discard(self)
            with contextlib.suppress(ValueError):
                self._transport.pacer.pause_listeners.remove(self._paused)
            for index in sorted(self._reorder):  # what finished before a stop, in order
                self._send(self._reorder.pop(index))
            self._out_send.close()

    def _stop(self, error: BaseException) -> None:
        """End the run with `error`, raised by the loop once it has what finished."""
        if self._error is None:
            self._error = error
            error.add_note(
                f"the bulk run stopped: {self._stats.finished} of "
                f"{self._stats.queued} documents taken had finished; {len(self._open)} "
                "submitted request(s) are in run.open_requests"
            )
        self._stopping = True
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    def _is_fatal(self, exc: BaseException) -> bool:
        """Whether `exc` would hit every document the same way."""
        if isinstance(exc, AuthenticationError | ConfigurationError | _RunStopped):
            return True
        if isinstance(exc, PermissionDeniedError):  # no credit; not a storage link's 403
            return not isinstance(exc, LinkExpiredError)
        return self._transport.closed

    # ------------------------------------------------------------------ feeding

    async def _feed(self, send: MemoryObjectSendStream[_Job]) -> None:
        async with send:
            documents = self._documents
            if isinstance(documents, AsyncIterable):
                async for document in documents:
                    await self._admit(document, send)
            elif isinstance(documents, SequenceABC):
                for document in documents:
                    await self._admit(document, send)
            else:
                iterator = iter(documents)
                done = False
                while not done:
                    items, done = await anyio.to_thread.run_sync(
                        _pull, iterator, _PULL_ITEMS, _PULL_SECONDS, abandon_on_cancel=True
                    )
                    for document in items:
                        await self._admit(document, send)

    async def _admit(self, document: Document | Resume, send: MemoryObjectSendStream[_Job]) -> None:
        if self._free < 1:  # full: wait for room for a few, so preflight gets batches
            # Algorithm: a counting window ("at most N at once"), refilled in small chunks.
            self._room = room = anyio.Event()
            await room.wait()
        self._free -= 1
        source = document.source if isinstance(document, Resume) else document
        job = _Job(self._next_index, source, time.monotonic())
        self._next_index += 1
        self._stats.queued += 1
        if self._on_event is not None:
            self._event(BulkEvent("queued", job.index, job.source))
        if isinstance(document, Resume):
            self._resume(job, document.request_id)
            return
        await send.send(job)

    def _resume(self, job: _Job, request_id: str) -> None:
        job.request_id, job.route, job.started_at = request_id, "async", job.queued_at
        job.name = _name(job.source, job.index)
        self._stats.resumed += 1
        first = self._open.get(request_id)
        if first is not None:  # the same request twice: one wait serves both
            first.followers.append(job)
            self._stats.deduplicated += 1
            return
        self._open[request_id] = job
        assert self._task_group is not None
        self._task_group.start_soon(self._wait, job)

    # ------------------------------------------------------------------ working

    async def _preflight(
        self, jobs: MemoryObjectReceiveStream[_Job], ready: MemoryObjectSendStream[_Ready]
    ) -> None:
        """Prepare what is queued in one trip to a worker thread; pass on what is new."""
        async with jobs, ready:
            async for first in jobs:
                batch = [first]
                while len(batch) < _PREFLIGHT_BATCH:
                    try:
                        batch.append(jobs.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                now = time.monotonic()
                for job in batch:
                    job.started_at = now
                    job.name = _name(job.source, job.index)
                outcomes = await anyio.to_thread.run_sync(self._prepare_all, batch)
                for job, outcome in zip(batch, outcomes, strict=True):
                    if not isinstance(outcome, PreparedDocument):
                        self._failed(job, outcome)
                    elif self._preflighted(job, outcome):
                        await ready.send((job, outcome))

    def _prepare_all(self, batch: list[_Job]) -> list[PreparedDocument | Exception]:
        """`prepare` each document (blocking: runs in a worker thread)."""
        limits, mode = self._engine.document_limits, self._mode
        outcomes: list[PreparedDocument | Exception] = []
        for job in batch:
            source = job.source
            named = isinstance(source, str | os.PathLike) or isinstance(
                getattr(source, "name", None), str
            )
            try:
                outcomes.append(
                    prepare(source, filename=None if named else job.name, mode=mode, limits=limits)
                )
            except Exception as exc:  # noqa: BLE001 - each document's error is its own item
                outcomes.append(exc)
        return outcomes

    def _preflighted(self, job: _Job, prepared: PreparedDocument) -> bool:
        """Note a prepared document; False when an identical one in flight will serve it."""
        job.name, job.sha256, job.route, job.pages = (
            prepared.name,
            prepared.sha256,
            prepared.route,
            prepared.pages,
        )
        self._stats.preflighted += 1
        if self._on_event is not None:
            self._event(
                BulkEvent(
                    "preflighted",
                    job.index,
                    job.source,
                    route=prepared.route,
                    pages=prepared.pages,
                )
            )
        first = self._by_hash.get(prepared.sha256)
        if first is not None:
            first.followers.append(job)
            self._stats.deduplicated += 1
            return False
        self._by_hash[prepared.sha256] = job
        return True

    async def _work(self, ready: MemoryObjectReceiveStream[_Ready]) -> None:
        async with ready:
            async for job, prepared in ready:
                try:
                    await self._submit(job, prepared)
                except Exception as exc:  # noqa: BLE001 - one document's failure is its own item
                    self._failed(job, exc)

    async def _submit(self, job: _Job, prepared: PreparedDocument) -> None:
        """Send a prepared document through the engine's one routing path."""
        source = job.source

        async def before_send(document: PreparedDocument) -> None:
            job.route = document.route
            await self._hook(self._before_submit, job, document, None)
            if document.route == "sync":
                self._stats.submitted_sync += 1
                if self._on_event is not None:
                    self._event(BulkEvent("submitted", job.index, source, route="sync"))

        probe = await self._pass_gate()
        try:
            sent = await self._engine.send(
                prepared,
                mode=self._mode,
                schema=self._schema,
                before_send=before_send,
                on_retry=partial(self._retrying, job),
            )
        except Exception as exc:
            if probe and not self._is_fatal(exc):
                self._open_gate(probe)
            raise
        self._open_gate(probe)
        if sent.result is not None:
            self._finish(job, result=sent.result)
            return
        prepared, request_id = sent.document, sent.request_id
        assert request_id is not None
        job.request_id = request_id
        self._open[request_id] = job
        self._stats.submitted_async += 1
        await self._hook(self._after_submit, job, prepared, request_id)
        if self._on_event is not None:
            self._event(
                BulkEvent("submitted", job.index, source, request_id=request_id, route="async")
            )
        assert self._task_group is not None
        self._task_group.start_soon(self._wait, job)

    async def _pass_gate(self) -> bool:
        """Wait until the key is known to work; True for the one document sent to find out."""
        if self._gate_open:
            return False
        if not self._probe_taken:
            self._probe_taken = True
            return True
        await self._gate.wait()
        return False

    def _open_gate(self, probe: bool) -> None:
        if probe and not self._gate_open:
            self._gate_open = True
            self._gate.set()

    async def _hook(
        self,
        hook: SubmitHook | None,
        job: _Job,
        prepared: PreparedDocument,
        request_id: str | None,
    ) -> None:
        if hook is None:
            return
        submission = Submission(
            source=job.source,
            index=job.index,
            name=prepared.name,
            sha256=prepared.sha256,
            size=prepared.size,
            pages=prepared.pages,
            route=prepared.route,
            request_id=request_id,
        )
        try:
            await hook(submission)
        except Exception as exc:  # noqa: BLE001 - whatever the hook raised stops the run
            which = "before_submit" if request_id is None else "after_submit"
            exc.add_note(f"the {which} hook failed for {prepared.name}")
            raise _RunStopped(exc) from None

    async def _wait(self, job: _Job) -> None:
        assert self._scheduler is not None
        assert job.request_id is not None
        try:
            result = await self._scheduler.track(job.request_id)
        except Exception as exc:  # noqa: BLE001 - one request's failure is its own item
            self._failed(job, exc)
        else:
            self._finish(job, result=result)

    def _progress(self, progress: Progress) -> None:
        if self._stopping or progress.done:
            return
        job = self._open.get(progress.request_id)
        if job is None:
            return
        self._event(
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

    def _failed(self, job: _Job, exc: Exception) -> None:
        if isinstance(exc, _RunStopped):
            self._stop(exc.error)
            return
        if self._is_fatal(exc):
            if self._transport.closed and not isinstance(exc, UpstageOCRError):
                exc = RuntimeError("the client was closed while this bulk run was going")
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
        job: _Job,
        *,
        result: OCRResult | None = None,
        error: UpstageOCRError | None = None,
    ) -> None:
        now = time.monotonic()
        if job.sha256 is not None and self._by_hash.get(job.sha256) is job:
            del self._by_hash[job.sha256]
        pages = result.num_pages if result is not None else job.pages
        item = BulkItem(
            source=job.source,
            index=job.index,
            result=result,
            error=error,
            request_id=job.request_id,
            mode=job.route,
            pages=pages,
            sha256=job.sha256,
            queued_at=job.queued_at,
            started_at=job.started_at,
            finished_at=now,
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
        stats = self._stats
        if item.error is None:
            stats.succeeded += 1
            stats.pages += item.pages or 0
        else:
            stats.failed += 1
        if self._on_event is not None:
            self._event(
                BulkEvent(
                    "finished" if item.error is None else "failed",
                    item.index,
                    item.source,
                    request_id=item.request_id,
                    route=item.mode,
                    pages=item.pages,
                    item=item,
                    error=item.error,
                )
            )
        if not self._ordered:
            self._send(item)
            return
        self._reorder[item.index] = item
        while self._next_out in self._reorder:
            self._send(self._reorder.pop(self._next_out))
            self._next_out += 1

    def _send(self, item: BulkItem) -> None:
        assert self._out_send is not None
        # Refused only once the loop has left and the run is being closed.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._out_send.send_nowait(item)

    # ------------------------------------------------------------------ events

    def _event(self, event: BulkEvent) -> None:
        hook = self._on_event
        if hook is None:
            return
        try:
            hook(event)
        except Exception:
            logger.exception("the on_event hook of a bulk run failed on %r", event)

    def _retrying(self, job: _Job | None, event: RetryEvent) -> None:
        self._stats.retries += 1
        if isinstance(event.exception, RateLimitError):
            self._stats.rate_limited += 1
        if self._on_event is None:
            return
        request_id = getattr(event.exception, "request_id", None)
        self._event(
            BulkEvent(
                "retrying",
                job.index if job is not None else None,
                job.source if job is not None else None,
                request_id=request_id or (job.request_id if job is not None else None),
                error=event.exception,
                attempt=event.attempt,
                wait=event.wait,
            )
        )

    def _paused(self, seconds: float) -> None:
        self._stats.pauses += 1
        self._stats.paused_seconds += seconds
        if self._on_event is not None:
            self._event(BulkEvent("paused", wait=seconds))


class _Items(AsyncIterator[BulkItem]):
    """The loop's side of a run: reads finished items; the end, an error or a drop ends the run.

    A plain object rather than an async generator: when the loop leaves
    (`break`, an exception) and drops it, `__del__` stops the pipeline at once,
    with no finalizer task left to run; `async with` and `aclose()` also wait
    for the end.
    """

    __slots__ = ("_done", "_receive", "_run")

    def __init__(self, run: BulkRun, receive: MemoryObjectReceiveStream[BulkItem]) -> None:
        self._run = run
        self._receive = receive
        self._done = False

    def __aiter__(self) -> _Items:
        return self

    async def __anext__(self) -> BulkItem:
        if self._done:
            raise StopAsyncIteration
        ended = False
        try:
            item = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            ended = True
        except BaseException:  # cancelled while waiting: end the run before leaving
            await self._close()
            raise
        if ended:
            await self._close()
            if self._run._error is not None:
                raise self._run._error
            raise StopAsyncIteration
        self._run._taken(item)
        return item

    async def _close(self) -> None:
        self._done = True
        with anyio.CancelScope(shield=True):
            await self._run.aclose()

    def __del__(self) -> None:
        if not self._done:
            self._done = True
            self._run._abandon()
            self._receive.close()


def _name(source: object, index: int) -> str:
    """How messages name a source: its path, its file object's name, else `input-<index>`."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else f"input-{index}"


def _single(exc: Exception) -> Exception:
    """The one error inside (possibly nested) single-member exception groups."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        inner = exc.exceptions[0]
        if not isinstance(inner, Exception):
            break
        exc = inner
    return exc
