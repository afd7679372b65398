"""What the emulator saw, for tests and benchmarks to assert on."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

__all__ = ["EmulatorStats"]


@dataclass(slots=True)
class EmulatorStats:
    """Counters since start or the last `reset()`.

    - `requests`: requests received per route (`sync`, `async`, `status`, `list`,
      `download`, `other`), whatever their outcome.
    - `statuses`: answers sent per HTTP status (dropped connections not included).
    - `rate_limited`: 429s sent.
    - `queued`: sync calls that found the service at its `capacity` and waited.
    - `uploads`, `upload_bytes`: POSTs to the OCR routes, and their declared bytes,
      whatever their outcome (a preflight that refuses a document uploads nothing).
    - `sync_submissions`, `async_submissions`: submissions the service took on,
      per document (its content's sha256, hex): answered, or dropped after the work.
    - `pages_billed`: pages the service did the work for and would bill: a sync
      answer's pages, an async batch's when it completes.
    - `polls`: status fetches per request id (authorised ones, any outcome).
    - `downloads`: download attempts on the storage host; `downloads_served` full
      bodies sent; `downloads_with_auth` carried an Authorization header (refused);
      `downloads_expired`, `downloads_truncated` as they say.
    - `errors_injected`, `drops`: faults sent; `batches_failed`: batches that ended `failed`.
    - `in_flight`, `peak_concurrency`: API requests being handled now, and at most at once.
    """

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0
    queued: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    sync_submissions: Counter[str] = field(default_factory=Counter)
    async_submissions: Counter[str] = field(default_factory=Counter)
    pages_billed: int = 0
    polls: Counter[str] = field(default_factory=Counter)
    downloads: int = 0
    downloads_served: int = 0
    downloads_with_auth: int = 0
    downloads_expired: int = 0
    downloads_truncated: int = 0
    errors_injected: int = 0
    drops: int = 0
    batches_failed: int = 0
    in_flight: int = 0
    peak_concurrency: int = 0

    def submissions(self, sha256: str) -> int:
        """Sync and async submissions of one document taken together."""
        return self.sync_submissions[sha256] + self.async_submissions[sha256]

    def reset(self) -> None:
        """Zero every counter (`in_flight` keeps counting what is still running)."""
        in_flight = self.in_flight
        for item in fields(self):
            value = getattr(self, item.name)
            setattr(self, item.name, Counter() if isinstance(value, Counter) else 0)
        self.in_flight = in_flight
        self.peak_concurrency = in_flight

    def copy(self) -> EmulatorStats:
        """The counters as they are now, in a copy that later requests leave alone."""
        copied = EmulatorStats()
        for item in fields(self):
            value = getattr(self, item.name)
            setattr(copied, item.name, Counter(value) if isinstance(value, Counter) else value)
        return copied

    def as_dict(self) -> dict[str, object]:
        """Plain data (JSON-ready; counter keys as strings)."""
        out: dict[str, object] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            out[item.name] = (
                {str(k): v for k, v in value.items()} if isinstance(value, Counter) else value
            )
        return out
