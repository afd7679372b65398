"""`AsyncUpstageOCR`: one document done right.

```python
async with AsyncUpstageOCR() as client:          # key from UPSTAGE_API_KEY
    result = await client.ocr("scan.pdf")         # auto: sync up to 100 pages, else async
    request_id = await client.submit("big.pdf")   # async endpoint only
    result = await client.wait(request_id)        # poll, download, merge
```

The pieces it joins are built for reuse by the bulk pipeline: `_preflight`
judges and routes a document, `_transport` does all HTTP (limits, pacing,
retries), `_poller.PollScheduler` waits for many requests at once, and the
`SubmitLedger` here keeps async submits from being sent twice.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Literal

import aiohttp
import anyio

from ._bulk import BulkEvent, BulkRun, Resume, SubmitHook, close_runs
from ._config import (
    DEFAULT_DOCUMENT_LIMITS,
    DEFAULT_LIMITS,
    DEFAULT_MODEL,
    DEFAULT_POLLING,
    DEFAULT_RATE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUTS,
    DocumentLimits,
    Limits,
    Polling,
    RateLimit,
    Retries,
    Timeouts,
    resolve_api_key,
    resolve_base_url,
)
from ._exceptions import (
    AmbiguousSubmitError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ResponseValidationError,
    WaitTimeoutError,
)
from ._models import (
    OCRResult,
    RequestStatus,
    RequestSummary,
    parse_request_list,
    parse_request_status,
    parse_result,
)
from ._poller import PollScheduler, ProgressHook
from ._preflight import Document, Mode, PreparedDocument, prepare
from ._retry import is_retryable
from ._transport import Transport

__all__ = ["AsyncUpstageOCR", "SubmitLedger"]

logger = logging.getLogger("aioupstage_ocr")

#: Seconds either side of an ambiguous submit in which a listed request may be it,
#: when the server's clock is known from `Date` headers (whole seconds) ...
_WINDOW_MARGIN = 2.0
#: ... and when it is not (clock skew unknown).
_WINDOW_MARGIN_BLIND = 300.0


def sync_timed_out(exc: BaseException) -> bool:
    """A sync call that ran out of time: the client's own time-out or the server's 504.

    A time-out to connect is not one: the service never saw the call.
    """
    if isinstance(exc, APITimeoutError):
        return not isinstance(exc.__cause__, aiohttp.ConnectionTimeoutError)
    return isinstance(exc, APIStatusError) and exc.status_code == 504


class AsyncUpstageOCR:
    """An asyncio client for the Upstage OCR API.

    The key comes from `api_key` or `UPSTAGE_API_KEY` (`MissingAPIKeyError` on
    the first request without one); the base URL from `base_url`,
    `UPSTAGE_BASE_URL`, or the service's. One `aiohttp.ClientSession` serves the
    client (or the `session` given, which it leaves open); close it with
    `async with` or `await aclose()`.

    Retries (connection errors, 408, 409, 429, 5xx) follow `retries`. A sync
    call that dropped is sent again: a sync request leaves nothing behind on
    the service to look up, so sending it again is the only way to get the
    result, and the most it can cost is paying once more for the pages of that
    one document. An async submit is different (see `submit`).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        limits: Limits = DEFAULT_LIMITS,
        retries: Retries = DEFAULT_RETRIES,
        rate: RateLimit = DEFAULT_RATE,
        document_limits: DocumentLimits = DEFAULT_DOCUMENT_LIMITS,
        polling: Polling = DEFAULT_POLLING,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self.model = model
        self.timeouts = timeouts
        self.limits = limits
        self.retries = retries
        self.rate = rate
        self.document_limits = document_limits
        self.polling = polling
        self._transport = Transport(
            api_key=resolve_api_key(api_key),
            base_url=self.base_url,
            timeouts=timeouts,
            limits=limits,
            retries=retries,
            rate=rate,
            session=session,
        )
        self._ledger = SubmitLedger(self._transport)

    def __repr__(self) -> str:
        return f"AsyncUpstageOCR(base_url={self.base_url!r}, model={self.model!r})"

    async def __aenter__(self) -> AsyncUpstageOCR:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop any bulk run still going, then close the HTTP session.

        A session given to the client stays open.
        """
        await close_runs(self)
        await self._transport.aclose()

    # ------------------------------------------------------------------ public API

    async def ocr(
        self,
        document: Document,
        *,
        mode: Mode = "auto",
        filename: str | None = None,
        schema: str | None = None,
    ) -> OCRResult:
        """OCR one document: a path, bytes (name it with `filename`) or a binary file object.

        `mode="auto"` sends up to `DocumentLimits.sync_max_pages` pages to the sync
        endpoint and up to `async_max_pages` to the async one (submit, wait,
        merge); more is refused before uploading. In auto mode a sync call that
        times out (the service's 504 or `Timeouts.sync_ocr`) goes again, once,
        through the async endpoint. `"sync"` and `"async"` force an endpoint.
        `schema` (`"clova"`, `"google"`) is sent as the service's `schema` field;
        the vendor formats it asks for are not the shapes `OCRResult` reads, so
        such a call raises `ResponseValidationError`, whose `body` holds them.
        """
        prepared = await self._prepare(document, filename=filename, mode=mode)
        return await self._ocr_prepared(prepared, mode=mode, schema=schema)

    async def submit(
        self, document: Document, *, filename: str | None = None, schema: str | None = None
    ) -> str:
        """Submit to the async endpoint; the request id, for `wait` or `get_request`.

        An async submit is never sent again blindly. When an attempt fails after
        its body went out (a drop, a time-out, a gateway's 502/504), the service
        may hold a request for it, and a second one would be paid twice. So the
        client first reads `list_requests()` and looks for requests created in
        that attempt's time window that it does not already know:

        - none: the attempt created nothing, and it is sent again (per `retries`);
        - exactly one, while no other submit of this client in that window is
          unaccounted for, and with the document's page count where both are
          known: that is the request, and its id is returned;
        - otherwise (several, or another of our submits may own it):
          `AmbiguousSubmitError` with `candidates`, rather than a guess that could
          pay twice or hand one document another's result.

        Other submits of this client sent before the list came back are waited
        for, so the ids of those that succeeded become known; ids this client
        knows (submitted, adopted, asked about) are never candidates. Another
        process using the same key in that window can still make it ambiguous.
        """
        prepared = await self._prepare(document, filename=filename, mode="async")
        return await self._submit_prepared(prepared, schema=schema)

    def ocr_many(
        self,
        documents: Iterable[Document | Resume] | AsyncIterable[Document | Resume],
        *,
        mode: Mode = "auto",
        ordered: bool = False,
        schema: str | None = None,
        max_pending: int | None = None,
        on_event: Callable[[BulkEvent], None] | None = None,
        before_submit: SubmitHook | None = None,
        after_submit: SubmitHook | None = None,
    ) -> BulkRun:
        """OCR many documents at once; an async iterator of `BulkItem` as each finishes.

        ```python
        async for item in client.ocr_many(paths):
            print(item.source, item.result or item.error)
        ```

        One bad document never stops the others: each item carries a `result`
        or an `error`. A failure that would hit every document alike (a refused
        key, no credit) ends the run early with that one error. See `BulkRun`
        for the stages, the hooks and `open_requests`.
        """
        return BulkRun(
            self,
            documents,
            mode=mode,
            ordered=ordered,
            schema=schema,
            max_pending=max_pending,
            on_event=on_event,
            before_submit=before_submit,
            after_submit=after_submit,
        )

    async def get_request(self, request_id: str) -> RequestStatus:
        """One status of an async request (batches, pages done, links)."""
        self._ledger.remember(request_id)
        body = await self._transport.get_request(request_id)
        return parse_request_status(body, source=f"request {request_id}")

    async def wait(
        self,
        request_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the documented API; raises WaitTimeoutError
        on_progress: ProgressHook | None = None,
    ) -> OCRResult:
        """Wait for an async request: poll, download each batch as it completes, merge.

        Polls back off from `Polling.initial` to `Polling.maximum` with jitter,
        and start over when progress moves. Downloads carry no Authorization
        header; an expired link gets a fresh one from one status re-fetch.
        Raises `RequestFailedError`/`BatchFailedError` with the service's reason,
        `IncompleteResultError` if the batches leave a gap or overlap, and
        `WaitTimeoutError` after `timeout` seconds (the request goes on).
        """
        self._ledger.remember(request_id)
        limit = math.inf if timeout is None else timeout
        with anyio.move_on_after(limit) as scope:
            return await self._wait(request_id, on_progress=on_progress)
        assert scope.cancelled_caught
        raise WaitTimeoutError(request_id, limit)

    async def list_requests(self) -> tuple[RequestSummary, ...]:
        """The service's list of past requests, as sent."""
        return parse_request_list(await self._transport.list_requests())

    # ------------------------------------------------------------------ reusable steps

    async def _prepare(
        self, document: Document, *, filename: str | None = None, mode: Mode = "auto"
    ) -> PreparedDocument:
        """Preflight off the event loop: a `PreparedDocument` or a `DocumentError`."""
        return await anyio.to_thread.run_sync(
            partial(prepare, document, filename=filename, mode=mode, limits=self.document_limits)
        )

    async def _ocr_prepared(
        self,
        document: PreparedDocument,
        *,
        mode: Mode = "auto",
        schema: str | None = None,
        scheduler: PollScheduler | None = None,
    ) -> OCRResult:
        """Route a prepared document: sync (falling back to async once in auto mode) or async."""
        if document.route == "sync":
            result = await self._run_sync(document, schema=schema, fallback=mode == "auto")
            if result is not None:
                return result
            document = document.with_route("async")
        request_id = await self._submit_prepared(document, schema=schema)
        if scheduler is not None:
            return await scheduler.track(request_id)
        return await self._wait(request_id)

    async def _run_sync(
        self, document: PreparedDocument, *, schema: str | None = None, fallback: bool = False
    ) -> OCRResult | None:
        """The sync call; with `fallback`, None when it timed out (go async instead).

        With `fallback`, a time-out is not retried on the sync endpoint: the
        async endpoint has no such limit.
        """

        def retry_if(exc: BaseException) -> bool:
            return is_retryable(exc) and not (fallback and sync_timed_out(exc))

        try:
            body = await self._transport.ocr_sync(
                document, model=self.model, schema=schema, retry_if=retry_if
            )
        except APIError as exc:
            if fallback and sync_timed_out(exc):
                logger.info("%s: the sync call timed out (%s); going async", document.name, exc)
                return None
            raise
        return parse_result(body, source=document.name)

    async def _submit_prepared(
        self, document: PreparedDocument, *, schema: str | None = None
    ) -> str:
        """The async submit of a prepared document, guarded against paying twice."""
        return await self._transport.submit(
            document, model=self.model, schema=schema, guard=self._ledger.guard(document)
        )

    async def _wait(self, request_id: str, *, on_progress: ProgressHook | None = None) -> OCRResult:
        async with PollScheduler(self._transport, self.polling, self.limits) as scheduler:
            return await scheduler.track(request_id, on_progress=on_progress)


# ---------------------------------------------------------------------- submit ledger

_Outcome = Literal["sending", "accepted", "refused", "resolving", "adopted", "unresolved"]


@dataclass(slots=True, eq=False)
class _Attempt:
    """One async submit attempt, with its wall-clock window."""

    ledger: SubmitLedger
    document: PreparedDocument
    started: float
    ended: float | None = None
    outcome: _Outcome = "sending"
    ended_event: anyio.Event | None = None

    def _end(self, outcome: _Outcome) -> None:
        self.outcome = outcome
        if self.ended is None:
            self.ended = time.time()
            if self.ended_event is not None:
                self.ended_event.set()
        self.ledger._prune()

    def accepted(self, request_id: str) -> None:
        self.ledger.remember(request_id)
        self._end("accepted")

    def refused(self) -> None:
        self._end("refused")

    def abandoned(self) -> None:
        self._end("unresolved")

    async def ambiguous(self, error: APIError) -> str | None:
        self._end("resolving")
        return await self.ledger._resolve(self, error)


@dataclass(slots=True, eq=False)
class _Guard:
    ledger: SubmitLedger
    document: PreparedDocument

    def begin(self) -> _Attempt:
        attempt = _Attempt(self.ledger, self.document, started=time.time())
        attempt.ended_event = anyio.Event()
        self.ledger._attempts.append(attempt)
        return attempt


class SubmitLedger:
    """What this client knows about its async submits, to tell an ambiguous one's fate.

    Keeps every request id the client has seen (`remember`: submitted, adopted,
    asked about) and the time window of each submit attempt in flight or left
    unresolved. Memory stays bounded by the submits in flight (plus the rare
    unresolved ones of the last minutes).
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self.known: set[str] = set()
        self._attempts: list[_Attempt] = []
        self._lock: anyio.Lock | None = None

    def remember(self, *request_ids: str) -> None:
        """Ids this client owns or asked about: never candidates for an ambiguous submit."""
        self.known.update(request_ids)

    def guard(self, document: PreparedDocument) -> _Guard:
        """The `SubmitGuard` for one document's submit."""
        return _Guard(self, document)

    def _margin(self) -> float:
        return _WINDOW_MARGIN if self._transport.clock_known else _WINDOW_MARGIN_BLIND

    def _prune(self) -> None:
        """Keep attempts still open, and unresolved ones a later window may still meet.

        An accepted or adopted attempt's id is known and a refused one created
        nothing: neither can confuse a later resolution, so they go at once.
        """
        opened = [a.started for a in self._attempts if a.outcome in ("sending", "resolving")]
        cutoff = min([*opened, time.time()]) - 2 * _WINDOW_MARGIN_BLIND
        self._attempts = [
            a
            for a in self._attempts
            if a.outcome in ("sending", "resolving")
            or (a.outcome == "unresolved" and (a.ended or 0.0) >= cutoff)
        ]

    async def _resolve(self, attempt: _Attempt, error: APIError) -> str | None:
        """After an ambiguous attempt: an id to adopt, None to send again, or raise.

        Decisions are taken one at a time. The list is read first; then every
        other attempt sent before it came back, and near this one's window, is
        waited for, so the ids of those that succeeded are known. An attempt
        sent after the list came back cannot be in it.
        """
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            return await self._decide(attempt, error)

    async def _decide(self, attempt: _Attempt, error: APIError) -> str | None:
        assert attempt.ended is not None
        name = attempt.document.name
        try:
            summaries = parse_request_list(await self._transport.list_requests())
        except (APIError, ResponseValidationError) as exc:
            attempt._end("unresolved")
            raise AmbiguousSubmitError(
                name,
                f"the submit may have reached the service ({error}), and the request list "
                f"that would tell could not be read ({exc})",
            ) from error
        listed_at = time.time()
        margin = self._margin()
        others = [
            a
            for a in self._attempts
            if a is not attempt
            and a.started <= listed_at
            and (a.ended is None or a.ended >= attempt.started - margin)
        ]
        for other in others:  # let their answers come in, so their ids are known
            if other.ended_event is not None:
                await other.ended_event.wait()
        offset = self._transport.server_time() - time.time()
        low, high = attempt.started + offset - margin, attempt.ended + offset + margin
        candidates: list[str] = []
        for summary in summaries:
            if summary.id in self.known:
                continue
            when = summary.requested_datetime
            if when is None or low <= when.timestamp() <= high:
                candidates.append(summary.id)
        if not candidates:
            logger.info("%s: the ambiguous submit created no request; sending it again", name)
            attempt._end("refused")
            return None
        others_open = any(a.outcome in ("resolving", "unresolved") for a in others)
        if len(candidates) == 1 and not others_open:
            candidate = candidates[0]
            if await self._pages_match(attempt.document, candidate):
                self.remember(candidate)
                logger.warning(
                    "%s: the submit dropped after the upload; adopting request %s, the only "
                    "new request in its window",
                    name,
                    candidate,
                )
                attempt._end("adopted")
                return candidate
            attempt._end("refused")
            return None
        attempt._end("unresolved")
        raise AmbiguousSubmitError(
            name,
            f"the submit may have reached the service ({error}); {len(candidates)} request(s) "
            "created meanwhile could be it; not sending it again (that could pay twice)",
            candidates=tuple(candidates),
        ) from error

    async def _pages_match(self, document: PreparedDocument, request_id: str) -> bool:
        """False only when both page counts are known and differ (someone else's request)."""
        if document.pages is None:
            return True
        try:
            body = await self._transport.get_request(request_id)
            status = parse_request_status(body, source=f"request {request_id}")
        except (APIError, ResponseValidationError):
            return True  # cannot tell: the time window alone decides
        return not status.total_pages or status.total_pages == document.pages
