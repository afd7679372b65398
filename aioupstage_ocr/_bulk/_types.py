"""What a bulk run takes and hands out: `Resume`, `Submission`, `BulkItem`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

from .._exceptions import UpstageOCRError
from .._models import OCRResult
from .._preflight import Document, Route

__all__ = ["BulkItem", "KnownHook", "Resume", "Submission", "SubmitHook", "name_of", "shown"]


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
    For one part of a document cut into parts (see `AsyncUpstageOCR.ocr`),
    `part_sha256` is the part's own content hash and `source_pages` its pages
    of the original (from 1); `sha256` and `name` stay the document's, `size`,
    `pages` and `route` are the part's. A part that sends a failed batch's
    pages again has `repair_of`, the request it repairs.
    """

    source: Document
    index: int
    name: str
    sha256: str
    size: int
    pages: int | None
    route: Route
    request_id: str | None = None
    part_sha256: str | None = None
    source_pages: tuple[int, ...] | None = None
    repair_of: str | None = None


#: `before_submit` and `after_submit`: awaited in the document's own worker.
SubmitHook: TypeAlias = Callable[[Submission], Awaitable[None]]
#: `known_part`: a part's request id from an earlier run (waited for, not sent), or None.
KnownHook: TypeAlias = Callable[[Submission], Awaitable[str | None]]


@dataclass(frozen=True, slots=True, repr=False)
class BulkItem:
    """One input's outcome: a `result` or an `error`, never both.

    - `index`: its place in the input (from 0); `source`: the input as given.
    - `route`: the endpoint that produced it (`"sync"`/`"async"`; None if never
      sent; a sync time-out that went async is `"async"`).
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
    route: Route | None = None
    pages: int | None = None
    sha256: str | None = None
    duplicate_of: int | None = None
    queued_at: float = 0.0
    started_at: float | None = None
    finished_at: float = 0.0

    @property
    def mode(self) -> Route | None:
        """Deprecated: `route` (it holds the endpoint used, not the mode asked for)."""
        warnings.warn("BulkItem.mode is now BulkItem.route", DeprecationWarning, stacklevel=2)
        return self.route

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
        return f"<BulkItem #{self.index} {shown(self.source)} {self.route} {outcome}{rid}>"


def shown(source: object) -> str:
    """A short name for a source in a repr (never a document's bytes)."""
    if isinstance(source, str | os.PathLike):
        return repr(os.fspath(source))
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    name = getattr(source, "name", None)
    return repr(name) if isinstance(name, str) else f"<{type(source).__name__}>"


def name_of(source: object, index: int) -> str:
    """How messages name a source: its path, its file object's name, else `input-<index>`."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else f"input-{index}"
