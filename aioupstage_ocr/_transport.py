"""The one place HTTP happens: sessions, headers, limits, pacing, error mapping, retries.

- API requests (`{base}/...`) carry `Authorization: Bearer <key>`, set per
  request and only ever on a URL built from the base URL; each passes one
  concurrency limit shared by every stage (`Limits.max_concurrency`) and the
  `Pacer` (RPS, PPM, `Retry-After` pauses).
- Downloads of batch results go to object storage on another host: no
  Authorization header and no cookies (the session this module creates keeps
  none), under their own limit (`Limits.max_downloads`), outside the API's
  rate budget.
- Failures become the package's errors: an HTTP error status its
  `status_error_class`, a dropped or cut-short exchange `APIConnectionError`, a
  time-out `APITimeoutError`. Messages carry URLs without their query string
  (signed links are secrets too) and never the key.
- Retries (`_retry`: connection errors, 408, 409, 429, 5xx) are run here and
  nowhere else; an async submit is retried only through a `SubmitGuard`,
  which decides what to do when the service may already have accepted it.
  Each retry is told to every listener in `retry_listeners` (the client's
  observers) and to the `on_retry` hook of the call that made it (a bulk
  run's counters, with the document it belongs to).
- A download refused with 403 is a `LinkExpiredError`: the storage host's
  verdict on a signed link, never the API's "no credit".
"""

from __future__ import annotations

import importlib.metadata
import io
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol, TypeVar
from urllib.parse import quote

import aiohttp
import anyio
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from . import _telemetry as telemetry
from ._concurrency import AdaptiveConcurrency
from ._config import (
    DEFAULT_LIMITS,
    DEFAULT_RATE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUTS,
    Limits,
    RateLimit,
    Retries,
    Timeouts,
)
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    LinkExpiredError,
    MissingAPIKeyError,
    RateLimitError,
    ResponseValidationError,
    status_error_class,
)
from ._preflight import PreparedDocument
from ._ratelimit import Pacer
from ._retry import RetryEvent, RetryPolicy, is_retryable, parse_retry_after, retry_call
from ._storage import safe_url

__all__ = [
    "ASYNC_PATH",
    "REQUESTS_PATH",
    "SYNC_PATH",
    "Kind",
    "RetryHook",
    "SubmitAttempt",
    "SubmitGuard",
    "Transport",
    "maybe_delivered",
]

T = TypeVar("T")


def _version() -> str:
    try:
        return importlib.metadata.version("aioupstage-ocr")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0"


logger = logging.getLogger("aioupstage_ocr")

SYNC_PATH = "/document-digitization"
ASYNC_PATH = "/document-digitization/async"
REQUESTS_PATH = "/document-digitization/requests"

#: Which `Timeouts` field bounds an exchange.
Kind = Literal["request", "sync_ocr", "download"]
#: Told of each retry: the attempt that failed, its error, the wait before the next.
RetryHook = Callable[[RetryEvent], None]

_USER_AGENT = f"aioupstage-ocr/{_version()}"
_MESSAGE_MAX = 1000
# Gateway errors: the service behind the gateway may have taken the request.
_AMBIGUOUS_STATUSES = frozenset({502, 504})
# The service saying "too much": the concurrency window shrinks.
_PUSHBACK_STATUSES = frozenset({429, 503})


class SubmitAttempt(Protocol):
    """One attempt at an async submit, as seen by a `SubmitGuard`."""

    def accepted(self, request_id: str) -> None:
        """The service answered with this request id."""

    def refused(self) -> None:
        """The attempt surely created nothing (an error status, or no connection)."""

    def abandoned(self) -> None:
        """Ended with its fate unknown (cancelled mid-exchange, an unreadable answer)."""

    async def ambiguous(self, error: APIError) -> str | None:
        """The service may have taken it: a request id to adopt, None to send again, or raise."""


class SubmitGuard(Protocol):
    """Decides, for a request that must not be sent twice, what an ambiguous failure means."""

    def begin(self) -> SubmitAttempt:
        """An attempt is being sent now."""


def maybe_delivered(exc: BaseException) -> bool:
    """True when the request may have reached the service before `exc` ended the exchange.

    No connection (refused, DNS, connect time-out) means nothing was sent; an
    answer with an error status means the service refused it, except a
    gateway's 502 or 504, sent while the service behind may have taken it. A
    drop or time-out once connected leaves it open.
    """
    if isinstance(exc, APIStatusError):
        return exc.status_code in _AMBIGUOUS_STATUSES
    if isinstance(exc, APIConnectionError):
        return not isinstance(
            exc.__cause__, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError
        )
    return False


