"""The transport over real HTTP: headers per host, error mapping, retries, limits, uploads."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from aioupstage_ocr import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InternalServerError,
    Limits,
    LinkExpiredError,
    MissingAPIKeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    Retries,
    Timeouts,
    UnprocessableEntityError,
    UnsupportedMediaTypeError,
)
from aioupstage_ocr._preflight import prepare
from aioupstage_ocr._retry import RetryEvent, set_testing
from aioupstage_ocr._storage import safe_url
from aioupstage_ocr._transport import Transport, maybe_delivered, multipart_body
from aioupstage_ocr.testing import make_image, make_pdf

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(routes: dict[str, Handler], host: str = "127.0.0.1") -> AsyncIterator[str]:
    """A loopback server answering `routes` (`"GET /path"` -> handler); yields its root URL."""
    app = web.Application()
    for key, handler in routes.items():
        method, path = key.split(" ", 1)
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


TEST_KEY = "up_TEST-key-transport-1e5b2d4680-do-not-leak"


def transport(base: str, **kwargs: object) -> Transport:
    """A transport to `base`/v1 with a distinctive test key."""
    return Transport(api_key=TEST_KEY, base_url=f"{base}/v1", **kwargs)  # type: ignore[arg-type]


def json_response(body: object, status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def open_files() -> set[str]:
    """Paths this process holds open (empty where /proc is absent)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return set()
    return {os.path.realpath(fds / fd) for fd in os.listdir(fds)}


STATUS_PATH = "/v1/document-digitization/requests/{request_id}"


async def test_key_only_to_the_api_host_and_no_cookies() -> None:
    """API requests carry the key per request; downloads carry neither key nor cookies."""
    seen: dict[str, dict[str, str]] = {}

    async def status(request: web.Request) -> web.Response:
        seen["api"] = dict(request.headers)
        response = json_response({"id": "r1", "status": "started"})
        response.set_cookie("session", "api-cookie")
        return response

    async def result(request: web.Request) -> web.Response:
        seen["storage"] = dict(request.headers)
        return json_response({"pages": []})

    async with (
        serve({f"GET {STATUS_PATH}": status}, host="localhost") as api,
        serve({"GET /results/1.json": result}, host="localhost") as storage,
    ):
        http = transport(api)
        try:
            await http.get_request("r1")
            await http.get_request("r1")
            body = await http.download(f"{storage}/results/1.json?X-Sig=abc", orjson.loads)
        finally:
            await http.aclose()
    assert body == {"pages": []}
    assert seen["api"]["Authorization"] == f"Bearer {TEST_KEY}"
    assert "Cookie" not in seen["api"]
    assert "Authorization" not in seen["storage"]
    assert "Cookie" not in seen["storage"]


