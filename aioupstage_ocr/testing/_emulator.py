"""A real HTTP server that behaves like the Upstage OCR service, on loopback.

```python
async with UpstageEmulator(EmulatorConfig(batch_latency=0.01)) as emulator:
    client = AsyncUpstageOCR("any-key", base_url=emulator.base_url)
```

Two listening ports: the API host (`base_url`, `.../v1`) and the storage host
(`storage_url`) that serves signed batch results, as the service's object
storage does. Control routes under `/_emulator/` on the API host (`stats`,
`reset`, `configure`, `outage`, `expire-links`) let another process drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from enum import Enum
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import BodyPartReader, web

from .._exceptions import ConfigurationError, UnreadableDocumentError
from .._formats import Inspection
from ._config import EmulatorConfig
from ._faults import GCRA, Dice, retry_after_seconds
from ._jobs import AsyncRequest, BatchScheduler, make_batches, retrieve_exception
from ._ocr import (
    DocumentContent,
    LRUCache,
    content_cache,
    inspect_bytes,
    read_content,
    render,
)
from ._recordings import Recording, cut_answer, load_recordings
from ._stats import EmulatorStats
from ._storage import LinkCheck, LinkSigner, iso_now, xml_error

__all__ = ["UpstageEmulator"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_JSON = "application/json"
_XML = "application/xml"
_CHUNK = 1 << 16
_FIELD_LIMIT = 1024
_HASH_IN_THREAD = 1 << 20
_SCHEMAS = ("clova", "google")
_ERROR_TYPES = {401: "authentication_error", 429: "rate_limit_error"}
_ERROR_CODES = {
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
_ROUTE_KEYS = {
    "ocr_sync": "sync",
    "ocr_async": "async",
    "request_status": "status",
    "request_list": "list",
}
_RESULT_PATH = "/ocr-results/{request_id}/batch-{batch_id}.json"


class _Unsupported(Enum):
    """Marks a document of a format the service does not take."""

    FORMAT = "unsupported format"


_UNSUPPORTED = _Unsupported.FORMAT
#: Documents read so far, shared by every emulator in the process (reading is pure).
_CONTENT = content_cache()
#: What each document was judged to be, by sha256.
_INSPECTIONS: LRUCache[str, Inspection | UnreadableDocumentError | _Unsupported] = LRUCache(20_000)


@dataclass(slots=True)
class _Form:
    model: str | None
    schema: str | None
    filename: str
    data: bytes | None
    size: int


@dataclass(slots=True)
class _Accepted:
    sha256: str
    inspection: Inspection
    pages: int
    data: bytes
    filename: str


class _Unanswered(web.Response):
    """Stands for a connection closed without an answer (never reaches the client)."""


class _Truncated(web.StreamResponse):
    """An answer cut short: its connection is closed after part of the body."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class UpstageEmulator:
    """The Upstage OCR service on loopback: an async context manager.

    `config` (or `EmulatorConfig()`) with `changes` applied is the initial
    configuration; `port=0` and `storage_port=0` pick free ports.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        storage_port: int = 0,
        **changes: Any,
    ) -> None:
        initial = config if config is not None else EmulatorConfig()
        self._initial = initial.replace(**changes) if changes else initial
        self._config = self._initial
        self._recorded = self._load_recordings(self._config)
        self._dice = Dice(self._config.seed)
        self.stats = EmulatorStats()
        self._host = host
        self._port = port
        self._storage_port = storage_port
        self._requests: dict[str, AsyncRequest] = {}
        self._attempts: Counter[tuple[str, ...]] = Counter()
        self._signer = LinkSigner()
        self._reading: dict[str, asyncio.Future[DocumentContent]] = {}
        self._rps: GCRA | None = None
        self._slots: tuple[int, asyncio.Semaphore] | None = None  # `capacity` and its slots
        self._ppm: GCRA | None = None
        self._build_limiters()
        self._changed = asyncio.Event()
        self._scheduler = BatchScheduler(
            lambda: self._config, lambda: self._dice, self.stats, self._changed.set
        )
        self._outage_until = 0.0
        self._reopen: asyncio.Task[None] | None = None
        self._api_runner: web.AppRunner | None = None
        self._storage_runner: web.AppRunner | None = None
        self._api_server: asyncio.Server | None = None
        self._storage_server: asyncio.Server | None = None
        self._started = False

    # -- public surface --------------------------------------------------------

    @property
    def config(self) -> EmulatorConfig:
        """The configuration in force."""
        return self._config

    @property
    def port(self) -> int:
        """The API host's port."""
        self._check_started()
        return self._port

    @property
    def storage_port(self) -> int:
        """The storage host's port."""
        self._check_started()
        return self._storage_port

    @property
    def base_url(self) -> str:
        """The client's base URL, `http://HOST:PORT/v1`."""
        self._check_started()
        return f"http://{_url_host(self._host)}:{self._port}/v1"

    @property
    def storage_url(self) -> str:
        """The storage host's root, `http://HOST:PORT2` (download links point there)."""
        self._check_started()
        return f"http://{_url_host(self._host)}:{self._storage_port}"

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change configuration fields now (e.g. faults on for one test); returns the new one."""
        self._apply(self._config.replace(**changes))
        return self._config

    def reset(self) -> None:
        """Back to the initial configuration, stats zeroed, every request forgotten."""
        self._apply(self._initial)
        self.stats.reset()
        self._requests.clear()
        self._attempts.clear()
        self._build_limiters()
        self._changed.set()
        if self._started:
            self._scheduler.reset()
            if self._outage_until:
                self._end_outage_now()

    def outage(self, seconds: float) -> None:
        """Refuse connections to the API host for `seconds`.

        The listening socket closes at once (new connections are refused), idle
        kept-alive connections are closed, and a request that still arrives on
        an open connection is dropped unanswered; then the port listens again.
        """
        self._check_started()
        if seconds <= 0:
            raise ConfigurationError("an outage lasts a positive number of seconds")
        loop = asyncio.get_running_loop()
        self._outage_until = loop.time() + seconds
        if self._api_server is not None:
            self._api_server.close()
            self._api_server = None
        assert self._api_runner is not None
        assert self._api_runner.server is not None
        for connection in list(self._api_runner.server.connections):
            # A connection answering a request closes after that answer; an idle one now.
            if getattr(connection, "_request_in_progress", False):
                connection.close()
            else:
                connection.force_close()
        if self._reopen is not None:
            self._reopen.cancel()
        self._reopen = loop.create_task(self._listen_after(seconds))

    @property
    def in_outage(self) -> bool:
        """Whether an outage is going on."""
        return bool(self._outage_until) and asyncio.get_running_loop().time() < self._outage_until

    def expire_links(self) -> None:
        """Make every download link signed so far expired (fresh status fetches sign new ones)."""
        self._signer.expire_all()

    async def wait_idle(self) -> None:
        """Wait until every async request kept has ended (`completed` or `failed`)."""
        while any(job.status not in ("completed", "failed") for job in self._requests.values()):
            self._changed.clear()
            await self._changed.wait()

    def request_ids(self) -> list[str]:
        """Ids of the async requests kept, oldest first."""
        return list(self._requests)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Listen on both ports and start the workers."""
        if self._started:
            return
        api = web.Application(middlewares=[self._api_middleware])
        api.router.add_post("/v1/document-digitization", self._sync, name="ocr_sync")
        api.router.add_post("/v1/document-digitization/async", self._submit, name="ocr_async")
        api.router.add_get("/v1/document-digitization/requests", self._list, name="request_list")
        api.router.add_get(
            "/v1/document-digitization/requests/{request_id}", self._status, name="request_status"
        )
        api.router.add_get("/_emulator/stats", self._control_stats, name="control_stats")
        api.router.add_post("/_emulator/{action}", self._control, name="control_action")
        storage = web.Application(middlewares=[self._storage_middleware])
        storage.router.add_get(
            "/ocr-results/{request_id}/batch-{batch_id:\\d+}.json", self._download, name="download"
        )
        runner_args: dict[str, Any] = {
            "access_log": None,
            "handle_signals": False,
            "shutdown_timeout": 1.0,
        }
        self._api_runner = web.AppRunner(api, **runner_args)
        self._storage_runner = web.AppRunner(storage, **runner_args)
        await self._api_runner.setup()
        await self._storage_runner.setup()
        try:
            self._api_server = await self._listen(self._api_runner, self._port)
            self._port = self._api_server.sockets[0].getsockname()[1]
            self._storage_server = await self._listen(self._storage_runner, self._storage_port)
            self._storage_port = self._storage_server.sockets[0].getsockname()[1]
        except BaseException:
            await self.close()
            raise
        self._started = True
        self._scheduler.start()

    async def close(self) -> None:
        """Stop listening, cancel every task, close every connection."""
        self._started = False
        await self._scheduler.close()
        if self._reopen is not None:
            self._reopen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopen
            self._reopen = None
        for future in list(self._reading.values()):
            future.cancel()
        self._reading.clear()
        for server in (self._api_server, self._storage_server):
            if server is not None:
                server.close()
                await server.wait_closed()
        self._api_server = self._storage_server = None
        for runner in (self._api_runner, self._storage_runner):
            if runner is not None:
                await runner.cleanup()
        self._api_runner = self._storage_runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        where = f" {self.base_url}" if self._started else ""
        return f"<UpstageEmulator{where} {self._config!r}>"

    # -- internals: setup ------------------------------------------------------------

    def _check_started(self) -> None:
        if not self._started:
            raise RuntimeError("the emulator is not running: use `async with UpstageEmulator()`")

    async def _listen(self, runner: web.AppRunner, port: int) -> asyncio.Server:
        assert runner.server is not None
        loop = asyncio.get_running_loop()
        return await loop.create_server(runner.server, self._host, port, reuse_address=True)

    async def _listen_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._relisten()

    async def _relisten(self) -> None:
        self._outage_until = 0.0
        if self._api_server is not None or self._api_runner is None:
            return
        for attempt in range(50):
            try:
                self._api_server = await self._listen(self._api_runner, self._port)
            except OSError:
                if attempt == 49:
                    log.exception("the emulator could not listen again on port %d", self._port)
                    return
                await asyncio.sleep(0.1)
            else:
                return

    def _end_outage_now(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
        self._reopen = asyncio.get_running_loop().create_task(self._relisten())

    def _apply(self, config: EmulatorConfig) -> None:
        old = self._config
        self._config = config
        if config.recordings != old.recordings:
            self._recorded = self._load_recordings(config)
        if config.seed != old.seed:
            self._dice = Dice(config.seed)
        if (config.rps, config.ppm) != (old.rps, old.ppm):
            self._build_limiters()
        if self._started and config.workers != old.workers:
            self._scheduler.resize()

    @staticmethod
    def _load_recordings(config: EmulatorConfig) -> dict[str, Recording]:
        if config.recordings is None:
            return {}
        return load_recordings(str(config.recordings))

    def _build_limiters(self) -> None:
        config = self._config
        self._rps = GCRA(config.rps, max(1, -(-config.rps // 1))) if config.rps else None
        self._ppm = GCRA(config.ppm / 60, config.ppm) if config.ppm else None

    # -- internals: answers ------------------------------------------------------------

    def _json(self, body: object, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(body), status=status, content_type=_JSON)

    def _error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        """An error answer in `error_shape`; `code` names the error in the `error` shape.

        Where the service's reference gives a message (invalid model name, no
        document, too large, unsupported format), the message is the reference's.
        """
        if self._config.error_shape == "code":
            body: dict[str, Any] = {"code": status, "message": message}
        else:
            default = "server_error" if status >= 500 else "invalid_request_error"
            kind = _ERROR_TYPES.get(status, default)
            body = {"error": {"message": message, "type": kind, "code": code}}
        response = self._json(body, status)
        if headers:
            response.headers.update(headers)
        return response

    def _xml(self, status: int, code: str, message: str, **details: str) -> web.Response:
        return web.Response(body=xml_error(code, message, **details), status=status,
                            content_type=_XML)  # fmt: skip

    def _drop(self, request: web.Request) -> web.Response:
        """Close the connection without answering."""
        if request.transport is not None:
            request.transport.close()
        return _Unanswered(status=204)

    def _too_many(self, wait: float, what: str) -> web.Response:
        self.stats.rate_limited += 1
        headers = {}
        if self._config.retry_after:
            seconds = retry_after_seconds(wait)
            headers["Retry-After"] = (
                formatdate(time.time() + seconds, usegmt=True)
                if self._config.retry_after_date
                else str(seconds)
            )
        return self._error(429, "too_many_requests", f"rate limit exceeded: {what}", headers)

    def _attempt(self, *key: str) -> int:
        self._attempts[key] += 1
        return self._attempts[key]

    def _inject(self, route: str, *key: object) -> web.Response | None:
        """An injected error answer, if the dice say so."""
        config = self._config
        if route not in config.fault_routes or not self._dice.chance(
            config.error_rate, "error", route, *key
        ):
            return None
        self.stats.errors_injected += 1
        status = self._dice.pick(config.error_statuses, "error-status", route, *key)
        code = _ERROR_CODES.get(status, "server_error")
        message = f"injected fault: HTTP {status} on {route}"
        if route == "download":
            return self._xml(status, "SlowDown" if status == 503 else "InternalError", message)
        return self._error(status, code, message)

    def _drops(self, route: str, *key: object) -> bool:
        config = self._config
        dropped = route in config.fault_routes and self._dice.chance(
            config.drop_rate, "drop", route, *key
        )
        if dropped:
            self.stats.drops += 1
        return dropped

    # -- internals: middlewares ------------------------------------------------------------

    @web.middleware
    async def _api_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        name = request.match_info.route.name or "other"
        if name.startswith("control"):
            return await handler(request)
        route = _ROUTE_KEYS.get(name, "other")
        stats = self.stats
        stats.requests[route] += 1
        if route in ("sync", "async"):
            stats.uploads += 1
            stats.upload_bytes += request.content_length or 0
        if self._outage_until and asyncio.get_running_loop().time() < self._outage_until:
            return self._drop(request)
        stats.in_flight += 1
        stats.peak_concurrency = max(stats.peak_concurrency, stats.in_flight)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            code = "not_found" if exc.status == 404 else "bad_request"
            response = self._error(
                exc.status, code, f"{exc.reason}: {request.method} {request.path}"
            )
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:
            log.exception("emulator error on %s %s", request.method, request.path)
            response = self._error(500, "internal_server_error", "internal error of the emulator")
        finally:
            stats.in_flight -= 1
        if not isinstance(response, _Unanswered | _Truncated):
            stats.statuses[response.status] += 1
            self._rate_headers(response)
        return response

    def _rate_headers(self, response: web.StreamResponse) -> None:
        """What is left of `rps`, in the family `rate_headers` names."""
        family, limiter, rps = self._config.rate_headers, self._rps, self._config.rps
        if family is None or limiter is None or rps is None or response.prepared:
            return
        now = asyncio.get_running_loop().time()
        limit = max(1, math.ceil(rps))
        remaining, reset = limiter.remaining(now), limiter.reset(now)
        if family == "x-ratelimit":
            response.headers["x-ratelimit-limit-requests"] = str(limit)
            response.headers["x-ratelimit-remaining-requests"] = str(remaining)
            response.headers["x-ratelimit-reset-requests"] = f"{reset:.3f}s"
        else:
            response.headers["RateLimit-Limit"] = str(limit)
            response.headers["RateLimit-Remaining"] = str(remaining)
            response.headers["RateLimit-Reset"] = str(math.ceil(reset))  # delta-seconds
            response.headers["RateLimit-Policy"] = f"{limit};w=1"

    @web.middleware
    async def _storage_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        self.stats.requests["download"] += 1
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = self._xml(exc.status, "NoSuchKey" if exc.status == 404 else "InvalidRequest",
                                 exc.reason)  # fmt: skip
        if not isinstance(response, _Unanswered | _Truncated):
            self.stats.statuses[response.status] += 1
        return response

    # -- internals: the API --------------------------------------------------------------

    def _authorize(self, request: web.Request) -> web.Response | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return self._error(
                401,
                "invalid_api_key",
                "missing or malformed Authorization header: expected 'Bearer <API key>'",
            )
        expected = self._config.api_key
        if expected is not None and not hmac.compare_digest(key.encode(), expected.encode()):
            return self._error(401, "invalid_api_key", "the API key is not valid")
        return None

    def _throttle(self) -> web.Response | None:
        if self._rps is None:
            return None
        wait = self._rps.acquire(asyncio.get_running_loop().time())
        if wait:
            return self._too_many(wait, f"more than {self._config.rps:g} requests per second")
        return None

    async def _read_form(self, request: web.Request) -> _Form | web.Response:
        if request.content_type != "multipart/form-data":
            return self._error(400, "invalid_request", "no document in the request")
        form = _Form(None, None, "document", None, 0)
        limit = self._config.max_bytes
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    return self._error(400, "invalid_request", "nested multipart is not taken")
                if part.name == "document" and form.data is None:
                    form.filename = part.filename or "document"
                    chunks: list[bytes] = []
                    while chunk := await part.read_chunk(_CHUNK):
                        form.size += len(chunk)
                        if form.size <= limit:
                            chunks.append(chunk)
                        else:
                            chunks.clear()  # too large: drain the rest, keep nothing
                    form.data = b"".join(chunks)
                elif part.name in ("model", "schema"):
                    value = bytearray()
                    while chunk := await part.read_chunk(_FIELD_LIMIT):
                        if len(value) < _FIELD_LIMIT:
                            value += chunk
                    text = value[:_FIELD_LIMIT].decode("utf-8", "replace").strip()
                    setattr(form, part.name, text)
                else:
                    await part.release()
        except (ValueError, AssertionError, RuntimeError) as exc:
            return self._error(400, "invalid_request", f"malformed multipart body ({exc})")
        return form

    def _check_form(self, form: _Form) -> web.Response | None:
        config = self._config
        if not form.model:
            return self._error(400, "invalid_request", "the `model` field is required")
        if form.model not in ("ocr", config.model_version):
            return self._error(400, "invalid_model", "invalid model name")
        if form.schema and form.schema not in _SCHEMAS:
            return self._error(
                400, "invalid_schema", f"unknown schema {form.schema!r}: use 'clova' or 'google'"
            )
        if form.data is None:
            return self._error(400, "invalid_request", "no document in the request")
        if form.size > config.max_bytes:
            return self._error(
                413,
                "file_too_large",
                "uploaded document is too large. max allowed size is "
                f"{config.max_bytes / 1_000_000:g}MB",
            )
        if form.size == 0:
            return self._error(400, "empty_document", f"{form.filename}: the document is empty")
        return None

    async def _inspect(self, data: bytes, name: str, sha: str) -> Inspection | web.Response:
        found = _INSPECTIONS.get(sha)
        if found is None:
            try:
                found = await asyncio.to_thread(inspect_bytes, data, name) or _UNSUPPORTED
            except UnreadableDocumentError as exc:
                found = exc
            except Exception as exc:  # noqa: BLE001 - a reader error on a broken file: unreadable
                found = UnreadableDocumentError(name, f"the document cannot be read ({exc})")
            _INSPECTIONS.put(sha, found)
        if found is _UNSUPPORTED:
            return self._error(415, "unsupported_document_format", "unsupported document format")
        if isinstance(found, UnreadableDocumentError):
            return self._error(422, "unreadable_document", f"{name}: {found.reason}")
        assert isinstance(found, Inspection)
        return found

    async def _upload(
        self, route: str, request: web.Request
    ) -> tuple[_Form, _Accepted] | web.Response:
        """An upload to either endpoint: key, pace, form and document, in the service's order."""
        refused = self._authorize(request) or self._throttle()
        if refused is not None:
            return refused
        form = await self._read_form(request)
        if isinstance(form, web.Response):
            return form
        doc = await self._accept(route, form)
        if isinstance(doc, web.Response):
            return doc
        return form, doc

    async def _accept(self, route: str, form: _Form) -> _Accepted | web.Response:
        """Checks shared by both endpoints, in the service's order; the document or a refusal."""
        refused = self._check_form(form)
        if refused is not None:
            return refused
        assert form.data is not None
        data = form.data
        if len(data) > _HASH_IN_THREAD:
            sha = await asyncio.to_thread(_sha256, data)
        else:
            sha = _sha256(data)
        attempt = self._attempt(route, sha)
        injected = self._inject(route, sha, attempt)
        if injected is not None:
            return injected
        inspection = await self._inspect(data, form.filename, sha)
        if isinstance(inspection, web.Response):
            return inspection
        config = self._config
        pages = inspection.pages or 1
        if route == "sync" and pages > config.max_sync_pages:
            return self._error(
                413,
                "too_many_pages",
                f"{form.filename}: {pages} pages is over the synchronous limit of "
                f"{config.max_sync_pages}; use the async endpoint",
            )
        if inspection.max_pixels is not None and inspection.max_pixels > config.max_pixels:
            return self._error(
                413,
                "too_many_pixels",
                f"{form.filename}: a page has {inspection.max_pixels} pixels, over the limit "
                f"of {config.max_pixels}",
            )
        if self._ppm is not None:
            wait = self._ppm.acquire(asyncio.get_running_loop().time(), pages)
            if wait:
                return self._too_many(wait, f"more than {config.ppm:g} pages per minute")
        return _Accepted(sha, inspection, pages, data, form.filename)

    def _content(self, doc: _Accepted) -> asyncio.Future[DocumentContent]:
        """The document as read: from the cache, or read once in a thread."""
        loop = asyncio.get_running_loop()
        cached = _CONTENT.get(doc.sha256)
        if cached is not None:
            done: asyncio.Future[DocumentContent] = loop.create_future()
            done.set_result(cached)
            return done
        future = self._reading.get(doc.sha256)
        if future is None:
            future = asyncio.ensure_future(
                asyncio.to_thread(read_content, doc.data, doc.inspection, doc.sha256)
            )
            self._reading[doc.sha256] = future
            sha = doc.sha256

            def finished(f: asyncio.Future[DocumentContent]) -> None:
                self._reading.pop(sha, None)
                if not f.cancelled() and f.exception() is None:
                    _CONTENT.put(sha, f.result())

            future.add_done_callback(finished)
        return future

    async def _sync(self, request: web.Request) -> web.StreamResponse:
        upload = await self._upload("sync", request)
        if isinstance(upload, web.Response):
            return upload
        form, doc = upload
        sha = doc.sha256
        self.stats.sync_submissions[sha] += 1
        attempt = self._attempts["sync", sha]
        recording = None if form.schema else self._recorded.get(sha)
        if recording is None:
            content = await asyncio.shield(self._content(doc))
        form.data = None  # the body is not kept while the answer is prepared
        del doc
        config = self._config
        latency = self._dice.jitter(
            config.sync_latency, config.latency_jitter, "sync", sha, attempt
        )
        timeout = config.sync_timeout
        if timeout is not None and latency > timeout:
            await asyncio.sleep(timeout)
            return self._error(
                504,
                "gateway_timeout",
                "the request timed out; send long documents to the async endpoint",
            )
        if latency:
            await self._process(latency)
        if recording is not None:  # the recorded answer, byte for byte
            body = recording.body
        else:
            body = orjson.dumps(
                render(
                    content.pages,
                    model=config.model_version,
                    shape=config.shape,
                    schema=form.schema,
                )
            )
        self.stats.pages_billed += recording.pages if recording is not None else len(content.pages)
        if self._drops("sync", sha, attempt):
            return self._drop(request)
        return web.Response(body=body, content_type=_JSON)

    async def _process(self, seconds: float) -> None:
        """Work `seconds` on a sync call, within `capacity` (a queue past it)."""
        capacity = self._config.capacity
        if capacity is None:
            await asyncio.sleep(seconds)
            return
        if self._slots is None or self._slots[0] != capacity:
            self._slots = (capacity, asyncio.Semaphore(capacity))
        slots = self._slots[1]
        if slots.locked():
            self.stats.queued += 1
        async with slots:
            await asyncio.sleep(seconds)

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        upload = await self._upload("async", request)
        if isinstance(upload, web.Response):
            return upload
        form, doc = upload
        config = self._config
        stats = self.stats
        stats.async_submissions[doc.sha256] += 1
        occurrence = self._attempt("accepted", doc.sha256)
        request_id = self._dice.uuid("request", doc.sha256, occurrence)
        recording = None if form.schema else self._recorded.get(doc.sha256)
        pages = doc.pages if recording is None else recording.pages
        over_limit = pages > config.max_async_pages
        if over_limit or recording is not None:  # it is not read: it fails, or is replayed
            content: asyncio.Future[DocumentContent] = asyncio.get_running_loop().create_future()
            content.set_result(DocumentContent(doc.inspection.format, ()))
        else:
            content = self._content(doc)
            content.add_done_callback(retrieve_exception)
        job = AsyncRequest(
            id=request_id,
            model=form.model or "ocr",
            model_version=config.model_version,
            sha256=doc.sha256,
            occurrence=occurrence,
            schema=form.schema or None,
            total_pages=pages,
            requested_at=iso_now(),
            content=content,
            batches=[] if over_limit else make_batches(pages, config.batch_size),
            recording=recording,
        )
        self._requests[request_id] = job
        self._scheduler.submit(job, over_limit=over_limit)
        if self._drops("async", doc.sha256, self._attempts["async", doc.sha256]):
            return self._drop(request)
        return self._json({"request_id": request_id})

    def _status_body(self, job: AsyncRequest, fetch: int) -> dict[str, Any]:
        config = self._config
        batches = list(job.batches)
        if config.shuffle_batches:
            self._dice.rng("order", job.id, fetch).shuffle(batches)
        listed = []
        for batch in batches:
            url = ""
            if batch.status == "completed":
                batch.links += 1
                ttl = config.url_ttl
                if self._dice.chance(
                    config.early_expiry_rate, "early-expiry", job.sha256, job.occurrence,
                    batch.id, batch.links,
                ):  # fmt: skip
                    ttl = config.early_expiry_ttl
                path = _RESULT_PATH.format(request_id=job.id, batch_id=batch.id)
                url = f"{self.storage_url}{path}?{self._signer.query(path, ttl)}"
            listed.append(
                {
                    "id": batch.id,
                    "model": job.model_version,
                    "status": batch.status,
                    "failure_message": batch.failure_message,
                    "download_url": url,
                    "start_page": batch.start_page,
                    "end_page": batch.end_page,
                    "requested_at": batch.requested_at,
                    "updated_at": batch.updated_at,
                }
            )
        return {
            "id": job.id,
            "status": job.status,
            "model": job.model,
            "failure_message": job.failure_message,
            "total_pages": job.total_pages,
            "completed_pages": job.completed_pages,
            "requested_at": job.requested_at,
            "completed_at": job.completed_at,
            "batches": listed,
        }

    async def _status(self, request: web.Request) -> web.StreamResponse:
        refused = self._authorize(request)
        if refused is not None:
            return refused
        request_id = request.match_info["request_id"]
        self.stats.polls[request_id] += 1
        refused = self._throttle()
        if refused is not None:
            return refused
        fetch = self._attempt("status", request_id)
        injected = self._inject("status", request_id, fetch)
        if injected is not None:
            return injected
        job = self._requests.get(request_id)
        if job is None:
            return self._error(404, "not_found", f"no request with id {request_id!r}")
        body = self._status_body(job, fetch)
        if self._drops("status", request_id, fetch):
            return self._drop(request)
        return self._json(body)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        refused = self._authorize(request) or self._throttle()
        if refused is not None:
            return refused
        fetch = self._attempt("list")
        injected = self._inject("list", fetch)
        if injected is not None:
            return injected
        body = {
            "requests": [
                {
                    "id": job.id,
                    "status": job.status,
                    "model": job.model,
                    "requested_at": job.requested_at,
                    "completed_at": job.completed_at,
                }
                for job in reversed(self._requests.values())
            ]
        }
        if self._drops("list", fetch):
            return self._drop(request)
        return self._json(body)

    # -- internals: the storage host --------------------------------------------------------

    async def _download(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        stats.downloads += 1
        if "Authorization" in request.headers:
            stats.downloads_with_auth += 1
            return self._xml(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the signature query string parameters "
                "or the Authorization header should be specified",
                ArgumentName="Authorization",
            )
        check = self._signer.check(request.path, request.query)
        if check is LinkCheck.BAD_SIGNATURE:
            return self._xml(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if check is LinkCheck.EXPIRED:
            stats.downloads_expired += 1
            return self._xml(403, "AccessDenied", "Request has expired", ServerTime=iso_now())
        job = self._requests.get(request.match_info["request_id"])
        batch_id = int(request.match_info["batch_id"])
        batch = next((b for b in job.batches if b.id == batch_id), None) if job else None
        if job is None or batch is None or batch.status != "completed":
            return self._xml(404, "NoSuchKey", "The specified key does not exist.")
        batch.downloads += 1
        key = (job.sha256, job.occurrence, batch.id, batch.downloads)
        injected = self._inject("download", *key)
        if injected is not None:
            return injected
        config = self._config
        if job.recording is not None:
            answer = cut_answer(
                job.recording.json(),
                batch.start_page,
                batch.end_page,
                from_document=config.page_ids == "document",
            )
        else:
            first_id = first_word_id = 0
            if config.page_ids == "document":
                first_id = batch.start_page - 1
                first_word_id = sum(len(page.words) for page in job.pages_before(batch))
            answer = render(
                job.pages_of(batch),
                model=job.model_version,
                shape=config.shape,
                schema=job.schema,
                first_id=first_id,
                first_word_id=first_word_id,
            )
        body = orjson.dumps(answer)
        if self._drops("download", *key):
            return self._drop(request)
        if self._dice.chance(config.truncate_rate, "truncate", *key):
            stats.downloads_truncated += 1
            return await self._truncated(request, body)
        stats.downloads_served += 1
        return web.Response(body=body, content_type=_JSON)

    async def _truncated(self, request: web.Request, body: bytes) -> web.StreamResponse:
        """Declare the whole length, send part of the body, close the connection."""
        response = _Truncated(headers={"Content-Type": _JSON})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.close()
        return response

    # -- internals: control routes (another process drives the emulator) ------------------

    async def _control_stats(self, _request: web.Request) -> web.StreamResponse:
        return self._json(self.stats.as_dict())

    async def _control(self, request: web.Request) -> web.StreamResponse:
        action = request.match_info["action"]
        if action == "reset":
            self.reset()
        elif action == "expire-links":
            self.expire_links()
        elif action == "outage":
            try:
                seconds = float(request.query.get("seconds", "1"))
                if seconds <= 0:
                    raise ValueError(seconds)
            except ValueError:
                return self._error(400, "invalid_request", "outage needs ?seconds=N (positive)")
            self.outage(seconds)
        elif action == "configure":
            try:
                changes = orjson.loads(await request.read())
                if not isinstance(changes, dict):
                    raise TypeError("a JSON object of field names and values")
                self.configure(**changes)
            except (orjson.JSONDecodeError, TypeError, ConfigurationError) as exc:
                return self._error(400, "invalid_request", f"bad configuration: {exc}")
        else:
            return self._error(404, "not_found", f"no control action {action!r}")
        public = dataclasses.asdict(self._config)
        public.pop("api_key")
        return self._json({"ok": True, "config": public})
