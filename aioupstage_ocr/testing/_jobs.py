"""Async requests, their batches, and the pool of simulated workers that runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._config import EmulatorConfig
from ._faults import Dice
from ._ocr import DocumentContent, PageContent
from ._recordings import Recording
from ._stats import EmulatorStats
from ._storage import iso_now

__all__ = ["AsyncRequest", "Batch", "BatchScheduler"]

log = logging.getLogger(__name__)

TERMINAL = frozenset({"completed", "failed"})


@dataclass(slots=True, eq=False)
class Batch:
    """One batch of an async request (pages `start_page`..`end_page`, from 1)."""

    id: int
    start_page: int
    end_page: int
    requested_at: str
    updated_at: str
    status: str = "scheduled"
    failure_message: str = ""
    attempts: int = 0
    links: int = 0
    downloads: int = 0

    @property
    def pages(self) -> int:
        return self.end_page - self.start_page + 1


@dataclass(slots=True, eq=False)
class AsyncRequest:
    """An async request as the service keeps it.

    `occurrence` counts the submissions of the same document (by `sha256`) so
    far: with the seed it keys every chance this request meets. `content` is
    the document as read (a future: reading a large PDF runs while batches wait);
    `recording`, the recorded answer its batches are cut from, when replayed.
    """

    id: str
    model: str
    model_version: str
    sha256: str
    occurrence: int
    schema: str | None
    total_pages: int
    requested_at: str
    content: asyncio.Future[DocumentContent]
    batches: list[Batch] = field(default_factory=list)
    status: str = "submitted"
    failure_message: str = ""
    completed_at: str | None = None
    recording: Recording | None = None

    @property
    def completed_pages(self) -> int:
        return sum(b.pages for b in self.batches if b.status == "completed")

    def pages_of(self, batch: Batch) -> Sequence[PageContent]:
        """The pages a completed batch covers (its content must be read)."""
        return self.content.result().pages[batch.start_page - 1 : batch.end_page]

    def pages_before(self, batch: Batch) -> Sequence[PageContent]:
        """The pages before a batch's first (its content must be read)."""
        return self.content.result().pages[: batch.start_page - 1]

    def settle(self, partial_status: str = "failed") -> None:
        """Mark the request done once every batch is (`partial_status` when some failed)."""
        if self.status in TERMINAL or any(b.status not in TERMINAL for b in self.batches):
            return
        failed = [b for b in self.batches if b.status == "failed"]
        self.completed_at = iso_now()
        if failed and partial_status == "completed":
            self.status = "completed"
        elif failed:
            first = min(failed, key=lambda b: b.id)
            self.status = "failed"
            self.failure_message = (
                f"{len(failed)} of {len(self.batches)} batches failed; batch {first.id} "
                f"(pages {first.start_page}-{first.end_page}): {first.failure_message}"
            )
        else:
            self.status = "completed"

    def fail(self, message: str) -> None:
        """End the whole request as failed."""
        self.status = "failed"
        self.failure_message = message
        self.completed_at = iso_now()


def make_batches(total_pages: int, batch_size: int) -> list[Batch]:
    """Batches of `batch_size` pages covering 1..`total_pages`; the last one partial."""
    now = iso_now()
    return [
        Batch(index, start, min(start + batch_size - 1, total_pages), now, now)
        for index, start in enumerate(range(1, total_pages + 1, batch_size))
    ]


_Job = tuple[AsyncRequest, Batch]


