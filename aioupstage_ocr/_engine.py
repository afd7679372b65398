"""Prepare and send one document: the one routing path, and the submit ledger.

```python
engine = Engine(transport, model=..., document_limits=..., polling=..., limits=...)
prepared = await engine.prepare(path, mode="auto")      # preflight, off the event loop
sent = await engine.send(prepared, mode="auto")           # sync; a sync time-out goes async once
result = sent.result or await engine.wait(sent.request_id)
```

`AsyncUpstageOCR` (one document) and `BulkRun` (thousands) both send through
`Engine.send`, so the route "sync, and on a sync time-out async, once" exists
once. Hooks come with each call (`before_send`, `on_retry`), as urllib3 takes
`retries=` per request: two runs on one client never share a slot.

An async request whose batches failed is repaired by `Engine.finish`: what
came back is kept, only the failed batches' pages are cut out and sent again
(a bounded number of tries, with backoff), and merged in; what still fails
is a `PartialResultError` naming the pages, never a shorter document.

A document cut into parts (only some pages wanted, or over a limit: see
`_pages`) goes through `Engine.run_parts`: each part sent by the same path,
waited for, and the results joined into one.

Every async submit goes through the `SubmitLedger`, which keeps one document
from being paid twice when a submit fails after its upload (see
`AsyncUpstageOCR.submit` for the rule, `_reconcile` for the matching).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import aiohttp
import anyio

from . import _reconcile
from ._config import (
    DEFAULT_DOCUMENT_LIMITS,
    DEFAULT_LIMITS,
    DEFAULT_MODEL,
    DEFAULT_POLLING,
    DocumentLimits,
    Limits,
    Polling,
)
from ._exceptions import (
    AmbiguousSubmitError,
    APIError,
    APIStatusError,
    APITimeoutError,
    BatchFailedError,
    PartialResultError,
    ResponseValidationError,
)
from ._models import (
    OCRResult,
    RequestStatus,
    RequestSummary,
    merge_batches,
    parse_request_list,
    parse_request_status,
    parse_result,
)
from ._pages import CUTTABLE, PageRanges, join_parts, page_list
from ._poller import PollScheduler, ProgressHook
from ._preflight import (
    Document,
    Mode,
    PreparedDocument,
    cut_pages,
    prepare,
    prepare_inline,
)
from ._retry import is_retryable, is_testing
from ._transport import RetryHook, Transport

__all__ = [
    "BeforeSend",
    "Engine",
    "KnownRequest",
    "PartSend",
    "PartWait",
    "Sent",
    "SubmitLedger",
    "sync_timed_out",
]

logger = logging.getLogger("aioupstage_ocr")

#: Tries to send a failed batch's pages again before they are reported missing.
REPAIR_TRIES = 3

#: Awaited with the document right before it is sent (again with route "async"
#: when a sync time-out goes async); what it raises stops the send.
BeforeSend = Callable[[PreparedDocument], Awaitable[None]]


#: How `run_parts` sends one part (`Engine.send`, or a bulk run's sender with its hooks).
PartSend = Callable[[PreparedDocument], Awaitable["Sent"]]
#: How `run_parts` waits for one part's async request.
PartWait = Callable[[str], Awaitable[OCRResult]]
#: A part's request id from an earlier run (a resume journal), or None to send it.
KnownRequest = Callable[[PreparedDocument], Awaitable[str | None]]


def sync_timed_out(exc: BaseException) -> bool:
    """A sync call that ran out of time: the client's own time-out or the server's 504.

    A time-out to connect is not one: the service never saw the call.
    """
    if isinstance(exc, APITimeoutError):
        return not isinstance(exc.__cause__, aiohttp.ConnectionTimeoutError)
    return isinstance(exc, APIStatusError) and exc.status_code == 504


@dataclass(frozen=True, slots=True)
class Sent:
    """Where a document went: the sync `result`, or the accepted async `request_id`.

    `document` is as last routed (`route` "async" after a sync time-out went async).
    """

    document: PreparedDocument
    result: OCRResult | None = None
    request_id: str | None = None


def _partial(
    name: str,
    came_back: list[tuple[tuple[int, ...], OCRResult]],
    missing: tuple[int, ...],
    reason: str,
) -> PartialResultError:
    """A `PartialResultError` whose `partial` joins what came back (`missingPages` in raw)."""
    missing = tuple(sorted(missing))
    came_back = sorted((item for item in came_back if item[0]), key=lambda item: item[0][0])
    if came_back:
        joined = join_parts(name, came_back)
        partial = OCRResult(
            joined.pages, joined.model, {**joined.raw, "missingPages": list(missing)}
        )
    else:
        partial = OCRResult(
            (), None, {"pages": [], "sourcePages": [], "missingPages": list(missing)}
        )
    return PartialResultError(
        name, missing, partial, f"pages {page_list(missing)} did not come back: {reason}"
    )


class Engine:
    """Sends documents for one client: preflight, routing, the submit ledger, waiting."""

    def __init__(
        self,
        transport: Transport,
        *,
        model: str = DEFAULT_MODEL,
        document_limits: DocumentLimits = DEFAULT_DOCUMENT_LIMITS,
        polling: Polling = DEFAULT_POLLING,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.transport = transport
        self.model = model
        self.document_limits = document_limits
        self.polling = polling
        self.limits = limits
        self.ledger = SubmitLedger(transport)
        #: An answer of this client's showed the key works and there is credit
        #: (a document was taken): later bulk runs skip the key gate and its probe.
        self.key_proven = False

    async def prepare(
        self,
        document: Document,
        *,
        filename: str | None = None,
        mode: Mode = "auto",
        pages: PageRanges | None = None,
    ) -> PreparedDocument:
        """Preflight off the event loop (a small image or plain PDF on it: `prepare_inline`):
        a `PreparedDocument` or a `DocumentError`."""
        call = partial(
            prepare_inline,
            document,
            filename=filename,
            mode=mode,
            limits=self.document_limits,
            pages=pages,
        )
        done = call()
        if done is not None:
            return done
        return await anyio.to_thread.run_sync(partial(prepare, *call.args, **call.keywords))

    async def run_parts(
        self,
        document: PreparedDocument,
        *,
        send: PartSend,
        wait: PartWait,
        known: KnownRequest | None = None,
    ) -> OCRResult:
        """Send each of `document.parts` (`send`), wait for those that went async, join them.

        Parts go at once (the transport's limits pace them). A part `known`
        gives a request id for is waited for, never sent again. Every part is
        seen to its end, so none that was paid for is dropped; then the first
        part's error, by page order, is raised, noting the pages missing.
        """
        parts = document.parts
        results: list[OCRResult | None] = [None] * len(parts)
        errors: dict[int, Exception] = {}

        async def one(index: int, part: PreparedDocument) -> None:
            try:
                request_id = await known(part) if known is not None else None
                if request_id is None:
                    sent = await send(part)
                    if sent.result is not None:
                        results[index] = sent.result
                        return
                    request_id = sent.request_id
                    assert request_id is not None
                results[index] = await self.finish(
                    part, request_id, send=send, wait=wait, known=known
                )
            except Exception as exc:  # noqa: BLE001 - each part's failure is told below
                errors[index] = exc

        async with anyio.create_task_group() as group:
            for index, part in enumerate(parts):
                group.start_soon(one, index, part)
        if errors and all(isinstance(e, PartialResultError) for e in errors.values()):
            raise _partial(
                document.name,
                [
                    (part.source_pages or (), result)
                    for part, result in zip(parts, results, strict=True)
                    if result is not None
                ]
                + [
                    (error.partial.source_pages or (), error.partial)
                    for error in errors.values()
                    if isinstance(error, PartialResultError) and error.partial.num_pages
                ],
                tuple(
                    p
                    for e in errors.values()
                    if isinstance(e, PartialResultError)
                    for p in e.missing_pages
                ),
                str(errors[min(errors)]),
            )
        if errors:
            first = errors[min(errors)]
            missing = [p for i in sorted(errors) for p in parts[i].source_pages or ()]
            first.add_note(
                f"{document.name}: pages {page_list(missing)} (of the {document.pages} sent) "
                "did not come back"
            )
            raise first
        done = [result for result in results if result is not None]
        return join_parts(
            document.name,
            [(part.source_pages or (), result) for part, result in zip(parts, done, strict=True)],
        )

    async def finish(
        self,
        document: PreparedDocument | None,
        request_id: str,
        *,
        send: PartSend,
        wait: PartWait,
        known: KnownRequest | None = None,
    ) -> OCRResult:
        """Wait for `document`'s async request; repair failed batches by their pages alone.

        When batches failed (`BatchFailedError` with `failed_ranges`), the
        pages that came back are kept, and each failed range is cut out of
        `document` and sent again (`known` first: an earlier run may have sent
        it), up to `REPAIR_TRIES` times with backoff, then merged in. Pages that
        still fail raise `PartialResultError` with what came back. Without the
        document (or one that cannot be cut), the `BatchFailedError` is raised.
        """
        try:
            return await wait(request_id)
        except BatchFailedError as exc:
            if document is None or not exc.failed_ranges or document.format not in CUTTABLE:
                raise
            failure = exc
        items: list[tuple[int, int, OCRResult]] = list(failure.completed)
        lost: list[tuple[int, int]] = []
        reasons: list[str] = []
        for start, end in failure.failed_ranges:
            logger.warning(
                "%s: request %s: pages %d-%d failed (%s); sending only them again",
                document.name,
                request_id,
                start,
                end,
                failure.failure_message or "no reason given",
            )
            repaired, reason = await self._resend(
                document, range(start, end + 1), request_id, send=send, wait=wait, known=known
            )
            if repaired is None:
                lost.append((start, end))
                reasons.append(reason)
            else:
                items.append((start, end, repaired))
        if not lost:
            return merge_batches(request_id, failure.total_pages, items)
        originals = document.source_pages or tuple(range(1, failure.total_pages + 1))
        items.sort(key=lambda item: item[0])
        missing = tuple(originals[p - 1] for s, e in lost for p in range(s, e + 1))
        raise _partial(
            document.name,
            [(tuple(originals[p - 1] for p in range(s, e + 1)), r) for s, e, r in items],
            missing,
            f"request {request_id}: batch failed, and {REPAIR_TRIES} tries to send only its "
            f"pages again failed too ({'; '.join(reasons)})",
        )

    async def _resend(
        self,
        document: PreparedDocument,
        pages: range,
        request_id: str,
        *,
        send: PartSend,
        wait: PartWait,
        known: KnownRequest | None,
    ) -> tuple[OCRResult | None, str]:
        """`pages` of `document` sent on their own, up to `REPAIR_TRIES` times; else why not."""
        part = await anyio.to_thread.run_sync(
            partial(
                cut_pages,
                document,
                pages,
                mode=document.route,
                limits=self.document_limits,
            )
        )
        part = dataclasses.replace(part, repair_of=request_id)
        reason = ""
        for attempt in range(1, REPAIR_TRIES + 1):
            if attempt > 1 and not is_testing():
                cap = self.transport.policy.backoff_cap(attempt - 1)
                await anyio.sleep(random.uniform(0, cap))  # full jitter, as the retries
            try:
                given = await known(part) if known is not None and attempt == 1 else None
                if given is None:
                    sent = await send(part)
                    if sent.result is not None:
                        return sent.result, ""
                    assert sent.request_id is not None
                    given = sent.request_id
                return await wait(given), ""
            except (BatchFailedError, APIError) as exc:
                reason = str(exc)
        return None, reason

    async def send(
        self,
        document: PreparedDocument,
        *,
        mode: Mode = "auto",
        schema: str | None = None,
        before_send: BeforeSend | None = None,
        on_retry: RetryHook | None = None,
    ) -> Sent:
        """Send a prepared document by its route: sync (in auto mode, async once on a
        sync time-out) or async. The one routing path."""
        if document.route == "sync":
            if before_send is not None:
                await before_send(document)
            result = await self.run_sync(
                document, schema=schema, fallback=mode == "auto", on_retry=on_retry
            )
            if result is not None:
                return Sent(document, result=result)
            document = document.with_route("async")
        if before_send is not None:
            await before_send(document)
        request_id = await self.submit(document, schema=schema, on_retry=on_retry)
        return Sent(document, request_id=request_id)

    async def run_sync(
        self,
        document: PreparedDocument,
        *,
        schema: str | None = None,
        fallback: bool = False,
        on_retry: RetryHook | None = None,
    ) -> OCRResult | None:
        """The sync call; with `fallback`, None when it timed out (go async instead).

        With `fallback`, a time-out is not retried on the sync endpoint: the
        async endpoint has no such limit.
        """

        def retry_if(exc: BaseException) -> bool:
            return is_retryable(exc) and not (fallback and sync_timed_out(exc))

        try:
            body = await self.transport.ocr_sync(
                document, model=self.model, schema=schema, retry_if=retry_if, on_retry=on_retry
            )
        except APIError as exc:
            if fallback and sync_timed_out(exc):
                logger.info("%s: the sync call timed out (%s); going async", document.name, exc)
                return None
            raise
        return parse_result(body, source=document.name)

    async def submit(
        self,
        document: PreparedDocument,
        *,
        schema: str | None = None,
        on_retry: RetryHook | None = None,
    ) -> str:
        """The async submit of a prepared document, guarded against paying twice."""
        return await self.transport.submit(
            document,
            model=self.model,
            schema=schema,
            guard=self.ledger.guard(document, on_retry=on_retry),
            on_retry=on_retry,
        )

    def scheduler(
        self, *, on_progress: ProgressHook | None = None, on_retry: RetryHook | None = None
    ) -> PollScheduler:
        """A `PollScheduler` with this client's polling and limits (enter it to use it)."""
        return PollScheduler(
            self.transport,
            self.polling,
            self.limits,
            on_progress=on_progress,
            on_retry=on_retry,
        )

    async def wait(self, request_id: str, *, on_progress: ProgressHook | None = None) -> OCRResult:
        """Poll one request to its merged result."""
        self.ledger.remember(request_id)
        async with self.scheduler() as scheduler:
            return await scheduler.track(request_id, on_progress=on_progress)

    async def get_request(
        self, request_id: str, *, on_retry: RetryHook | None = None
    ) -> RequestStatus:
        """One status of an async request; its id is known from then on."""
        self.ledger.remember(request_id)
        body = await self.transport.get_request(request_id, on_retry=on_retry)
        return parse_request_status(body, source=f"request {request_id}")

    async def list_requests(
        self, *, on_retry: RetryHook | None = None
    ) -> tuple[RequestSummary, ...]:
        """The service's list of past requests."""
        return parse_request_list(await self.transport.list_requests(on_retry=on_retry))

    def submit_window(self, started: float, ended: float | None = None) -> _reconcile.Window:
        """When (server clock) a request created by a submit sent at `started` may be stamped.

        `started` and `ended` are `time.time()` values; without `ended`, the
        longest a submit can take with its retries (`longest_submit`).
        """
        end = started + self.longest_submit if ended is None else ended
        return _reconcile.Window.of(
            started,
            end,
            offset=self.transport.server_time() - time.time(),
            clock_known=self.transport.clock_known,
        )

    @property
    def longest_submit(self) -> float:
        """Seconds a submit can take from its first attempt to its last answer."""
        retries = self.transport.policy.retries
        return retries.attempts * (self.transport.timeouts.request + retries.maximum)


# ---------------------------------------------------------------------- submit ledger

_Outcome = Literal["sending", "accepted", "refused", "resolving", "adopted", "unresolved"]


@dataclass(slots=True, eq=False)
class _Attempt:
    """One async submit attempt, with its wall-clock window."""

    ledger: SubmitLedger
    document: PreparedDocument
    started: float
    on_retry: RetryHook | None = None
    ended: float | None = None
    outcome: _Outcome = "sending"
    ended_event: anyio.Event | None = None

    def end(self, outcome: _Outcome) -> None:
        self.outcome = outcome
        if self.ended is None:
            self.ended = time.time()
            if self.ended_event is not None:
                self.ended_event.set()
        self.ledger._prune()

    def accepted(self, request_id: str) -> None:
        self.ledger.remember(request_id)
        self.end("accepted")

    def refused(self) -> None:
        self.end("refused")

    def abandoned(self) -> None:
        self.end("unresolved")

    async def ambiguous(self, error: APIError) -> str | None:
        self.end("resolving")
        return await self.ledger._resolve(self, error)


@dataclass(slots=True, eq=False)
class _Guard:
    ledger: SubmitLedger
    document: PreparedDocument
    on_retry: RetryHook | None = None

    def begin(self) -> _Attempt:
        attempt = _Attempt(self.ledger, self.document, started=time.time(), on_retry=self.on_retry)
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

    def guard(self, document: PreparedDocument, *, on_retry: RetryHook | None = None) -> _Guard:
        """The `SubmitGuard` for one document's submit (`on_retry`: its list and status reads)."""
        return _Guard(self, document, on_retry)

    def _prune(self) -> None:
        """Keep attempts still open, and unresolved ones a later window may still meet.

        An accepted or adopted attempt's id is known and a refused one created
        nothing: neither can confuse a later resolution, so they go at once.
        """
        opened = [a.started for a in self._attempts if a.outcome in ("sending", "resolving")]
        cutoff = min([*opened, time.time()]) - 2 * _reconcile.MARGIN_BLIND
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
            body = await self._transport.list_requests(on_retry=attempt.on_retry)
            summaries = parse_request_list(body)
        except (APIError, ResponseValidationError) as exc:
            attempt.end("unresolved")
            raise AmbiguousSubmitError(
                name,
                f"the submit may have reached the service ({error}), and the request list "
                f"that would tell could not be read ({exc})",
            ) from error
        listed_at = time.time()
        margin = _reconcile.margin(self._transport.clock_known)
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
        window = _reconcile.Window.of(
            attempt.started,
            attempt.ended,
            offset=self._transport.server_time() - time.time(),
            clock_known=self._transport.clock_known,
        )
        candidates = _reconcile.candidates(summaries, window, self.known)
        if not candidates:
            logger.info("%s: the ambiguous submit created no request; sending it again", name)
            attempt.end("refused")
            return None
        others_open = any(a.outcome in ("resolving", "unresolved") for a in others)
        if len(candidates) == 1 and not others_open:
            candidate = candidates[0]
            if await self._pages_match(attempt, candidate):
                self.remember(candidate)
                logger.warning(
                    "%s: the submit dropped after the upload; adopting request %s, the only "
                    "new request in its window",
                    name,
                    candidate,
                )
                attempt.end("adopted")
                return candidate
            attempt.end("refused")
            return None
        attempt.end("unresolved")
        raise AmbiguousSubmitError(
            name,
            f"the submit may have reached the service ({error}); {len(candidates)} request(s) "
            "created meanwhile could be it; not sending it again (that could pay twice)",
            candidates=tuple(candidates),
        ) from error

    async def _pages_match(self, attempt: _Attempt, request_id: str) -> bool:
        """False only when both page counts are known and differ (someone else's request)."""
        if attempt.document.pages is None:
            return True
        try:
            body = await self._transport.get_request(request_id, on_retry=attempt.on_retry)
            status = parse_request_status(body, source=f"request {request_id}")
        except (APIError, ResponseValidationError):
            return True  # cannot tell: the time window alone decides
        return _reconcile.pages_fit(attempt.document.pages, status.total_pages)
