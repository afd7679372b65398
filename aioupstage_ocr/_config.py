"""Settings as small frozen objects, each with a documented module-level default.

```python
AsyncUpstageOCR(
    timeouts=Timeouts(connect=5.0),
    limits=Limits(max_concurrency=8),
    retries=Retries(attempts=3),
    rate=RateLimit(rps=3, ppm=600),
    document_limits=DocumentLimits(max_bytes=100_000_000),
    polling=Polling(maximum=10.0),
)
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ._exceptions import ConfigurationError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_DOCUMENT_LIMITS",
    "DEFAULT_LIMITS",
    "DEFAULT_MODEL",
    "DEFAULT_POLLING",
    "DEFAULT_RATE",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUTS",
    "DocumentLimits",
    "Limits",
    "Polling",
    "RateLimit",
    "Retries",
    "Timeouts",
    "resolve_api_key",
    "resolve_base_url",
]

DEFAULT_BASE_URL = "https://api.upstage.ai/v1"
DEFAULT_MODEL = "ocr"
API_KEY_ENV = "UPSTAGE_API_KEY"
BASE_URL_ENV = "UPSTAGE_BASE_URL"


def _positive(name: str, value: float | None, *, allow_none: bool = False) -> None:
    if value is None:
        if not allow_none:
            raise ConfigurationError(f"{name} must be set")
        return
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait, per kind of exchange.

    - `connect`: to open a connection.
    - `request`: a status fetch, a request list, an async submit (upload included).
    - `sync_ocr`: a synchronous OCR call, upload and server work included. The
      service's own limit is 3 to 5 minutes; past it, auto mode goes async.
    - `download`: one batch result from storage.
    """

    connect: float = 10.0
    request: float = 120.0
    sync_ocr: float = 330.0
    download: float = 120.0

    def __post_init__(self) -> None:
        for name in ("connect", "request", "sync_ocr", "download"):
            _positive(f"Timeouts.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True)
class Limits:
    """How much runs at once.

    - `max_connections`: the aiohttp connection pool (all hosts).
    - `max_concurrency`: the most API requests in flight across every stage
      (submits, polls, lists), the one limit the service sees. The client
      finds how many the service takes (from 16, growing while its latency
      holds, shrinking when it climbs or on 429/503) up to this ceiling.
    - `max_downloads`: batch downloads in flight; they go to the storage host,
      not the API, so they have their own limit beside `max_concurrency`.
    - `max_polls`: status fetches in flight (within `max_concurrency`).
    - `max_open_documents`: documents prepared or uploading at once in bulk runs:
      bounds open files and memory whatever the number of inputs.
    """

    max_connections: int = 64
    max_concurrency: int = 64
    max_downloads: int = 8
    max_polls: int = 4
    max_open_documents: int = 64

    def __post_init__(self) -> None:
        for name in (
            "max_connections",
            "max_concurrency",
            "max_downloads",
            "max_polls",
            "max_open_documents",
        ):
            _positive(f"Limits.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True)
class Retries:
    """When and how long to retry: connection errors, 408, 409, 429 and 5xx.

    Exponential backoff with full jitter: after attempt n fails, wait a random
    time in `[0, min(maximum, initial * 2**(n-1))]`. A `Retry-After` from
    the server replaces that wait, capped at `retry_after_max`. `attempts`
    counts the first try.
    """

    attempts: int = 6
    initial: float = 0.5
    maximum: float = 30.0
    retry_after_max: float = 120.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError(f"Retries.attempts must be at least 1, got {self.attempts}")
        for name in ("initial", "maximum", "retry_after_max"):
            _positive(f"Retries.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The account's pace, when known.

    - `rps`: requests per second, every request to the API counted
      (submits and polls alike, as the service counts them).
    - `ppm`: pages per minute submitted.
    - `adaptive`: with no `rps`, find the pace from 429s (cut on a 429, grow
      slowly on success). With `rps` set, 429s still pause senders.
    """

    rps: float | None = None
    ppm: float | None = None
    adaptive: bool = True

    def __post_init__(self) -> None:
        _positive("RateLimit.rps", self.rps, allow_none=True)
        _positive("RateLimit.ppm", self.ppm, allow_none=True)


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """What the service accepts, checked before uploading.

    The defaults are the lower of the documented figures (one revision of the
    reference says 100 MB): raise them when your account allows more.
    """

    max_bytes: int = 50_000_000
    sync_max_pages: int = 100
    async_max_pages: int = 1000
    max_pixels_per_page: int = 200_000_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "sync_max_pages", "async_max_pages", "max_pixels_per_page"):
            _positive(f"DocumentLimits.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True)
class Polling:
    """How often to fetch an async request's status.

    Starts at `initial` seconds, multiplies by `factor` after a poll that saw
    no progress, up to `maximum`; progress (a page or batch done) resets it.
    Each wait is jittered by +/- `jitter` (a fraction) so requests spread out.
    """

    initial: float = 1.0
    maximum: float = 15.0
    factor: float = 1.5
    jitter: float = 0.2

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "factor"):
            _positive(f"Polling.{name}", getattr(self, name))
        if not 0 <= self.jitter < 1:
            raise ConfigurationError(f"Polling.jitter must be in [0, 1), got {self.jitter!r}")


DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_LIMITS = Limits()
DEFAULT_RETRIES = Retries()
DEFAULT_RATE = RateLimit()
DEFAULT_DOCUMENT_LIMITS = DocumentLimits()
DEFAULT_POLLING = Polling()


def resolve_api_key(api_key: str | None) -> str | None:
    """The key given, else `UPSTAGE_API_KEY`, else None (the client raises on first use)."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    key = key.strip() if key else None
    return key or None


def resolve_base_url(base_url: str | None) -> str:
    """The base URL given, else `UPSTAGE_BASE_URL`, else the service's; no trailing slash."""
    url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return url.rstrip("/")
