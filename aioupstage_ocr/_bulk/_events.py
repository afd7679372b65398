"""What a bulk run tells while it runs (`BulkEvent`) and its counters (`BulkStats`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, TypeAlias

from .._preflight import Document, Route
from ._types import BulkItem, shown

__all__ = ["BulkEvent", "BulkStats", "EventKind"]

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
            fields.insert(1, f"source={shown(self.source)}")
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
