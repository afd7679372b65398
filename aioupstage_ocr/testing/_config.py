"""The emulator's settings: one frozen object, every field also a command-line option."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from .._exceptions import ConfigurationError

__all__ = ["API_ROUTES", "CHOICES", "FAULT_ROUTES", "EmulatorConfig"]

#: Routes of the API host, as named in `EmulatorStats.requests` and `fault_routes`.
API_ROUTES = ("sync", "async", "status", "list")
#: Routes that can be given faults: the API routes and the storage host's downloads.
FAULT_ROUTES = (*API_ROUTES, "download")
#: Fields that take one of a few names, the default first.
CHOICES: dict[str, tuple[str, ...]] = {
    "shape": ("live", "seed"),
    "error_shape": ("code", "error"),
    "page_ids": ("batch", "document"),
    "partial_status": ("failed", "completed"),
}

_RATES = (
    "error_rate",
    "drop_rate",
    "truncate_rate",
    "batch_failure_rate",
    "early_expiry_rate",
    "latency_jitter",
)
_NON_NEGATIVE = ("url_ttl", "sync_latency", "batch_latency", "start_delay", "early_expiry_ttl")
_POSITIVE_INTS = (
    "workers",
    "batch_size",
    "max_sync_pages",
    "max_async_pages",
    "max_bytes",
    "max_pixels",
)


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How the emulator behaves. Every fault is drawn from `seed`, so a failure replays.

    Service:
    - `api_key`: the one key accepted; None accepts any non-empty key.
    - `url_ttl`: seconds a signed download link stays valid (the service: 900).
    - `max_sync_pages`, `max_async_pages`, `max_bytes`, `max_pixels`: the limits.
      An async document over `max_async_pages` is accepted, then fails.
    - `model_version`: what `ocr` stands for; `ocr` and this name are the models taken.
    - `batch_size`: pages per async batch; `workers`: batches run at once.
    - `shape`: the answers' shape: `"live"`, the service's own as its recorded
      answers have it (`apiVersion`, integer pixel boxes, page sizes, word ids
      across the answer), or `"seed"`, the seed page's (`api`, ratio boxes,
      `usage.pages`). Batch downloads come in it too.
    - `error_shape`: `"code"` for the reference's `{"code": <status>, "message"}` bodies,
      `"error"` for `{"error": {"message", "type", "code"}}` (Upstage's sample code).
    - `page_ids`: in a batch's download, page ids (and live word ids) count from the
      `"batch"` or the `"document"`.
    - `shuffle_batches`: list a request's batches in a seeded random order.
    - `recordings`: a folder of documents, each with `<stem>.response.json` beside
      it (the layout of `../shared/real-ocr`). A document whose bytes equal a
      recorded one is answered with the recorded answer itself (sync, whatever
      `shape`), or with batches cut from it (async) that merge back to it.

    Pace:
    - `sync_latency`: seconds a sync call takes; past `sync_timeout` (if set) it
      answers 504 instead, after `sync_timeout` seconds; `batch_latency`: seconds per batch;
      `latency_jitter`: +/- that fraction, seeded; `start_delay`: seconds an async
      request stays `submitted` before its batches are scheduled.
    - `rps`: API requests per second (submits, polls and lists), `ppm`: pages per
      minute submitted; beyond them a 429, with `Retry-After` if `retry_after`
      (whole seconds, or an HTTP date with `retry_after_date`).
    - `rate_headers`: with `rps`, every API answer says what is left of it:
      `"x-ratelimit"` (`x-ratelimit-limit-requests`, `-remaining-requests`,
      `-reset-requests` as a duration such as `1.5s`) or `"ratelimit"`
      (`RateLimit-Limit`, `-Remaining`, `-Reset` in seconds, `RateLimit-Policy`);
      None sends neither.
    - `capacity`: sync calls processed at once; the rest wait their turn (first
      come, first served), so latency grows with the queue past it (None: no limit).

    Faults (shares from 0 to 1):
    - `error_rate`: answers with one of `error_statuses` before doing the work.
    - `drop_rate`: the work is done, then the connection is closed without an answer.
    - `fault_routes`: the routes the two above apply to (`sync`, `async`, `status`,
      `list`, `download`).
    - `truncate_rate`: a download declares its full length, sends part, closes.
    - `batch_failure_rate`: a batch fails (retried `batch_retries` times as `retrying`).
    - `early_expiry_rate`: a signed link lives `early_expiry_ttl` seconds, not `url_ttl`.

    Chosen failures:
    - `fail_pages`: a batch holding one of these pages (from 1, of its request)
      fails; so does, later, any batch of any request holding a page of the same
      content (a repair that sends those pages again), `fail_times` times in all
      (0: every time). Counted in `EmulatorStats.batches_failed`.
    - `partial_status`: how a request ends when some batches failed and the rest
      completed: `"failed"` (the default) or `"completed"`.
    """

    seed: int = 0
    api_key: str | None = field(default=None, repr=False)
    url_ttl: float = 900.0
    sync_latency: float = 0.0
    sync_timeout: float | None = None
    batch_latency: float = 0.05
    latency_jitter: float = 0.0
    start_delay: float = 0.0
    workers: int = 4
    batch_size: int = 10
    rps: float | None = None
    ppm: float | None = None
    rate_headers: str | None = None
    capacity: int | None = None
    retry_after: bool = True
    retry_after_date: bool = False
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    drop_rate: float = 0.0
    fault_routes: tuple[str, ...] = API_ROUTES
    truncate_rate: float = 0.0
    batch_failure_rate: float = 0.0
    batch_retries: int = 0
    early_expiry_rate: float = 0.0
    early_expiry_ttl: float = 0.0
    fail_pages: tuple[int, ...] = ()
    fail_times: int = 0
    partial_status: str = "failed"
    shape: str = "live"
    error_shape: str = "code"
    page_ids: str = "batch"
    shuffle_batches: bool = True
    max_sync_pages: int = 100
    max_async_pages: int = 1000
    max_bytes: int = 50_000_000
    max_pixels: int = 200_000_000
    model_version: str = "ocr-2.2.1"
    recordings: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigurationError(f"EmulatorConfig.{name} must be in [0, 1], got {value!r}")
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ConfigurationError(f"EmulatorConfig.{name} must not be negative")
        for name in _POSITIVE_INTS:
            if getattr(self, name) < 1:
                raise ConfigurationError(f"EmulatorConfig.{name} must be at least 1")
        for name in ("rps", "ppm", "sync_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"EmulatorConfig.{name} must be positive or None")
        if self.fail_times < 0 or any(page < 1 for page in self.fail_pages):
            raise ConfigurationError(
                "EmulatorConfig.fail_pages count from 1, and fail_times must not be negative"
            )
        if self.rate_headers not in (None, "x-ratelimit", "ratelimit"):
            raise ConfigurationError(
                "EmulatorConfig.rate_headers must be None, 'x-ratelimit' or 'ratelimit'"
            )
        if self.capacity is not None and self.capacity < 1:
            raise ConfigurationError("EmulatorConfig.capacity must be at least 1 or None")
        if self.batch_retries < 0:
            raise ConfigurationError("EmulatorConfig.batch_retries must not be negative")
        if not self.error_statuses or any(not 400 <= s <= 599 for s in self.error_statuses):
            raise ConfigurationError("EmulatorConfig.error_statuses must be HTTP error statuses")
        unknown = set(self.fault_routes) - set(FAULT_ROUTES)
        if unknown:
            raise ConfigurationError(
                f"EmulatorConfig.fault_routes: unknown {sorted(unknown)}; known {FAULT_ROUTES}"
            )
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigurationError(
                    f"EmulatorConfig.{name} must be one of {', '.join(map(repr, allowed))}"
                )
        if self.recordings is not None:
            folder = os.path.abspath(os.fspath(self.recordings))
            if not os.path.isdir(folder):
                raise ConfigurationError(f"EmulatorConfig.recordings: {folder} is not a folder")
            object.__setattr__(self, "recordings", folder)  # a str, so it shows as JSON too
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigurationError("EmulatorConfig.api_key must be None or a non-empty key")

    def replace(self, **changes: Any) -> EmulatorConfig:
        """A copy with `changes` applied (unknown names raise `ConfigurationError`)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigurationError(f"EmulatorConfig has no field {', '.join(unknown)}")
        for name in ("error_statuses", "fault_routes", "fail_pages"):
            if name in changes:
                changes[name] = tuple(changes[name])
        return dataclasses.replace(self, **changes)
