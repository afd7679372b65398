"""A run's counters and its `on_event` hook, kept together: every event is counted here."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .._exceptions import RateLimitError
from .._retry import RetryEvent
from ._events import BulkEvent, BulkStats
from ._jobs import Job
from ._types import BulkItem

__all__ = ["Counters"]

logger = logging.getLogger("aioupstage_ocr")


class Counters:
    """`stats` of one run, and its `on_event` hook (an error in it is logged, not raised)."""

    __slots__ = ("hook", "stats")

    def __init__(self, hook: Callable[[BulkEvent], None] | None) -> None:
        self.stats = BulkStats()
        self.hook = hook

    def event(self, event: BulkEvent) -> None:
        """Tell the hook (build the event only when `hook` is set: events are many)."""
        if self.hook is None:
            return
        try:
            self.hook(event)
        except Exception:
            logger.exception("the on_event hook of a bulk run failed on %r", event)

    def delivered(self, item: BulkItem) -> None:
        """An item has its outcome."""
        if item.error is None:
            self.stats.succeeded += 1
            self.stats.pages += item.pages or 0
        else:
            self.stats.failed += 1
        if self.hook is not None:
            self.event(
                BulkEvent(
                    "finished" if item.error is None else "failed",
                    item.index,
                    item.source,
                    request_id=item.request_id,
                    route=item.route,
                    pages=item.pages,
                    item=item,
                    error=item.error,
                )
            )

    def retrying(self, job: Job | None, event: RetryEvent) -> None:
        """A request of `job` (None: a poll or a download) is tried again."""
        self.stats.retries += 1
        if isinstance(event.exception, RateLimitError):
            self.stats.rate_limited += 1
        if self.hook is None:
            return
        request_id = getattr(event.exception, "request_id", None)
        self.event(
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

    def paused(self, seconds: float) -> None:
        """The pacer holds every sender for `seconds` (a `Retry-After`)."""
        self.stats.pauses += 1
        self.stats.paused_seconds += seconds
        if self.hook is not None:
            self.event(BulkEvent("paused", wait=seconds))