@pytest.mark.parametrize(
    ("body", "content_type", "message", "code"),
    [
        (
            b'{"error": {"message": "bad model", "type": "invalid_request_error", "code": "m1"}}',
            "application/json",
            "bad model",
            "m1",
        ),
        (b'{"code": "c2", "message": "no document"}', "application/json", "no document", "c2"),
        (
            (
                b"<?xml version='1.0'?><Error><Code>AccessDenied</Code>"
                b"<Message>Request has expired</Message></Error>"
            ),
            "application/xml",
            "AccessDenied: Request has expired",
            "AccessDenied",
        ),
        (b"upstream exploded", "text/plain", "upstream exploded", None),
        (b"", "text/plain", "HTTP 400 with no message", None),
    ],
)
async def test_error_bodies(body: bytes, content_type: str, message: str, code: str | None) -> None:
    """Both JSON error shapes, object-store XML and plain text give a message and code."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, status=400, content_type=content_type)

    async with serve({f"GET {STATUS_PATH}": answer}) as api:
        http = transport(api)
        try:
            with pytest.raises(BadRequestError) as info:
                await http.get_request("req-9")
        finally:
            await http.aclose()
    error = info.value
    assert (error.status_code, error.message, error.code) == (400, message, code)
    assert error.request_id == "req-9"
    assert error.url == f"{api}/v1/document-digitization/requests/req-9"
    assert error.body is not None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (413, RequestTooLargeError),
        (415, UnsupportedMediaTypeError),
        (422, UnprocessableEntityError),
        (418, APIStatusError),
    ],
)
async def test_client_errors_are_typed_and_not_retried(
    status: int, kind: type[APIStatusError], retry_testing: None
) -> None:
    """Each 4xx maps to its class and is raised after one request."""
    calls = 0

    async def answer(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return json_response({"code": "x", "message": f"status {status}"}, status)

    async with serve({"GET /v1/document-digitization/requests": answer}) as api:
        http = transport(api)
        try:
            with pytest.raises(kind) as info:
                await http.list_requests()
        finally:
            await http.aclose()
    assert type(info.value) is kind
    assert info.value.status_code == status
    assert info.value.body == {"code": "x", "message": f"status {status}"}
    assert calls == 1


async def test_retry_after_is_honoured_and_capped() -> None:
    """A 429's Retry-After (seconds or HTTP date) is the wait, up to `retry_after_max`."""
    answers = [
        json_response({"code": "rate", "message": "slow down"}, 429, **{"Retry-After": "0.15"}),
        json_response(
            {"code": "rate", "message": "slow down"},
            429,
            **{"Retry-After": format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)},
        ),
        json_response({"requests": []}),
    ]
    times: list[float] = []

    async def answer(request: web.Request) -> web.Response:
        times.append(time.monotonic())
        return answers.pop(0)

    events: list[RetryEvent] = []
    async with serve({"GET /v1/document-digitization/requests": answer}) as api:
        http = transport(
            api, retries=Retries(attempts=3, retry_after_max=0.3), on_retry=events.append
        )
        try:
            with set_testing(False):
                assert await http.list_requests() == b'{"requests":[]}'
        finally:
            await http.aclose()
    assert [type(e.exception) for e in events] == [RateLimitError, RateLimitError]
    first, second = (e.exception for e in events)
    assert isinstance(first, RateLimitError)
    assert isinstance(second, RateLimitError)
    assert first.retry_after == pytest.approx(0.15)
    assert second.retry_after is not None
    assert second.retry_after > 3000
    assert [e.wait for e in events] == [pytest.approx(0.15), pytest.approx(0.3)]
    assert times[1] - times[0] >= 0.14
    assert times[2] - times[1] >= 0.29
    assert http.pacer.stats.throttles == 2


async def test_backoff_without_retry_after_then_gives_up() -> None:
    """5xx without Retry-After: jittered exponential waits; after the attempts, the error."""
    calls = 0

    async def answer(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return json_response({"error": {"message": "down", "code": "unavailable"}}, 503)

    events: list[RetryEvent] = []
    retries = Retries(attempts=4, initial=0.01, maximum=0.02)
    async with serve({"GET /v1/document-digitization/requests": answer}) as api:
        http = transport(api, retries=retries, on_retry=events.append)
        try:
            with set_testing(False), pytest.raises(InternalServerError, match="down"):
                await http.list_requests()
        finally:
            await http.aclose()
    assert calls == 4
    assert [e.attempt for e in events] == [1, 2, 3]
    caps = [0.01, 0.02, 0.02]
    assert all(0 <= e.wait <= cap for e, cap in zip(events, caps, strict=True))


async def test_connection_failures(retry_testing: None) -> None:
    """Refused, dropped and slow exchanges map to connection and time-out errors."""

    async def drop(request: web.Request) -> web.Response:
        await request.read()
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=204)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return json_response({"requests": []})

    async with serve(
        {f"GET {STATUS_PATH}": drop, "GET /v1/document-digitization/requests": slow}
    ) as api:
        http = transport(api, retries=Retries(attempts=2), timeouts=Timeouts(request=0.2))
        try:
            with pytest.raises(APIConnectionError) as dropped:
                await http.get_request("r1")
            assert maybe_delivered(dropped.value)
            with pytest.raises(APITimeoutError, match=r"no answer within 0.2 s"):
                await http.list_requests()
        finally:
            await http.aclose()
    # Nothing listens there any more: refused before anything was sent.
    http = transport(api, retries=Retries(attempts=1))
    try:
        with pytest.raises(APIConnectionError) as refused:
            await http.list_requests()
    finally:
        await http.aclose()
    assert not maybe_delivered(refused.value)
    assert TEST_KEY not in str(refused.value)


async def test_signed_query_and_key_never_in_errors(retry_testing: None) -> None:
    """Errors name URLs without their query; a key echoed by the server is masked."""

    async def echo(request: web.Request) -> web.Response:
        return json_response({"message": f"bad key {request.headers['Authorization']}"}, 401)

    async def broken(request: web.Request) -> web.Response:
        return web.Response(body=f"failed for {request.url}".encode(), status=500)

    async with (
        serve({"GET /v1/document-digitization/requests": echo}) as api,
        serve({"GET /r.json": broken}) as storage,
    ):
        http = transport(api, retries=Retries(attempts=2))
        try:
            with pytest.raises(AuthenticationError) as auth:
                await http.list_requests()
            with pytest.raises(InternalServerError) as download:
                await http.download(f"{storage}/r.json?X-Signature=SECRETSIG&Expires=9", bytes)
        finally:
            await http.aclose()
    assert TEST_KEY not in str(auth.value)
    assert TEST_KEY not in repr(auth.value.body)
    assert "***" in auth.value.message
    assert "SECRETSIG" not in str(download.value)
    assert "SECRETSIG" not in download.value.message
    assert download.value.url == f"{storage}/r.json"
    assert TEST_KEY not in repr(http)
    assert safe_url("https://s.example/a?sig=1#x") == "https://s.example/a"
    assert safe_url(URL("https://user:pw@s.example:8443/a?sig=1")) == "https://s.example:8443/a"