class BatchScheduler:
    """A pool of `config.workers` simulated workers taking batches from one FIFO queue.

    A request's batches enter the queue in a seeded shuffled order (after
    `start_delay`), and each takes `batch_latency` (jittered, seeded), so batches
    of one request finish out of order. Every task is owned here and cancelled
    by `close()`.
    """

    def __init__(
        self,
        config: Callable[[], EmulatorConfig],
        dice: Callable[[], Dice],
        stats: EmulatorStats,
        changed: Callable[[], None],
    ) -> None:
        self._config = config
        self._changed = changed
        self._dice = dice
        self._stats = stats
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._workers: set[asyncio.Task[None]] = set()
        # Page texts `fail_pages` chose, and how often a batch holding one has failed.
        self._poisoned: dict[str, int] = {}
        self._timers: set[asyncio.TimerHandle] = set()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Start the workers (call inside the running loop)."""
        self.resize()

    def resize(self) -> None:
        """Match the number of workers to `config.workers`."""
        target = self._config().workers
        while len(self._workers) < target:
            task = asyncio.get_running_loop().create_task(self._work())
            self._workers.add(task)
        for _ in range(len(self._workers) - target):
            self._queue.put_nowait(None)  # wakes an idle worker, which then leaves

    def _cancel_all(self) -> list[asyncio.Task[None]]:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = list(self._workers)
        for task in tasks:
            task.cancel()
        self._workers.clear()
        self._queue = asyncio.Queue()
        return tasks

    def reset(self) -> None:
        """Forget every queued batch and restart the workers."""
        self._cancel_all()
        self._poisoned.clear()
        self.resize()

    async def close(self) -> None:
        """Cancel every task and wait for them to end."""
        tasks = self._cancel_all()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- work ----------------------------------------------------------------

    def submit(self, request: AsyncRequest, *, over_limit: bool = False) -> None:
        """Schedule a new request's batches; an `over_limit` one fails after a moment."""
        config = self._config()
        if over_limit:
            delay = config.start_delay + config.batch_latency
            message = (
                f"the document has {request.total_pages} pages; the async endpoint takes "
                f"at most {config.max_async_pages}"
            )

            def fail() -> None:
                request.fail(message)
                self._changed()

            self._later(delay, fail)
            return
        if config.start_delay > 0:
            self._later(config.start_delay, lambda: self._enqueue(request))
        else:
            self._enqueue(request)

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            assert handle is not None
            self._timers.discard(handle)
            callback()

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def _enqueue(self, request: AsyncRequest) -> None:
        order = list(request.batches)
        self._dice().rng("queue", request.sha256, request.occurrence).shuffle(order)
        for batch in order:
            self._queue.put_nowait((request, batch))

    async def _work(self) -> None:
        me = asyncio.current_task()
        queue = self._queue
        try:
            while len(self._workers) <= self._config().workers:
                job = await queue.get()
                if job is not None:
                    await self._run(*job)
        finally:
            if me is not None:
                self._workers.discard(me)

    async def _run(self, request: AsyncRequest, batch: Batch) -> None:
        config, dice = self._config(), self._dice()
        batch.attempts += 1
        batch.status = "started"
        batch.updated_at = iso_now()
        if request.status == "submitted":
            request.status = "started"
        key = (request.sha256, request.occurrence, batch.id, batch.attempts)
        await asyncio.sleep(dice.jitter(config.batch_latency, config.latency_jitter, "batch", *key))
        try:
            await asyncio.shield(request.content)
        except asyncio.CancelledError:
            raise
        except Exception:  # any reading failure fails the batch, as a server fault would
            log.debug("reading request %s failed", request.id, exc_info=True)
            self._finish(request, batch, "internal error: the document could not be processed")
            return
        config, dice = self._config(), self._dice()
        if dice.chance(config.batch_failure_rate, "batch-failure", *key):
            if batch.attempts <= config.batch_retries:
                batch.status = "retrying"
                batch.updated_at = iso_now()
                self._later(config.batch_latency, lambda: self._queue.put_nowait((request, batch)))
                return
            self._finish(
                request,
                batch,
                f"internal error while processing pages {batch.start_page}-{batch.end_page}",
            )
            return
        if self._chosen_to_fail(request, batch, config):
            self._finish(
                request,
                batch,
                f"internal error while processing pages {batch.start_page}-{batch.end_page}",
            )
            return
        self._finish(request, batch, None)

    def _chosen_to_fail(self, request: AsyncRequest, batch: Batch, config: EmulatorConfig) -> bool:
        """Whether `fail_pages` fails this batch (see `EmulatorConfig`)."""
        if not config.fail_pages or request.recording is not None:
            return False
        pages = request.pages_of(batch)
        for page in pages:
            if page.number in config.fail_pages:
                self._poisoned.setdefault(page.text, 0)
        hits = [page.text for page in pages if page.text in self._poisoned]
        if not hits:
            return False
        if config.fail_times and max(self._poisoned[t] for t in hits) >= config.fail_times:
            return False
        for text in hits:
            self._poisoned[text] += 1
        return True

    def _finish(self, request: AsyncRequest, batch: Batch, failure: str | None) -> None:
        if failure is None:
            batch.status = "completed"
            self._stats.pages_billed += batch.end_page - batch.start_page + 1
        else:
            batch.status = "failed"
            batch.failure_message = failure
            self._stats.batches_failed += 1
        batch.updated_at = iso_now()
        request.settle(self._config().partial_status)
        self._changed()


def retrieve_exception(future: asyncio.Future[Any]) -> None:
    """Done callback: mark a future's exception as seen (it is reported where it is awaited)."""
    if not future.cancelled():
        with contextlib.suppress(Exception):
            future.exception()
