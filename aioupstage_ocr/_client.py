"""`AsyncUpstageOCR`: one document done right.

```python
async with AsyncUpstageOCR() as client:          # key from UPSTAGE_API_KEY
    result = await client.ocr("scan.pdf")         # auto: sync up to 100 pages, else async
    request_id = await client.submit("big.pdf")   # async endpoint only
    result = await client.wait(request_id)        # poll, download, merge
```

The client holds the settings and owns what it starts: one `Transport` (all
HTTP: limits, pacing, retries), one `Engine` (preflight, the routing path,
the `SubmitLedger` that keeps async submits from being paid twice, waiting),
and the bulk runs made by `ocr_many`, which `aclose` stops. The bulk runs
send through the same engine.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, Callable, Iterable
from functools import partial
from types import TracebackType

import aiohttp
import anyio

from . import _telemetry as telemetry
from ._bulk import BulkEvent, BulkRun, KnownHook, Resume, SubmitHook
from ._bulk._types import name_of
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
from ._engine import Engine, Sent
from ._exceptions import OCRTimeoutError, TooManyPagesError, UpstageOCRError, WaitTimeoutError
from ._models import OCRResult, RequestStatus, RequestSummary
from ._pages import parse_pages
from ._poller import ProgressHook
from ._preflight import Document, Mode, Plan, PreparedDocument
from ._preflight import plan as plan_document
from ._priority import PriorityName, level_of
from ._ratelimit import Pacer
from ._reconcile import Window
from ._transport import Transport

__all__ = ["AsyncUpstageOCR"]


class AsyncUpstageOCR:
    """An asyncio client for the Upstage OCR API.

    The key comes from `api_key` or `UPSTAGE_API_KEY` (`MissingAPIKeyError` on
    the first request without one); the base URL from `base_url`,
    `UPSTAGE_BASE_URL`, or the service's. One `aiohttp.ClientSession` serves the
    client (or the `session` given, which it leaves open); close it with
    `async with` or `await aclose()`.

    `pacer` replaces the `Pacer` built from `rate`, to share one pace beyond
    this client (`aioupstage_ocr.ray` gives each actor's client one that leases
    from the cluster's budget).

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
        pacer: Pacer | None = None,
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
            pacer=pacer,
        )
        self._engine = Engine(
            self._transport,
            model=model,
            document_limits=document_limits,
            polling=polling,
            limits=limits,
        )
        self._runs: set[BulkRun] = set()  # the bulk runs going, stopped by `aclose`

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
        for run in list(self._runs):
            await run.stop(RuntimeError("the client was closed while this bulk run was going"))
        await self._transport.aclose()

    # ------------------------------------------------------------------ public API

    async def ocr(
        self,
        document: Document,
        *,
        mode: Mode = "auto",
        filename: str | None = None,
        schema: str | None = None,
        pages: str | Iterable[int] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the documented API; raises OCRTimeoutError
        on_accepted: Callable[[str], object] | None = None,
    ) -> OCRResult:
        """OCR one document: a path, bytes (name it with `filename`) or a binary file object.

        `mode="auto"` sends up to `DocumentLimits.sync_max_pages` pages to the sync
        endpoint and up to `async_max_pages` to the async one (submit, wait,
        merge). A PDF or TIFF over `async_max_pages` (in sync mode,
        `sync_max_pages`) or `max_bytes` is cut into parts under both, each its
        own request, and their results joined into one; any other document over
        a limit is refused before uploading. `pages` (`"1-10,20,30-"`, or page
        numbers from 1) sends only those pages, so only they are billed; the
        result's `source_pages` says which page of the original each one is,
        and pages the document does not have raise `PageRangeError` before any
        upload. A failed async batch costs only its own pages: they are cut
        out and sent again (a few tries), and merged in; pages that still fail
        raise `PartialResultError`, whose `partial` holds what came back.
        In auto mode a sync call that times out (the service's 504 or
        `Timeouts.sync_ocr`) goes again, once, through the async endpoint.
        `"sync"` and `"async"` force an endpoint.
        `schema` (`"clova"`, `"google"`) is sent as the service's `schema` field;
        the vendor formats it asks for are not the shapes `OCRResult` reads, so
        such a call raises `ResponseValidationError`, whose `body` holds them.

        `timeout` is one deadline for the whole call (preflight, upload,
        retries, polls, downloads): past it, everything the call started is
        cancelled and `OCRTimeoutError` is raised, with the `request_ids` the
        async endpoint had accepted (they go on; `wait()` collects them without
        paying again). `on_accepted(request_id)` is called as soon as the
        async endpoint accepts the document (or a part of it): an app whose
        call is cancelled (the browser went away) keeps the id from there. A
        cancelled call also notes the accepted ids on its `CancelledError`.
        """
        accepted: list[str] = []
        name = filename or name_of(document, 0).replace("input-0", "the document")
        trace = telemetry.Document(name)
        try:
            with trace.active(), anyio.fail_after(timeout):
                result = await self._ocr(
                    document,
                    mode=mode,
                    filename=filename,
                    schema=schema,
                    pages=pages,
                    accepted=accepted,
                    on_accepted=on_accepted,
                )
        except TimeoutError as exc:
            if timeout is None or isinstance(exc, UpstageOCRError):
                trace.end(exc)
                raise  # a time-out of the service or the transport, not the deadline
            error = OCRTimeoutError(name, timeout, tuple(accepted))
            trace.end(error)
            raise error from None
        except anyio.get_cancelled_exc_class() as exc:
            trace.end(exc)
            if accepted:
                exc.add_note(
                    f"async request {', '.join(accepted)} accepted before the cancel goes "
                    "on: wait() for it"
                )
            raise
        except BaseException as exc:
            trace.end(exc)
            raise
        trace.route = "async" if accepted else "sync"
        trace.pages = result.num_pages
        trace.end()
        return result

    async def _ocr(
        self,
        document: Document,
        *,
        mode: Mode,
        filename: str | None,
        schema: str | None,
        pages: str | Iterable[int] | None,
        accepted: list[str],
        on_accepted: Callable[[str], object] | None,
    ) -> OCRResult:
        ranges = None if pages is None else parse_pages(pages)
        prepared = await self._engine.prepare(document, filename=filename, mode=mode, pages=ranges)
        engine_send = partial(self._engine.send, mode=mode, schema=schema)

        trace = telemetry.current()

        async def send(part: PreparedDocument) -> Sent:
            sent = await engine_send(part)
            if sent.request_id is not None:
                accepted.append(sent.request_id)
                if trace is not None and trace.request_id is None:
                    trace.request_id = sent.request_id
                if on_accepted is not None:
                    on_accepted(sent.request_id)
            return sent

        if prepared.parts:
            return await self._engine.run_parts(prepared, send=send, wait=self._engine.wait)
        sent = await send(prepared)
        if sent.result is not None:
            return sent.result
        assert sent.request_id is not None
        return await self._engine.finish(
            sent.document, sent.request_id, send=send, wait=self._engine.wait
        )

    async def plan(
        self,
        document: Document,
        *,
        mode: Mode = "auto",
        filename: str | None = None,
        pages: str | Iterable[int] | None = None,
    ) -> Plan:
        """How `ocr` would send `document`, uploading nothing: pages, route, parts, or the error.

        The same preflight `ocr` runs (cutting included, so parts are exactly
        those `ocr` would send); a `DocumentError` is returned in `error`, not raised.
        """
        return await anyio.to_thread.run_sync(
            partial(
                plan_document,
                document,
                filename=filename,
                mode=mode,
                limits=self.document_limits,
                pages=None if pages is None else parse_pages(pages),
            )
        )

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
        prepared = await self._engine.prepare(document, filename=filename, mode="async")
        if prepared.parts:
            raise TooManyPagesError(
                prepared.name,
                f"{prepared.pages} pages and {prepared.size} bytes do not fit one request "
                f"(DocumentLimits: {self.document_limits.async_max_pages} pages, "
                f"{self.document_limits.max_bytes} bytes); ocr() cuts it into parts",
            )
        return await self._engine.submit(prepared, schema=schema)

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
        known_part: KnownHook | None = None,
        pages: str | Iterable[int] | None = None,
        max_pages: int | None = None,
        priority: PriorityName = "bulk",
    ) -> BulkRun:
        """OCR many documents at once; an async iterator of `BulkItem` as each finishes.

        ```python
        async for item in client.ocr_many(paths):
            print(item.source, item.result or item.error)
        ```

        One bad document never stops the others: each item carries a `result`
        or an `error`. A failure that would hit every document alike (a refused
        key, no credit) ends the run early with that one error. `pages` and
        cutting into parts work as in `ocr`. `max_pages` caps the pages the run
        sends: once a document would pass it, no more are sent (their items
        carry a `PageBudgetError`). See `BulkRun` for the stages, the
        hooks and `open_requests`.

        `priority`: a bulk run's requests wait behind those of `ocr()`,
        `submit()`, `wait()` and `get_request()` calls on the same client (a web
        app's handlers), keeping 1 grant in 4 of what frees up while both wait
        (a concurrency slot, the pacer's tokens), so it never starves; with
        `"handler"` the run is lifted to their class.
        """
        return BulkRun(
            self._engine,
            documents,
            owner=self._runs,
            mode=mode,
            ordered=ordered,
            schema=schema,
            max_pending=max_pending,
            on_event=on_event,
            before_submit=before_submit,
            after_submit=after_submit,
            known_part=known_part,
            pages=None if pages is None else parse_pages(pages),
            max_pages=max_pages,
            priority=level_of(priority),
        )

    async def get_request(self, request_id: str) -> RequestStatus:
        """One status of an async request (batches, pages done, links)."""
        return await self._engine.get_request(request_id)

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
        limit = math.inf if timeout is None else timeout
        with anyio.move_on_after(limit) as scope:
            return await self._engine.wait(request_id, on_progress=on_progress)
        assert scope.cancelled_caught
        raise WaitTimeoutError(request_id, limit)

    async def list_requests(self) -> tuple[RequestSummary, ...]:
        """The service's list of past requests, as sent."""
        return await self._engine.list_requests()

    def submit_window(self, started: float, ended: float | None = None) -> Window:
        """When, on the service's clock, a request made by a submit sent at `started` is stamped.

        For matching the request list against submits of unknown fate (see
        `_reconcile`): `started` and `ended` are `time.time()` values; without
        `ended`, the longest a submit can take with this client's retries.
        """
        return self._engine.submit_window(started, ended)