async def test_truncated_download_is_retried(retry_testing: None) -> None:
    """A body cut short (declared length not sent) is fetched again."""
    calls = 0
    payload = orjson.dumps({"pages": [{"id": 0, "text": "x" * 5000}]})

    async def result(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload[:100])
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(body=payload, content_type="application/json")

    async with serve({"GET /r.json": result}) as storage:
        http = transport(storage)
        try:
            assert await http.download(f"{storage}/r.json", bytes) == payload
        finally:
            await http.aclose()
    assert calls == 2


@pytest.mark.parametrize("kind", ["path", "file", "bytes"])
async def test_each_attempt_uploads_a_fresh_full_body(
    kind: str, tmp_path: Path, retry_testing: None
) -> None:
    """A retried upload sends the whole document again; files are open only meanwhile."""
    data = make_pdf(3)
    path = tmp_path / "doc.pdf"
    path.write_bytes(data)
    received: list[bytes] = []

    async def sync(request: web.Request) -> web.Response:
        form = await request.post()
        document = form["document"]
        assert isinstance(document, web.FileField)
        assert document.filename == "doc.pdf"
        assert document.content_type == "application/pdf"
        assert form["model"] == "ocr"
        received.append(document.file.read())
        if len(received) == 1:
            return json_response({"error": {"message": "try again"}}, 503)
        return json_response({"ok": True})

    handle = path.open("rb")
    source: object = {"path": path, "file": handle, "bytes": data}[kind]
    document = prepare(source, filename="doc.pdf")  # type: ignore[arg-type]
    async with serve({"POST /v1/document-digitization": sync}) as api:
        http = transport(api)
        try:
            assert await http.ocr_sync(document, model="ocr") == b'{"ok":true}'
        finally:
            await http.aclose()
    assert received == [data, data]
    assert not handle.closed  # a caller's file object is left open
    handle.close()
    assert str(path.resolve()) not in open_files()


async def test_one_concurrency_limit_for_api_requests() -> None:
    """No more API requests in flight than `Limits.max_concurrency`."""
    in_flight = peak = 0

    async def status(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.03)
        in_flight -= 1
        return json_response({"id": request.match_info["request_id"], "status": "started"})

    async with serve({f"GET {STATUS_PATH}": status}) as api:
        http = transport(api, limits=Limits(max_concurrency=2))
        try:
            await asyncio.gather(*(http.get_request(f"r{i}") for i in range(8)))
        finally:
            await http.aclose()
    assert peak == 2