class _Secret:
    """Holds the key; its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class Transport:
    """HTTP to the service and its storage, for one client.

    Owns an `aiohttp.ClientSession` (created on first use, closed by `aclose`)
    or borrows the one given (left open). A borrowed session must not set an
    Authorization header or auth of its own (it would reach the storage host),
    and its cookie jar, if it keeps cookies, applies to downloads as well:
    give it `aiohttp.DummyCookieJar()`.
    """

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        limits: Limits = DEFAULT_LIMITS,
        retries: Retries = DEFAULT_RETRIES,
        rate: RateLimit = DEFAULT_RATE,
        session: aiohttp.ClientSession | None = None,
        on_retry: RetryHook | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        base = URL(base_url.rstrip("/"))
        if not base.absolute or base.scheme not in ("http", "https"):
            raise ConfigurationError(f"base URL must be an absolute http(s) URL, got {base_url!r}")
        if base.query_string or base.fragment:
            raise ConfigurationError("base URL must not carry a query string or fragment")
        if session is not None:
            _check_borrowed(session)
        self._key = _Secret(api_key) if api_key else None
        self.base_url = str(base)
        self._base = base
        self.timeouts = timeouts
        self.limits = limits
        self.policy = RetryPolicy(retries)
        # The gate every API request passes; one given (a pace shared beyond this
        # client, as aioupstage_ocr.ray's cluster budget) replaces the one `rate` builds.
        self.pacer = (
            pacer
            if pacer is not None
            else Pacer.from_config(rate, max_pause=retries.retry_after_max)
        )
        #: Told of every retry this transport makes; add and remove your own (as
        #: with httpx's `event_hooks`); `on_retry` is the first one.
        self.retry_listeners: list[RetryHook] = [] if on_retry is None else [on_retry]
        self._session = session
        self._owns_session = session is None
        self._closed = False
        #: API requests in flight: a window found from the service's latency and
        #: push-back, at most `Limits.max_concurrency`. Uploads take at most all
        #: but one of its slots: a burst of uploads (seconds each, on a busy
        #: service) never leaves status fetches queued behind it.
        self.concurrency = AdaptiveConcurrency(limits.max_concurrency)
        # Algorithm: semaphore ("at most N at once").
        self._download_limiter = anyio.CapacityLimiter(limits.max_downloads)
        self._clock_offset: float | None = None  # server clock minus ours, from `Date`
        self._last_date: str | None = None

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r})"

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        """True after `aclose`."""
        return self._closed

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.limits.max_connections),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect),
                headers={"User-Agent": _USER_AGENT},
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        """Close the session this transport created (a borrowed one stays open)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------ clock

    def server_time(self) -> float:
        """Now on the server's clock (epoch seconds), as far as `Date` headers tell."""
        return time.time() + (self._clock_offset or 0.0)

    @property
    def clock_known(self) -> bool:
        """True once a `Date` header told the server's clock."""
        return self._clock_offset is not None

    def _note_date(self, headers: Mapping[str, str]) -> None:
        value = headers.get("Date")
        if not value or value == self._last_date:
            return  # one estimate per server second: thousands of answers share a `Date`
        self._last_date = value
        try:
            server = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError):
            return
        # `Date` has whole seconds: the midpoint of that second is the best guess.
        self._clock_offset = server + 0.5 - time.time()

    # ------------------------------------------------------------------ endpoints

    async def ocr_sync(
        self,
        document: PreparedDocument,
        *,
        model: str,
        schema: str | None = None,
        retry_if: Callable[[BaseException], bool] = is_retryable,
        on_retry: RetryHook | None = None,
    ) -> bytes:
        """POST the document to the sync endpoint; the result body (retried per policy)."""
        fields = _fields(model, schema)
        return await self._retry(
            lambda: self._api(
                "POST",
                SYNC_PATH,
                kind="sync_ocr",
                document=document,
                fields=fields,
                pages=document.pages or 1,
            ),
            what=f"sync OCR of {document.name}",
            retry_if=retry_if,
            on_retry=on_retry,
        )

    async def submit(
        self,
        document: PreparedDocument,
        *,
        model: str,
        guard: SubmitGuard,
        schema: str | None = None,
        on_retry: RetryHook | None = None,
    ) -> str:
        """POST the document to the async endpoint; its request id.

        Each attempt reports to `guard`; after a failure that may have reached
        the service (`maybe_delivered`), `guard` adopts a request id, allows a
        new attempt (None), or raises.
        """
        fields = _fields(model, schema)

        async def attempt() -> str:
            ticket: SubmitAttempt | None = None

            def sending() -> None:
                nonlocal ticket
                ticket = guard.begin()

            try:
                content = await self._api(
                    "POST",
                    ASYNC_PATH,
                    kind="request",
                    document=document,
                    fields=fields,
                    pages=document.pages or 1,
                    before_send=sending,
                )
            except APIError as exc:
                if ticket is None:
                    raise
                if not maybe_delivered(exc):
                    ticket.refused()
                    raise
                adopted = await ticket.ambiguous(exc)
                if adopted is not None:
                    return adopted
                raise
            except BaseException:
                if ticket is not None:
                    ticket.abandoned()
                raise
            assert ticket is not None
            try:
                request_id = _request_id(content, document.name)
            except ResponseValidationError:
                ticket.abandoned()
                raise
            ticket.accepted(request_id)
            return request_id

        return await self._retry(
            attempt, what=f"async submit of {document.name}", on_retry=on_retry
        )

    async def get_request(self, request_id: str, *, on_retry: RetryHook | None = None) -> bytes:
        """GET one async request's status (retried per policy); the body."""
        path = f"{REQUESTS_PATH}/{_quote_id(request_id)}"
        return await self._retry(
            lambda: self._api("GET", path, kind="request", request_id=request_id),
            what=f"status of request {request_id}",
            on_retry=on_retry,
        )

    async def list_requests(self, *, on_retry: RetryHook | None = None) -> bytes:
        """GET the list of past requests (retried per policy); the body."""
        return await self._retry(
            lambda: self._api("GET", REQUESTS_PATH, kind="request"),
            what="request list",
            on_retry=on_retry,
        )

    async def check_key(self) -> bool:
        """GET the request list once, not retried: a fast authenticated call.

        True when it was answered (the key is valid); False when the answer
        says nothing of the key (throttled, a 5xx, no connection). A refused
        key raises `AuthenticationError`.
        """
        try:
            # A one-off: no status fetch follows it, so sync uploads keep every slot.
            await self._api("GET", REQUESTS_PATH, kind="request", polls_follow=False)
        except AuthenticationError:
            raise
        except APIError:
            return False
        return True

    async def download(
        self,
        url: str,
        parse: Callable[[bytes], T],
        *,
        request_id: str | None = None,
        on_retry: RetryHook | None = None,
    ) -> T:
        """GET a signed storage link without credentials; `parse(body)`.

        Retried per policy, and also when the body does not parse (a body cut
        short that still ended cleanly). A 403 (an expired link) is raised at
        once as `LinkExpiredError`: the caller fetches a fresh link.
        """

        async def attempt() -> T:
            async with self._download_limiter:
                status, headers, content = await self._exchange(
                    "GET",
                    url,
                    headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
                    data=None,
                    seconds=self.timeouts.download,
                    route="download",
                    request_id=request_id,
                )
            if not 200 <= status < 300:
                error = self._status_error(status, headers, content, url, request_id)
                if status == 403:
                    raise LinkExpiredError(
                        error.message,
                        status_code=status,
                        body=error.body,
                        request_id=error.request_id,
                        url=error.url,
                        code=error.code,
                    )
                raise error
            return parse(content)

        def retry_if(exc: BaseException) -> bool:
            return is_retryable(exc) or isinstance(exc, ResponseValidationError)

        return await self._retry(
            attempt, what=f"download {safe_url(url)}", retry_if=retry_if, on_retry=on_retry
        )

    # ------------------------------------------------------------------ machinery

    async def _retry(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        what: str,
        retry_if: Callable[[BaseException], bool] = is_retryable,
        on_retry: RetryHook | None = None,
    ) -> T:
        def tell(event: RetryEvent) -> None:
            telemetry.note_retry()
            logger.info(
                "retrying %s (attempt %d failed: %s); waiting %.2f s",
                what,
                event.attempt,
                event.exception,
                event.wait,
                extra=telemetry.fields(),
            )
            for listener in tuple(self.retry_listeners):
                listener(event)
            if on_retry is not None:
                on_retry(event)

        return await retry_call(fn, self.policy, retry_if=retry_if, on_retry=tell)

    def _auth_headers(self) -> dict[str, str]:
        if self._key is None:
            raise MissingAPIKeyError()
        return {
            "Authorization": f"Bearer {self._key.reveal()}",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }

    async def _api(
        self,
        method: str,
        path: str,
        *,
        kind: Kind,
        document: PreparedDocument | None = None,
        fields: Mapping[str, str] | None = None,
        pages: int = 0,
        request_id: str | None = None,
        before_send: Callable[[], None] | None = None,
        polls_follow: bool | None = None,
    ) -> bytes:
        """One API exchange under the concurrency limit and the pacer; the 2xx body.

        `before_send` is called once the request has its slot and pace, right
        before it goes out. `polls_follow` (default: all but a sync OCR call)
        tells the window status fetches are coming (`AdaptiveConcurrency.acquire`).
        """
        url = self._base.with_path(self._base.path.rstrip("/") + path, encoded=True)
        headers = self._auth_headers()
        timeout = self.timeouts.sync_ocr if kind == "sync_ocr" else self.timeouts.request
        # The page budget (PPM) is waited out before taking a concurrency slot, so
        # a large document waiting for its pages never holds up polls.
        before = self.pacer.now()
        await self.pacer.acquire_pages(pages)
        paced = self.pacer.now() - before
        window = self.concurrency
        if polls_follow is None:
            polls_follow = kind != "sync_ocr"
        slot = await window.acquire(upload=document is not None, polls_follow=polls_follow)
        latency: float | None = None
        status = 0
        try:
            before = self.pacer.now()
            started = await self.pacer.acquire()
            telemetry.note_paced(paced + started - before)
            body: bytes | io.IOBase | None = None
            try:
                data: aiohttp.FormData | bytes | None = None
                if document is not None:
                    # Opened here, for this attempt only: a sent form cannot be reused.
                    if document.opens_inline:
                        body = document.open()
                    else:
                        body = await anyio.to_thread.run_sync(document.open)
                    data, form_headers = _form(fields or {}, document, body)
                    headers.update(form_headers)
                if before_send is not None:
                    before_send()
                sent = self.pacer.now()
                slot.sent(sent, window.in_flight)
                status, response_headers, content = await self._exchange(
                    method,
                    url,
                    headers=headers,
                    data=data,
                    seconds=timeout,
                    route=kind,
                    request_id=request_id,
                )
                if document is not None and 200 <= status < 300:
                    latency = self.pacer.now() - sent
            finally:
                if isinstance(body, io.IOBase):
                    body.close()
        finally:
            window.release(
                slot,
                latency=latency,
                key=(kind, (document.pages or 1).bit_length() if document is not None else 0),
                pushed_back=status in _PUSHBACK_STATUSES,
            )
        self._note_date(response_headers)
        self.pacer.on_headers(response_headers, time.time(), started)
        if 200 <= status < 300:
            self.pacer.on_success(started)
            return content
        error = self._status_error(status, response_headers, content, url, request_id)
        if isinstance(error, RateLimitError):
            self.pacer.on_throttled(started, error.retry_after)
        raise error

    async def _exchange(
        self,
        method: str,
        url: str | URL,
        *,
        headers: Mapping[str, str],
        data: aiohttp.FormData | bytes | None,
        seconds: float,
        route: str | None = None,
        request_id: str | None = None,
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        """Send one request and read the whole answer; connection trouble as our errors.

        One `upstage.ocr.http` span (`_telemetry`) each, `route` and `request_id`
        among its attributes.
        """
        session = self._get_session()
        client_timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=self.timeouts.connect)
        with telemetry.exchange(method, url, route=route, request_id=request_id) as traced:
            try:
                async with session.request(
                    method, url, headers=headers, data=data, timeout=client_timeout
                ) as response:
                    content = await response.read()
            except TimeoutError as exc:
                phase = "to connect" if isinstance(exc, aiohttp.ConnectionTimeoutError) else ""
                raise APITimeoutError(
                    f"{method} {safe_url(url)}: no answer within {seconds:g} s {phase}".rstrip()
                ) from exc
            except aiohttp.ClientPayloadError as exc:
                reason = self._clean(str(exc), url)
                raise APIConnectionError(
                    f"{method} {safe_url(url)}: the response was cut short ({reason})"
                ) from exc
            except (aiohttp.ClientError, OSError) as exc:
                reason = self._clean(str(exc) or type(exc).__name__, url)
                raise APIConnectionError(f"{method} {safe_url(url)}: {reason}") from exc
            traced.answered(response.status)
            return response.status, response.headers, content

    def _clean(self, text: str, url: str | URL | None = None) -> str:
        """`text` without the key, and without `url`'s query string."""
        if self._key is not None:
            text = text.replace(self._key.reveal(), "***")
        if url is not None:
            parsed = url if isinstance(url, URL) else URL(url)
            for form in (str(url), str(parsed)):
                text = text.replace(form, safe_url(parsed))
            if parsed.query_string:
                text = text.replace(parsed.query_string, "")
                text = text.replace(parsed.raw_query_string, "")
        return text

    def _status_error(
        self,
        status: int,
        headers: Mapping[str, str],
        content: bytes,
        url: str | URL,
        request_id: str | None,
    ) -> APIStatusError:
        """The typed error for an HTTP error status, reading both error body shapes."""
        text = self._clean(content.decode("utf-8", errors="replace"), url)
        body, message, code = _read_error_body(text)
        if not message:
            message = f"HTTP {status} with no message"
        if len(message) > _MESSAGE_MAX:
            message = message[:_MESSAGE_MAX] + "..."
        rid = request_id or headers.get("x-request-id") or headers.get("request-id")
        retry_after = parse_retry_after(headers.get("Retry-After"))
        shown = safe_url(url)
        if status == 429:
            return RateLimitError(
                message,
                status_code=status,
                body=body,
                request_id=rid,
                url=shown,
                code=code,
                retry_after=retry_after,
            )
        error = status_error_class(status)(
            message, status_code=status, body=body, request_id=rid, url=shown, code=code
        )
        if retry_after is not None:
            # `_retry.server_retry_after` honours it on any status error (a 503 may say).
            error.retry_after = retry_after
        return error


