"""Traces: OpenTelemetry spans when `opentelemetry-api` is installed, nothing otherwise.

Two kinds of span, from the tracer `aioupstage_ocr` of the global provider:

- `upstage.ocr.document`: one per document (`ocr()`, each document of a bulk
  run), from preflight to its merged result or its error. Attributes:
  `upstage.ocr.document` (its name), `upstage.ocr.request_id`,
  `upstage.ocr.route` (sync / async), `upstage.ocr.pages`,
  `upstage.ocr.exchanges`, `upstage.ocr.retries`, `upstage.ocr.rate_limited`
  (429s answered), `upstage.ocr.paced_s` (seconds its requests waited for
  the pacer: the rate limit and any `Retry-After` pause).
- `upstage.ocr.http`: one per HTTP exchange (a child of its document's span),
  with `http.request.method`, `url.full` (never with a query string: signed
  links keep their signature there), `server.address`,
  `http.response.status_code`, `upstage.ocr.route` (sync_ocr / request /
  download) and `upstage.ocr.request_id` where known.

An error sets the span's status to ERROR with the exception's type only (a
message might hold a URL). No header is ever recorded, so the key never is.
The same fields go on the log records of retries (`extra=fields()`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from yarl import URL

from ._storage import safe_url

_trace: Any
try:  # the optional extra `[otel]`
    from opentelemetry import trace as _otel_trace

    _trace = _otel_trace
except ImportError:  # pragma: no cover - exercised by a test that hides the package
    _trace = None

__all__ = [
    "Document",
    "Exchange",
    "current",
    "enabled",
    "exchange",
    "fields",
    "note_paced",
    "note_retry",
]

TRACER = "aioupstage_ocr"

_UNKNOWN = object()
#: A provider named in the environment is loaded by the API on first use.
_PROVIDER_IN_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ

logger = logging.getLogger("aioupstage_ocr")


def enabled() -> bool:
    """Whether spans are made: `opentelemetry-api` imported and a tracer provider set.

    Until the app sets a provider, the API's own is a proxy whose spans record
    nothing: they are not made at all then (a span costs tens of microseconds).
    """
    if _trace is None:
        return False
    if getattr(_trace, "_TRACER_PROVIDER", _UNKNOWN) is None and not _PROVIDER_IN_ENV:
        return False  # none set: the same answer as the API's, without its environ lookup
    provider = _trace.get_tracer_provider()
    return not isinstance(provider, _trace.ProxyTracerProvider | _trace.NoOpTracerProvider)


class Document:
    """One document's span and the counts its exchanges add to it.

    `with Document(name).active():` makes it current (spans of exchanges in
    this task, and tasks started from it, are its children); `end()` ends it.
    """

    __slots__ = (
        "exchanges",
        "name",
        "paced_s",
        "pages",
        "rate_limited",
        "request_id",
        "retries",
        "route",
        "span",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.request_id: str | None = None
        self.route: str | None = None
        self.pages: int | None = None
        self.exchanges = 0
        self.retries = 0
        self.rate_limited = 0
        self.paced_s = 0.0
        self.span: Any = None
        if enabled():
            self.span = _trace.get_tracer(TRACER).start_span(
                "upstage.ocr.document", attributes={"upstage.ocr.document": name}
            )

    @contextlib.contextmanager
    def active(self) -> Iterator[Document]:
        """This document is the one the exchanges in this block count for."""
        token = _current.set(self)
        try:
            if self.span is not None:
                with _trace.use_span(self.span, end_on_exit=False):
                    yield self
            else:
                yield self
        finally:
            _current.reset(token)

    def end(self, error: BaseException | None = None) -> None:
        """End the span with the counts (and the error's type, if it failed)."""
        span = self.span
        if span is None:
            return
        self.span = None
        for key, value in self.attributes().items():
            span.set_attribute(key, value)
        if error is not None:
            span.set_status(_trace.Status(_trace.StatusCode.ERROR, type(error).__name__))
            span.set_attribute("error.type", type(error).__name__)
        span.end()

    def attributes(self) -> dict[str, str | int | float]:
        """The span's attributes as they are now."""
        found: dict[str, str | int | float] = {
            "upstage.ocr.document": self.name,
            "upstage.ocr.exchanges": self.exchanges,
            "upstage.ocr.retries": self.retries,
            "upstage.ocr.rate_limited": self.rate_limited,
            "upstage.ocr.paced_s": round(self.paced_s, 6),
        }
        if self.request_id is not None:
            found["upstage.ocr.request_id"] = self.request_id
        if self.route is not None:
            found["upstage.ocr.route"] = self.route
        if self.pages is not None:
            found["upstage.ocr.pages"] = self.pages
        return found


_current: ContextVar[Document | None] = ContextVar("aioupstage_ocr_document", default=None)


def current() -> Document | None:
    """The document the running task works for, if any."""
    return _current.get()


def fields() -> dict[str, str | int | float]:
    """The current document's fields for a log record's `extra` (names with `_`)."""
    document = _current.get()
    if document is None:
        return {}
    return {key.replace(".", "_"): value for key, value in document.attributes().items()}


class Exchange:
    """One HTTP exchange's span (if any) and what it adds to its document."""

    __slots__ = ("document", "span", "started")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.document = _current.get()
        self.started = time.monotonic()
        if self.document is not None:
            self.document.exchanges += 1

    def answered(self, status: int) -> None:
        """The response's status."""
        if self.span is not None:
            self.span.set_attribute("http.response.status_code", status)
            if status >= 400:
                self.span.set_status(_trace.Status(_trace.StatusCode.ERROR, f"HTTP {status}"))
        if status == 429 and self.document is not None:
            self.document.rate_limited += 1


def note_retry() -> None:
    """A retry of a request of the current document."""
    document = _current.get()
    if document is not None:
        document.retries += 1


def note_paced(seconds: float) -> None:
    """A request of the current document waited `seconds` for the pacer."""
    document = _current.get()
    if document is not None and seconds > 0:
        document.paced_s += seconds


def exchange(
    method: str, url: str | URL, *, route: str | None = None, request_id: str | None = None
) -> contextlib.AbstractContextManager[Exchange]:
    """A span for one HTTP exchange (a child of the current document's); with no
    tracer provider, only the document's counts (and no generator to run)."""
    if not enabled():
        return contextlib.nullcontext(Exchange(None))
    return _exchange_span(method, url, route=route, request_id=request_id)


@contextlib.contextmanager
def _exchange_span(
    method: str, url: str | URL, *, route: str | None, request_id: str | None
) -> Iterator[Exchange]:
    clean = URL(safe_url(url))
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.full": str(clean),
        "server.address": clean.host or "",
    }
    if clean.port is not None:
        attributes["server.port"] = clean.port
    if route is not None:
        attributes["upstage.ocr.route"] = route
    if request_id is not None:
        attributes["upstage.ocr.request_id"] = request_id
    tracer = _trace.get_tracer(TRACER)
    with tracer.start_as_current_span(
        "upstage.ocr.http",
        kind=_trace.SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        one = Exchange(span)
        try:
            yield one
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(_trace.Status(_trace.StatusCode.ERROR, type(exc).__name__))
            raise