async def test_status_fetches_never_queue_behind_uploads() -> None:
    """Once async work is open, uploads leave a slot free: a status fetch goes out
    while uploads fill the rest."""
    answered: list[str] = []

    async def sync(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(0.3)
        answered.append("upload")
        return json_response({"api": "2.0", "model": "ocr", "pages": [{"id": 0, "text": ""}]})

    async def status(request: web.Request) -> web.Response:
        answered.append("status")
        return json_response({"id": request.match_info["request_id"], "status": "started"})

    routes = {"POST /v1/document-digitization": sync, f"GET {STATUS_PATH}": status}
    async with serve(routes) as api:
        http = transport(api, limits=Limits(max_concurrency=2))
        document = prepare(make_pdf(1), filename="a.pdf")
        try:
            await http.get_request("r0")  # async work is open (sync uploads alone take all)
            uploads = [asyncio.create_task(http.ocr_sync(document, model="ocr")) for _ in range(3)]
            await asyncio.sleep(0.05)  # the uploads have taken what they may
            await http.get_request("r1")
            assert answered == ["status", "status"]  # answered before any upload finished
            await asyncio.gather(*uploads)
        finally:
            await http.aclose()
    assert answered.count("upload") == 3


async def test_sessions_and_keys() -> None:
    """A borrowed session stays open and must not carry credentials; no key, clear error."""
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer x"}) as leaky:
        with pytest.raises(ConfigurationError, match="storage host"):
            transport("http://127.0.0.1:9", session=leaky)
    async with aiohttp.ClientSession() as borrowed:
        http = transport("http://127.0.0.1:9", session=borrowed)
        await http.aclose()
        assert not borrowed.closed
    keyless = Transport(api_key=None, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(MissingAPIKeyError, match="UPSTAGE_API_KEY"):
        await keyless.list_requests()
    await keyless.aclose()
    with pytest.raises(ConfigurationError, match="absolute"):
        Transport(api_key="k", base_url="api.upstage.ai/v1")


async def test_expired_link_is_its_own_error(retry_testing: None) -> None:
    """A storage 403 is a `LinkExpiredError` (a `PermissionDeniedError`), raised at once."""
    calls = 0

    async def expired(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        body = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
        return web.Response(text=body, status=403, content_type="application/xml")

    async def no_credit(request: web.Request) -> web.Response:
        return json_response({"code": "credit", "message": "no credit left"}, 403)

    async with (
        serve({f"GET {STATUS_PATH}": no_credit}) as api,
        serve({"GET /r.json": expired}) as storage,
    ):
        http = transport(api)
        try:
            with pytest.raises(LinkExpiredError) as link:
                await http.download(f"{storage}/r.json?X-Sig=SECRET", bytes, request_id="r1")
            with pytest.raises(PermissionDeniedError) as api_error:
                await http.get_request("r1")
        finally:
            await http.aclose()
    assert calls == 1
    assert isinstance(link.value, PermissionDeniedError)
    assert link.value.status_code == 403
    assert link.value.url == f"{storage}/r.json"
    assert link.value.code == "AccessDenied"
    assert link.value.request_id == "r1"
    assert "SECRET" not in str(link.value)
    assert not isinstance(api_error.value, LinkExpiredError)


async def test_retries_reach_every_listener_and_the_calls_own_hook(retry_testing: None) -> None:
    """`retry_listeners` hear every retry; a call's `on_retry` hears only its own."""
    answers = iter([503, 200, 503, 200])

    async def answer(request: web.Request) -> web.Response:
        status = next(answers)
        return json_response({"requests": []} if status == 200 else {"message": "busy"}, status)

    first: list[RetryEvent] = []
    second: list[RetryEvent] = []
    own: list[RetryEvent] = []
    async with serve({"GET /v1/document-digitization/requests": answer}) as api:
        http = transport(api, retries=Retries(attempts=3, initial=0.01, maximum=0.02))
        http.retry_listeners.append(first.append)
        http.retry_listeners.append(second.append)
        try:
            await http.list_requests(on_retry=own.append)
            http.retry_listeners.remove(second.append)
            await http.list_requests()
        finally:
            await http.aclose()
    assert len(first) == 2
    assert len(second) == 1
    assert len(own) == 1
    assert own[0] is first[0] is second[0]
    assert isinstance(own[0].exception, InternalServerError)


_PNG = make_image("png", width=8, height=8)


class _Sink:
    """Collects what an aiohttp payload writes."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.data += chunk


async def _aiohttp_form(fields: dict[str, str], upload_name: str, body: bytes) -> bytes:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("document", body, filename=upload_name, content_type="image/png")
    writer = form()
    sink = _Sink()
    await writer.write(sink)  # type: ignore[arg-type]
    boundary = writer.boundary
    return bytes(sink.data).replace(boundary.encode(), b"BOUNDARY")


@settings(max_examples=60, deadline=None)
@given(
    upload_name=st.text(min_size=1, max_size=40),
    schema=st.one_of(st.none(), st.text(max_size=30)),
    body=st.binary(max_size=64),
)
def test_an_upload_in_memory_is_the_form_aiohttp_would_send(
    upload_name: str, schema: str | None, body: bytes
) -> None:
    """The one-buffer body of a small upload is byte for byte aiohttp's FormData.

    A name with control characters, which aiohttp refuses, goes percent-encoded.
    """
    fields = {"model": "ocr"} | ({} if schema is None else {"schema": schema})
    document = dataclasses.replace(prepare(_PNG), upload_name=upload_name)
    ours = multipart_body(fields, document, body, "BOUNDARY")
    (line,) = (
        h
        for h in ours.split(b"\r\n")
        if h.startswith(b'Content-Disposition: form-data; name="document"')
    )
    assert not re.search(rb"[\x00-\x1f\x7f]", line)
    if re.search(r"[\x00-\x08\x0a-\x1f\x7f]", upload_name):
        return
    assert ours == asyncio.run(_aiohttp_form(fields, upload_name, body))
