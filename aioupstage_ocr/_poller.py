"""Waiting for async requests: one scheduler polls them all, downloads batches as they finish.

```python
async with PollScheduler(transport, polling, limits) as scheduler:
    result = await scheduler.track(request_id)   # many at once, from many tasks
```

One loop keeps a timer heap of the next poll of every tracked request (not a
sleeping task each); the polls that fall due run as tasks, at most
`Limits.max_polls` at once. Per request, the wait starts at
`Polling.initial`, grows by `Polling.factor` after a poll that saw no
progress, up to `Polling.maximum`, jittered by `Polling.jitter`, and drops back
to `initial` when progress moves.

Each status starts the download of every newly completed batch at once, while
the others still run. A download refused with 403 (an expired link) marks its
batch stale and asks for one status re-fetch for the request, shared by all
its batches waiting on a link; the fresh links then go out again. A request
that failed with no batch failed or completed (over a limit) ends the wait
with the service's `failure_message`. When batches failed (the request then
ends `failed`, or `completed`), the completed ones are still downloaded,
and the wait ends with a `BatchFailedError` that carries them and the failed
ranges (`completed`, `failed_ranges`), so only the failed pages need sending
again. When every batch is in, `merge_batches` checks coverage and joins them.

Many requests open at once are answered by the request list (`GET .../requests`,
one call) instead of one status fetch each. The list says only each request's
`status` (no batches, no links), so it is read for which requests ended: an
entry `completed` or `failed` gets one status fetch at once for its batches and
links; one still running waits for the next list. A request missing from the
list (the list may be cut short, or not show it yet) gets its status fetched as
before, and after `_MAX_UNLISTED` misses in a row is polled on its own from then
on; a list that fails is followed by status fetches for the requests that were
due; a list the service does not serve (400/403/404/405/501, or a body that
does not parse) turns listing off for this scheduler. One open request, a
request whose links are due (missing, expired) and one whose batches have all
ended are polled on their own. Algorithm: the list has one backoff of its own
(`Polling.initial`, times `factor` after a list where no tracked request
changed status, up to `maximum`, back to `initial` when one did or a new
request is tracked), so its cost is one request per interval however many are
open. A list call is a request like any other: it takes a poll slot, the
concurrency window and the pacer. Batches finished while their request still
runs are downloaded when it ends, not before (the list does not show them).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Literal

import anyio
from anyio.abc import TaskGroup

from . import _priority as priority
from ._config import DEFAULT_LIMITS, DEFAULT_POLLING, Limits, Polling
from ._exceptions import (
    APIStatusError,
    BatchFailedError,
    LinkExpiredError,
    RequestFailedError,
    ResponseValidationError,
)
from ._models import (
    BatchStatus,
    OCRResult,
    RequestStatus,
    Status,
    merge_batches,
    parse_request_list,
    parse_request_status,
    parse_result,
)
from ._transport import RetryHook, Transport

__all__ = ["PollScheduler", "Progress", "ProgressHook"]

logger = logging.getLogger("aioupstage_ocr")

#: How many times one batch may get a fresh link after a 403 before the 403 is raised.
MAX_LINK_REFRESHES = 5
#: Open requests from which one list call answers them instead of a status fetch each.
_LIST_MIN = 2
#: Lists in a row a request may be missing from before it is polled on its own.
_MAX_UNLISTED = 2
#: The list's statuses after which a request's batches are fetched (with one status).
_ENDED = frozenset({Status.COMPLETED.value, Status.FAILED.value})
#: Requests waiting for the rate limit (`Pacer.queued`) from which a due list waits
#: with them (`_held_back`).
_BUSY_PACER = 2
#: Seconds between looks at the pacer while a list is held back.
_BUSY_RECHECK = 0.25
#: HTTP statuses that say the service does not serve the list (to this key): stop asking.
_NO_LIST_STATUSES = frozenset({400, 403, 404, 405, 501})


@dataclass(frozen=True, slots=True)
class Progress:
    """Where one tracked request stands.

    `completed_pages` is the service's count; `downloaded_pages` the pages whose
    results are in hand; `done` is True on the last report (result or error).
    """

    request_id: str
    status: str
    total_pages: int | None
    completed_pages: int
    downloaded_pages: int
    done: bool = False


ProgressHook = Callable[[Progress], None]


def _is_over(status: RequestStatus) -> bool:
    """No batch will change any more: the request ended, or every batch did."""
    if status.is_done:
        return True
    return bool(status.batches) and all(b.is_completed or b.is_failed for b in status.batches)


def _failure(status: RequestStatus, failed: list[BatchStatus]) -> RequestFailedError:
    """The error for a request whose `failed` batches did not come back (the first one's)."""
    if not failed:
        return RequestFailedError(status.id, status.failure_message)
    first = min(failed, key=lambda b: b.start_page)
    return BatchFailedError(
        status.id,
        first.failure_message or status.failure_message,
        batch_id=first.id,
        start_page=first.start_page,
        end_page=first.end_page,
    )


class _Abandoned(Exception):  # noqa: N818 - internal marker, never raised to a caller
    """Every caller waiting for this request left (cancelled)."""


_BatchState = Literal["waiting", "downloading", "stale", "done"]


@dataclass(slots=True, eq=False)
class _Batch:
    batch_id: int
    start_page: int
    end_page: int
    state: _BatchState = "waiting"
    url: str | None = field(default=None, repr=False)
    url_seq: int = 0  # which status (by count) the link came from
    refreshes: int = 0
    result: OCRResult | None = None


@dataclass(slots=True, eq=False)
class _Tracked:
    request_id: str
    interval: float
    order: int = 0  # when tracking began, for the queue estimate
    hooks: list[ProgressHook] = field(default_factory=list)
    waiters: int = 0
    generation: int = 0  # bumps on each (re)schedule; older heap entries are skipped
    polling: bool = False
    refresh_wanted: bool = False
    status_seq: int = 0
    last: RequestStatus | None = None
    listed: str | None = None  # the request's status as last seen (list or status fetch)
    unlisted: int = 0  # lists in a row that did not show it
    single_next: bool = False  # its next poll is a status fetch, whatever is open
    handler: bool = False  # a request handler waits for it (not only a bulk run)
    progress_key: tuple[object, ...] = ()
    batches: dict[tuple[int, int], _Batch] = field(default_factory=dict)
    scopes: set[anyio.CancelScope] = field(default_factory=set)
    done: anyio.Event = field(default_factory=anyio.Event)
    finished: bool = False
    result: OCRResult | None = None
    error: BaseException | None = None

    @property
    def downloaded_pages(self) -> int:
        return sum(
            b.end_page - b.start_page + 1 for b in self.batches.values() if b.state == "done"
        )


#: Seconds of completions the pace estimate looks back over, and the least it needs.
_PACE_WINDOW = 30.0
_PACE_MIN_SPAN = 2.0
#: The share of the estimate waited before the next poll: early rather than late.
_ETA_SHARE = 0.6


def _is_due(tracked: _Tracked, generation: int) -> bool:
    """Whether a heap entry still stands: its request open, not rescheduled, not polling."""
    return not tracked.finished and generation == tracked.generation and not tracked.polling


class PollScheduler:
    """Tracks many async request ids at once, until each is merged or has failed.

    `on_progress` hears every tracked request's `Progress` (after each status
    and each finished download); `track` takes a hook for one request too.
    `on_retry` hears each retry of this scheduler's polls and downloads.
    Leaving the `async with` block cancels every poll and download still
    running; `track` calls still waiting then raise `RuntimeError`.
    """

    def __init__(
        self,
        transport: Transport,
        polling: Polling = DEFAULT_POLLING,
        limits: Limits = DEFAULT_LIMITS,
        *,
        on_progress: ProgressHook | None = None,
        on_retry: RetryHook | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._transport = transport
        self._on_retry = on_retry
        self._polling = polling
        self._on_progress = on_progress
        self._rng = rng if rng is not None else random.Random()
        # Algorithm: semaphore ("at most N at once") for the status fetches in flight.
        self._poll_slots = anyio.Semaphore(limits.max_polls)
        self._heap: list[tuple[float, int, int, _Tracked]] = []
        self._counter = itertools.count()
        self._tracked: dict[str, _Tracked] = {}
        self._order = itertools.count()
        # (time, pages) each status showed completed since the last one: the pace
        # at which the service gets through this scheduler's requests.
        self._completions: collections.deque[tuple[float, int]] = collections.deque()
        # The request list: whether to use it, who waits for the next one, its backoff.
        self._listing = True
        self._list_running = False
        self._sweep: dict[_Tracked, int] = {}  # due requests (and their generation)
        self._list_interval = polling.initial
        self._last_list = -math.inf
        self._next_list_at = -math.inf
        self._wake: anyio.Event | None = None
        self._task_group: TaskGroup | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<PollScheduler tracking {len(self._tracked)} requests>"

    @property
    def tracking(self) -> int:
        """How many requests are being waited for now."""
        return len(self._tracked)

    async def __aenter__(self) -> PollScheduler:
        if self._task_group is not None or self._closed:
            raise RuntimeError("a PollScheduler runs once")
        self._wake = anyio.Event()
        group = anyio.create_task_group()
        await group.__aenter__()
        self._task_group = group
        group.start_soon(self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task_group is not None
        self._closed = True
        for tracked in list(self._tracked.values()):
            self._finish(tracked, error=RuntimeError("the poll scheduler was closed"))
        self._task_group.cancel_scope.cancel()
        # The body's own exception goes on as it is (not wrapped in an ExceptionGroup);
        # a failure of the scheduler's tasks, were there one, is raised from here.
        await self._task_group.__aexit__(None, None, None)

    # ------------------------------------------------------------------ public

    async def track(self, request_id: str, *, on_progress: ProgressHook | None = None) -> OCRResult:
        """Wait for `request_id`: poll, download its batches, merge; the result.

        Raises `RequestFailedError`/`BatchFailedError` with the service's
        reason, `IncompleteResultError` for a gap or overlap, or the API error
        that ended the wait. Cancelling the caller stops tracking the request
        (unless another caller waits for it too).
        """
        tracked = self._start(request_id, on_progress)
        tracked.waiters += 1
        try:
            await tracked.done.wait()
        finally:
            tracked.waiters -= 1
            if not tracked.finished and tracked.waiters == 0:
                self._finish(tracked, error=_Abandoned(request_id))
        if tracked.error is not None:
            raise tracked.error
        assert tracked.result is not None
        return tracked.result

    # ------------------------------------------------------------------ scheduling

    def _start(self, request_id: str, hook: ProgressHook | None) -> _Tracked:
        if self._task_group is None or self._closed:
            raise RuntimeError("use the PollScheduler inside `async with`")
        tracked = self._tracked.get(request_id)
        if tracked is None:
            tracked = _Tracked(request_id, interval=self._polling.initial, order=next(self._order))
            self._tracked[request_id] = tracked
            # New work: the next list comes soon, not after a backed-off wait.
            self._list_interval = self._polling.initial
            self._next_list_at = min(self._next_list_at, self._last_list + self._polling.initial)
            self._schedule(tracked, 0.0)
        if hook is not None:
            tracked.hooks.append(hook)
        tracked.handler = tracked.handler or priority.current() == priority.HANDLER
        return tracked

    def _schedule(self, tracked: _Tracked, delay: float) -> None:
        tracked.generation += 1
        due = anyio.current_time() + delay
        heapq.heappush(self._heap, (due, next(self._counter), tracked.generation, tracked))
        if self._wake is not None:
            self._wake.set()

    def _next_delay(self, tracked: _Tracked) -> float:
        interval = tracked.interval
        eta = self._eta(tracked)
        if eta is not None:
            interval = min(max(eta * _ETA_SHARE, self._polling.initial), self._polling.maximum)
        spread = self._polling.jitter
        return interval * self._rng.uniform(1.0 - spread, 1.0 + spread)

    def _note_completed(self, tracked: _Tracked, status: RequestStatus) -> None:
        previous = tracked.last.completed_pages if tracked.last is not None else 0
        if status.completed_pages > previous:
            self._completions.append((anyio.current_time(), status.completed_pages - previous))

    def _eta(self, tracked: _Tracked) -> float | None:
        """Seconds until `tracked` is likely done, from the service's recent pace; or None.

        Algorithm: a FIFO queue model. The service is taken to work through
        this scheduler's requests in the order they were tracked, at the rate
        of pages it completed over the last `_PACE_WINDOW` seconds; a request
        is due when the pages still open in it and in every request tracked
        before it are done. Used in place of the blind backoff, and clamped to
        `Polling.initial`..`Polling.maximum`: a wrong guess costs no more lag
        than the backoff would.
        """
        now = anyio.current_time()
        completions = self._completions
        while completions and completions[0][0] < now - _PACE_WINDOW:
            completions.popleft()
        if len(completions) < 2:
            return None
        span = now - completions[0][0]
        if span < _PACE_MIN_SPAN:
            return None
        pace = sum(pages for _, pages in completions) / span
        ahead = 0
        for other in self._tracked.values():
            last = other.last
            if other.order <= tracked.order and last is not None and last.total_pages:
                ahead += max(0, last.total_pages - last.completed_pages)
        return ahead / pace if ahead else None

    async def _run(self) -> None:
        assert self._task_group is not None
        while True:
            self._wake = anyio.Event()
            now = anyio.current_time()
            while self._heap and self._heap[0][0] <= now:
                _due, _n, generation, tracked = heapq.heappop(self._heap)
                if not _is_due(tracked, generation):
                    continue
                if len(self._tracked) >= _LIST_MIN and self._listable(tracked):
                    self._sweep[tracked] = generation  # answered by the next list
                    continue
                await self._start_poll(tracked, generation)
            sweep_waits = bool(self._sweep) and not self._list_running
            if sweep_waits and anyio.current_time() >= self._next_list_at:
                if self._held_back():
                    self._next_list_at = anyio.current_time() + _BUSY_RECHECK
                else:
                    await self._start_list()
                    sweep_waits = False
            delay = self._heap[0][0] - anyio.current_time() if self._heap else math.inf
            if sweep_waits:
                delay = min(delay, self._next_list_at - anyio.current_time())
            if delay > 0:
                wake = self._wake
                with anyio.move_on_after(delay):
                    await wake.wait()

    def _held_back(self) -> bool:
        """Whether a due list waits: uploads queue for the rate limit, and only bulk runs wait.

        Under a binding rate limit every list displaces an upload, and a list
        reset by each request's progress comes every second or so. While
        `_BUSY_PACER` requests or more wait for the limit, a list answering
        only bulk runs' requests waits for the queue to clear, up to
        `Polling.maximum` after the last one: results still come by then, and
        at once when the uploads are through. A request handler's request is
        never held back.
        """
        if any(tracked.handler for tracked in self._sweep):
            return False
        if anyio.current_time() >= self._last_list + self._polling.maximum:
            return False
        return self._transport.pacer.queued() >= _BUSY_PACER

    async def _start_poll(self, tracked: _Tracked, generation: int) -> None:
        """A status fetch for `tracked`, once a poll slot is free (unless it is no longer due)."""
        assert self._task_group is not None
        await self._poll_slots.acquire()
        if not _is_due(tracked, generation):  # finished while waiting for a slot
            self._poll_slots.release()
            return
        tracked.polling = True
        self._task_group.start_soon(self._poll, tracked)

    def _listable(self, tracked: _Tracked) -> bool:
        """Whether the request list can answer for `tracked` (no links or batches due)."""
        last = tracked.last
        return (
            self._listing
            and not tracked.single_next
            and not tracked.refresh_wanted
            and tracked.unlisted < _MAX_UNLISTED
            and (last is None or not _is_over(last))
        )

    async def _start_list(self) -> None:
        """One list call for every listable open request, or status fetches when it saves none."""
        assert self._task_group is not None
        due = [(t, g) for t, g in self._sweep.items() if _is_due(t, g)]
        self._sweep.clear()
        if not due:
            return
        answered = [t for t in self._tracked.values() if not t.polling and self._listable(t)]
        if len(answered) < _LIST_MIN:
            for tracked, generation in due:
                await self._start_poll(tracked, generation)
            return
        await self._poll_slots.acquire()
        answered = [t for t in answered if not t.finished and not t.polling]
        for tracked in answered:
            tracked.polling = True  # its heap entries wait for the list's answer
        self._list_running = True
        self._task_group.start_soon(self._list, answered, {t for t, _ in due})

    async def _list(self, answered: list[_Tracked], due: set[_Tracked]) -> None:
        """The list's answer for `answered`: who ended, who waits, who needs its own status."""
        statuses: dict[str, str] | None = None
        try:
            body = await self._transport.list_requests(on_retry=self._on_retry)
            statuses = {s.id: s.status for s in parse_request_list(body, source="request list")}
        except Exception as exc:  # noqa: BLE001 - the due requests fall back to status fetches
            if isinstance(exc, ResponseValidationError) or (
                isinstance(exc, APIStatusError) and exc.status_code in _NO_LIST_STATUSES
            ):
                self._listing = False
                logger.info("the request list is not served (%s); polling each request", exc)
            else:
                logger.debug("the request list failed (%s); polling the due requests", exc)
        finally:
            self._list_running = False
            self._poll_slots.release()
            for tracked in answered:
                tracked.polling = False
        now = anyio.current_time()
        self._last_list = now
        moved, waiting = False, []
        for tracked in answered:
            if tracked.finished:
                continue
            status = statuses.get(tracked.request_id) if statuses is not None else None
            if status is None or not self._listable(tracked):
                if statuses is not None and status is None:
                    tracked.unlisted += 1
                if statuses is not None or tracked in due:
                    tracked.single_next = True  # not listed, or no list: its own status
                    self._schedule(tracked, 0.0)
                else:
                    waiting.append(tracked)  # the list failed; not due yet: wait as listed
                continue
            tracked.unlisted = 0
            if status != tracked.listed:
                moved = True
                tracked.listed = status
                if tracked.last is not None:  # reported once a status gave its pages
                    self._report(tracked)
            if status in _ENDED:
                tracked.single_next = True  # its batches and links come with one status
                self._schedule(tracked, 0.0)
            else:
                waiting.append(tracked)
        polling = self._polling
        if moved:
            self._list_interval = polling.initial
        else:
            self._list_interval = min(polling.maximum, self._list_interval * polling.factor)
        spread = polling.jitter
        delay = self._list_interval * self._rng.uniform(1.0 - spread, 1.0 + spread)
        self._next_list_at = now + delay
        for tracked in waiting:
            self._schedule(tracked, delay)
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------ polls

    async def _poll(self, tracked: _Tracked) -> None:
        status: RequestStatus | None = None
        try:
            with anyio.CancelScope() as scope:
                tracked.scopes.add(scope)
                try:
                    tracked.refresh_wanted = tracked.single_next = False
                    body = await self._transport.get_request(
                        tracked.request_id, on_retry=self._on_retry
                    )
                    status = parse_request_status(body, source=f"request {tracked.request_id}")
                except Exception as exc:  # noqa: BLE001 - any failure ends this request's wait, not others'
                    self._finish(tracked, error=exc)
                finally:
                    tracked.scopes.discard(scope)
        finally:
            tracked.polling = False
            self._poll_slots.release()
        if status is not None and not tracked.finished:
            self._on_status(tracked, status)

    def _on_status(self, tracked: _Tracked, status: RequestStatus) -> None:
        tracked.status_seq += 1
        self._note_completed(tracked, status)
        tracked.last = status
        tracked.listed = status.status
        failed = [b for b in status.batches if b.is_failed]
        if status.is_failed and not failed and not any(b.is_completed for b in status.batches):
            self._finish(tracked, error=_failure(status, failed))  # the request's own failure
            return
        missing_link = False
        for batch in status.batches:
            key = (batch.start_page, batch.end_page)
            entry = tracked.batches.get(key)
            if entry is None:
                entry = _Batch(batch.id, batch.start_page, batch.end_page)
                tracked.batches[key] = entry
            if not batch.is_completed:
                continue
            if not batch.download_url:
                missing_link = missing_link or entry.state != "done"
                continue
            entry.url, entry.url_seq = batch.download_url, tracked.status_seq
            if entry.state in ("waiting", "stale"):
                self._start_download(tracked, entry)

        completed = sum(1 for b in status.batches if b.is_completed)
        key_now = (status.status, status.completed_pages, completed)
        if key_now != tracked.progress_key:
            tracked.progress_key = key_now
            tracked.interval = self._polling.initial
        elif tracked.status_seq > 1:
            tracked.interval = min(self._polling.maximum, tracked.interval * self._polling.factor)
        # Every stale batch listed with a link got this status's; one without asks again.
        tracked.refresh_wanted = any(b.state == "stale" for b in tracked.batches.values())
        self._report(tracked)
        if self._maybe_finish(tracked):
            return
        settled = completed + sum(1 for b in status.batches if b.is_failed)
        all_linked = settled == len(status.batches) and not missing_link
        if _is_over(status) and all_linked and not tracked.refresh_wanted:
            return  # only downloads left; a stale link asks for a poll itself
        if missing_link or tracked.refresh_wanted:
            delay = self._polling.initial  # links are due: ask again soon, not in a tight loop
        else:
            delay = self._next_delay(tracked)
        self._schedule(tracked, delay)

    # ------------------------------------------------------------------ downloads

    def _start_download(self, tracked: _Tracked, entry: _Batch) -> None:
        assert self._task_group is not None
        assert entry.url is not None
        entry.state = "downloading"
        self._task_group.start_soon(self._download, tracked, entry, entry.url, entry.url_seq)

    async def _download(self, tracked: _Tracked, entry: _Batch, url: str, url_seq: int) -> None:
        source = f"request {tracked.request_id} pages {entry.start_page}-{entry.end_page}"
        result: OCRResult | None = None
        with anyio.CancelScope() as scope:
            tracked.scopes.add(scope)
            try:
                result = await self._transport.download(
                    url,
                    partial(parse_result, source=source),
                    request_id=tracked.request_id,
                    on_retry=self._on_retry,
                )
            except LinkExpiredError as exc:
                self._stale(tracked, entry, url_seq, exc)
            except Exception as exc:  # noqa: BLE001 - any failure ends this request's wait, not others'
                self._finish(tracked, error=exc)
            finally:
                tracked.scopes.discard(scope)
        if result is None or tracked.finished:
            return
        entry.result = result
        entry.state = "done"
        self._report(tracked)
        self._maybe_finish(tracked)

    def _stale(self, tracked: _Tracked, entry: _Batch, url_seq: int, exc: LinkExpiredError) -> None:
        """A link was refused: use a newer one if a status brought it, else ask for one."""
        if tracked.finished:
            return
        entry.refreshes += 1
        if entry.refreshes > MAX_LINK_REFRESHES:
            self._finish(tracked, error=exc)
            return
        entry.state = "stale"
        if entry.url_seq > url_seq:
            self._start_download(tracked, entry)  # a status came meanwhile: its link is fresher
            return
        if tracked.refresh_wanted:
            return  # one re-fetch is already asked for; it serves this batch too
        tracked.refresh_wanted = True
        if not tracked.polling:
            self._schedule(tracked, 0.0)
        # A poll already in flight may carry a link as old as this one: ask again after it.

    # ------------------------------------------------------------------ endings

    def _maybe_finish(self, tracked: _Tracked) -> bool:
        status = tracked.last
        if status is None or not _is_over(status):
            return False
        current = [tracked.batches[(b.start_page, b.end_page)] for b in status.batches]
        kept = [b for b, listed in zip(current, status.batches, strict=True) if listed.is_completed]
        if any(b.state != "done" for b in kept):
            return False
        total = status.total_pages or max((b.end_page for b in current), default=0)
        parts = [(b.start_page, b.end_page, b.result) for b in kept if b.result is not None]
        lost = [b for b in status.batches if not b.is_completed]
        if lost:  # failed batches (or a failed request's unfinished ones): hand the rest back
            error = _failure(status, lost)
            assert isinstance(error, BatchFailedError)
            error.failed_ranges = tuple(sorted((b.start_page, b.end_page) for b in lost))
            error.completed = tuple(parts)
            error.total_pages = total
            self._finish(tracked, error=error)
            return True
        try:
            merged = merge_batches(tracked.request_id, total, parts)
        except Exception as exc:  # noqa: BLE001 - IncompleteResultError and kin end this wait
            self._finish(tracked, error=exc)
        else:
            self._finish(tracked, result=merged)
        return True

    def _finish(
        self,
        tracked: _Tracked,
        *,
        result: OCRResult | None = None,
        error: BaseException | None = None,
    ) -> None:
        if tracked.finished:
            return
        tracked.finished = True
        tracked.result, tracked.error = result, error
        if self._tracked.get(tracked.request_id) is tracked:
            del self._tracked[tracked.request_id]
        for scope in list(tracked.scopes):
            scope.cancel()
        for batch in tracked.batches.values():
            batch.result = None  # the merged result holds the pages; free the parts
        tracked.done.set()
        if not isinstance(error, _Abandoned):
            self._report(tracked)

    def _report(self, tracked: _Tracked) -> None:
        status = tracked.last
        if self._on_progress is None and not tracked.hooks:
            return
        progress = Progress(
            request_id=tracked.request_id,
            status=tracked.listed or "submitted",
            total_pages=status.total_pages if status is not None else None,
            completed_pages=status.completed_pages if status is not None else 0,
            downloaded_pages=tracked.downloaded_pages,
            done=tracked.finished,
        )
        for hook in (self._on_progress, *tracked.hooks):
            if hook is None:
                continue
            try:
                hook(progress)
            except Exception:
                logger.exception("a progress hook failed for request %s", tracked.request_id)