def _check_borrowed(session: aiohttp.ClientSession) -> None:
    if "Authorization" in session.headers or session.auth is not None:
        raise ConfigurationError(
            "the session given sends credentials on every request; they would reach the "
            "storage host of download links: pass a session without Authorization or auth"
        )


def _fields(model: str, schema: str | None) -> dict[str, str]:
    fields = {"model": model}
    if schema is not None:
        fields["schema"] = schema
    return fields


def _form(
    fields: Mapping[str, str], document: PreparedDocument, body: bytes | io.IOBase
) -> tuple[aiohttp.FormData | bytes, dict[str, str]]:
    """The upload as a request body, with the headers it needs.

    A body in memory becomes one buffer (`multipart_body`): aiohttp's
    `FormData` would write it in nine pieces, each its own socket send, and
    cost ~0.15 ms a document more. A file streamed from disk goes as a
    `FormData`, which reads it in chunks.
    """
    if isinstance(body, bytes):
        boundary = os.urandom(16).hex()
        return multipart_body(fields, document, body, boundary), {
            "Content-Type": f"multipart/form-data; boundary={boundary}"
        }
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field(
        "document", body, filename=document.upload_name, content_type=document.content_type
    )
    return form, {}


def multipart_body(
    fields: Mapping[str, str], document: PreparedDocument, body: bytes, boundary: str
) -> bytes:
    """`fields` and the document as multipart/form-data: the bytes aiohttp's `FormData` sends.

    The same part headers in the same order; the filename percent-encoded as
    aiohttp encodes it (RFC 7578), so the service sees one form either way.
    """
    parts = [
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    parts.append(
        f"--{boundary}\r\nContent-Type: {document.content_type}\r\n"
        'Content-Disposition: form-data; name="document"; '
        f'filename="{quote(document.upload_name, "")}"\r\n\r\n'
    )
    return b"".join(("".join(parts).encode(), body, f"\r\n--{boundary}--\r\n".encode()))


def _quote_id(request_id: str) -> str:
    if not request_id or not request_id.strip():
        raise ValueError("request_id must be a non-empty string")
    return quote(request_id.strip(), safe="")


def _request_id(content: bytes, name: str) -> str:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ResponseValidationError(
            f"{name}: the async submit answer is not JSON: {exc}", body=content[:200]
        ) from None
    if isinstance(data, dict):
        value = data.get("request_id", data.get("id"))
        if isinstance(value, str) and value:
            return value
    raise ResponseValidationError(f"{name}: the async submit answer has no request_id", body=data)


_XML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.DOTALL)
_XML_CODE = re.compile(r"<Code>(.*?)</Code>", re.DOTALL)


def _read_error_body(text: str) -> tuple[object, str, str | None]:
    """(body, message, code) from `{"error": {...}}`, `{"code", "message"}`, XML or text."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            message: object = None
            code: object = None
            error = data.get("error")
            if isinstance(error, dict):
                message = error.get("message")
                code = error.get("code") or error.get("type")
            elif isinstance(error, str):
                message = error
            if not message:
                message = data.get("message") or data.get("detail")
                code = code or data.get("code")
            return (
                data,
                str(message) if message else stripped,
                str(code) if code is not None else None,
            )
    xml_message = _XML_MESSAGE.search(stripped)
    if xml_message:
        xml_code = _XML_CODE.search(stripped)
        code_text = xml_code.group(1).strip() if xml_code else None
        message_text = xml_message.group(1).strip()
        return text, f"{code_text}: {message_text}" if code_text else message_text, code_text
    return text, stripped, None
