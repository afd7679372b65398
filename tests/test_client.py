"""AsyncUpstageOCR against the emulator over real HTTP: one document, done right."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import anyio
import pytest

from aioupstage_ocr import (
    AmbiguousSubmitError,
    APITimeoutError,
    AsyncUpstageOCR,
    AuthenticationError,
    BadRequestError,
    DocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    InternalServerError,
    MissingAPIKeyError,
    OCRResult,
    Polling,
    Progress,
    RateLimit,
    RateLimitError,
    RequestStatus,
    RequestTooLargeError,
    Retries,
    Timeouts,
    TooManyPagesError,
    UnreadableDocumentError,
    UnsupportedFormatError,
    WaitTimeoutError,
)
from aioupstage_ocr._retry import RetryEvent, set_testing
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf, page_text

FAST = Polling(initial=0.02, maximum=0.1, factor=1.5, jitter=0.1)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def texts(result: OCRResult) -> list[str]:
    return [page.text for page in result.pages]


def words(result: OCRResult) -> list[list[tuple[str, tuple[float, float, float, float]]]]:
    return [
        [(w.text, (w.bbox.x0, w.bbox.y0, w.bbox.x1, w.bbox.y1)) for w in page.words]
        for page in result.pages
    ]


# --------------------------------------------------------------------------- routes


async def test_sync_and_async_agree_page_for_page(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """The same 23-page PDF through both endpoints gives the same pages, words and boxes."""
    data = make_pdf(23)
    by_sync = await client.ocr(data, filename="same.pdf", mode="sync")
    by_async = await client.ocr(data, filename="same.pdf", mode="async")
    assert texts(by_sync) == [page_text(n) for n in range(1, 24)]
    assert texts(by_async) == texts(by_sync)
    assert words(by_async) == words(by_sync)
    assert [p.index for p in by_async.pages] == list(range(23))
    assert by_async.billed_pages == by_sync.billed_pages == 23
    stats = upstage_emulator.stats
    assert (stats.sync_submissions[sha(data)], stats.async_submissions[sha(data)]) == (1, 1)


async def test_both_response_shapes_parse_alike(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """The seed shape (ratio boxes, other names) reads as the live one."""
    data = make_pdf(12)
    default = await client.ocr(data, filename="shape.pdf", mode="sync")
    upstage_emulator.configure(shape="seed")
    other_sync = await client.ocr(data, filename="shape.pdf", mode="sync")
    other_async = await client.ocr(data, filename="shape.pdf", mode="async")
    for other in (other_sync, other_async):
        assert texts(other) == texts(default)
        assert other.billed_pages == 12
        for mine, theirs in zip(words(default), words(other), strict=True):
            assert [t for t, _ in mine] == [t for t, _ in theirs]
            for (_, box), (_, other_box) in zip(mine, theirs, strict=True):
                assert other_box == pytest.approx(box, abs=2e-3)  # pixels rounded
        assert set(other.raw) == {"api", "model", "pages", "usage"}
    assert default.pages[0].width is not None


async def test_auto_routes_by_page_count(upstage_emulator: EmulatorThread, api_key: str) -> None:
    """Auto: up to `sync_max_pages` sync, more async; over `async_max_pages` cut into parts."""
    from aioupstage_ocr import DocumentLimits

    small = DocumentLimits(sync_max_pages=3, async_max_pages=8)
    async with AsyncUpstageOCR(
        api_key, base_url=upstage_emulator.base_url, document_limits=small, polling=FAST
    ) as client:
        three, five, nine = make_pdf(3), make_pdf(5), make_pdf(9)
        assert (await client.ocr(three, filename="3.pdf")).num_pages == 3
        assert (await client.ocr(five, filename="5.pdf")).num_pages == 5
        whole = await client.ocr(nine, filename="9.pdf")  # cut in two parts, 5 and 4 pages
        assert whole.num_pages == 9
        assert whole.source_pages == tuple(range(1, 10))
        with pytest.raises(TooManyPagesError, match="9 pages"):
            await client.submit(nine, filename="9.pdf")  # one request cannot hold it
    stats = upstage_emulator.stats
    assert stats.sync_submissions[sha(three)] == 1
    assert stats.async_submissions[sha(five)] == 1
    assert stats.submissions(sha(nine)) == 0
    assert stats.uploads == 4


async def test_default_limit_101_pages_goes_async(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """With the service's limits a 101-page document goes async and comes back whole."""
    data = make_pdf(101)
    result = await client.ocr(data, filename="long.pdf")
    assert texts(result) == [page_text(n) for n in range(1, 102)]
    assert upstage_emulator.stats.async_submissions[sha(data)] == 1
    assert upstage_emulator.stats.requests["sync"] == 0


async def test_inputs_path_file_object_and_png_named_pdf(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """A path, an open file and bytes all work; a PNG named .pdf goes as the PNG it is."""
    pdf = make_pdf(2)
    path = tmp_path / "two.pdf"
    path.write_bytes(pdf)
    assert texts(await client.ocr(path)) == [page_text(1), page_text(2)]
    with path.open("rb") as handle:
        assert (await client.ocr(handle)).num_pages == 2
        assert not handle.closed
    png = make_image("png", seed=4)
    disguised = tmp_path / "photo.pdf"
    disguised.write_bytes(png)
    result = await client.ocr(str(disguised))
    assert result.num_pages == 1
    assert result.pages[0].text
    assert upstage_emulator.stats.sync_submissions[sha(png)] == 1
    assert (await client.ocr(io.BytesIO(png), filename="photo.png")).text == result.text


# --------------------------------------------------------------------------- the hard case


@pytest.mark.parametrize("retry_after", [True, False])
async def test_35_pages_through_every_fault(
    upstage_emulator: EmulatorThread, api_key: str, retry_after: bool
) -> None:
    """Batches out of order, 1 s links expiring, 503s on a third of polls, 429s: whole, in order."""
    upstage_emulator.configure(
        seed=11,
        batch_latency=0.12,
        latency_jitter=0.9,
        workers=4,
        url_ttl=1.0,
        early_expiry_rate=0.2,
        early_expiry_ttl=0.0,
        error_rate=0.33,
        error_statuses=(503,),
        fault_routes=("status",),
        rps=5,
        retry_after=retry_after,
    )
    events: list[RetryEvent] = []
    retries = Retries(attempts=8, initial=0.01, maximum=0.05, retry_after_max=0.1)
    async with AsyncUpstageOCR(
        api_key, base_url=upstage_emulator.base_url, polling=FAST, retries=retries
    ) as client:
        client._transport.retry_listeners.append(events.append)
        expired: list[Progress] = []

        def expire_once(progress: Progress) -> None:
            # The first links are out: expire them before their downloads run.
            if progress.completed_pages and not expired:
                expired.append(progress)
                upstage_emulator.expire_links()

        data = make_pdf(35)
        with set_testing(False):
            request_id = await client.submit(data, filename="hard.pdf")
            result = await client.wait(request_id, on_progress=expire_once)
    assert texts(result) == [page_text(n) for n in range(1, 36)]
    assert [p.index for p in result.pages] == list(range(35))
    assert result.billed_pages == 35
    stats = upstage_emulator.stats
    assert stats.async_submissions[sha(data)] == 1
    assert stats.downloads_with_auth == 0
    assert stats.downloads_expired > 0
    assert stats.errors_injected > 0
    assert stats.rate_limited > 0
    kinds = {type(e.exception).__name__ for e in events}
    assert {"InternalServerError", "RateLimitError"} <= kinds
    throttled = [e for e in events if type(e.exception).__name__ == "RateLimitError"]
    if retry_after:  # the server's 1 s, capped at retry_after_max
        assert all(e.wait == pytest.approx(0.1) for e in throttled)
    else:  # backoff with full jitter
        assert all(0 <= e.wait <= 0.05 for e in throttled)


# --------------------------------------------------------------------------- preflight


async def test_bad_documents_are_refused_before_upload(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread, tmp_path: Path, samples: Path
) -> None:
    """Empty, text, password-protected, 51 MB and missing files: typed errors, nothing sent."""
    empty = tmp_path / "empty.pdf"
    empty.touch()
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    huge = tmp_path / "huge.pdf"
    with huge.open("wb") as handle:
        handle.truncate(51_000_000)
    cases: list[tuple[Path, type[DocumentError], str]] = [
        (empty, EmptyDocumentError, "empty"),
        (text, UnsupportedFormatError, "not a format"),
        (samples / "libreoffice-writer-password.pdf", UnreadableDocumentError, "password"),
        (huge, DocumentTooLargeError, "over the limit"),
    ]
    for path, kind, reason in cases:
        with pytest.raises(kind, match=reason) as info:
            await client.ocr(path)
        assert info.value.document == str(path)
        assert str(path) in str(info.value)
        with pytest.raises(kind):
            await client.submit(path)
    assert upstage_emulator.stats.uploads == 0
    assert sum(upstage_emulator.stats.requests.values()) == 0


# --------------------------------------------------------------------------- retries


async def test_retry_policy_end_to_end(
    upstage_emulator: EmulatorThread, api_key: str, tmp_path: Path
) -> None:
    """5xx retried up to `attempts`; 429 retried; 400, 401 and 413 raised after one request."""
    data = make_pdf(1)
    events: list[RetryEvent] = []
    async with AsyncUpstageOCR(
        api_key, base_url=upstage_emulator.base_url, retries=Retries(attempts=4)
    ) as client:
        client._transport.retry_listeners.append(events.append)
        with set_testing(True):
            upstage_emulator.configure(
                error_rate=1.0, error_statuses=(503,), fault_routes=("sync",)
            )
            with pytest.raises(InternalServerError) as info:
                await client.ocr(data, filename="a.pdf")
            assert info.value.status_code == 503
            assert upstage_emulator.stats.requests["sync"] == 4
            assert [e.attempt for e in events] == [1, 2, 3]

            upstage_emulator.reset()
            upstage_emulator.configure(max_bytes=100)
            with pytest.raises(RequestTooLargeError) as too_large:
                await client.ocr(data, filename="a.pdf")
            assert too_large.value.body is not None
            assert upstage_emulator.stats.requests["sync"] == 1

            upstage_emulator.reset()
            upstage_emulator.configure(api_key="the-right-key")
            with pytest.raises(AuthenticationError):
                await client.ocr(data, filename="a.pdf")
            assert upstage_emulator.stats.requests["sync"] == 1

    upstage_emulator.reset()
    async with AsyncUpstageOCR(api_key, base_url=upstage_emulator.base_url, model="ocr-9") as bad:
        with pytest.raises(BadRequestError, match="invalid model name"):
            await bad.ocr(data, filename="a.pdf")
    assert upstage_emulator.stats.requests["sync"] == 1


async def test_429_waits_honour_retry_after(upstage_emulator: EmulatorThread, api_key: str) -> None:
    """A 429's Retry-After is waited (capped) before the next try; without it, backoff."""
    upstage_emulator.configure(rps=2, retry_after=True)
    events: list[RetryEvent] = []
    retries = Retries(attempts=20, initial=0.05, maximum=0.1, retry_after_max=0.25)
    async with AsyncUpstageOCR(
        api_key,
        base_url=upstage_emulator.base_url,
        retries=retries,
        rate=RateLimit(adaptive=False),
    ) as client:
        client._transport.retry_listeners.append(events.append)
        with set_testing(False):
            start = anyio.current_time()
            for _ in range(3):
                await client.list_requests()
            elapsed = anyio.current_time() - start
            with_header = list(events)
            events.clear()
            upstage_emulator.configure(retry_after=False)
            for _ in range(3):
                await client.list_requests()
    assert with_header
    for event in with_header:
        assert isinstance(event.exception, RateLimitError)
        assert event.exception.retry_after == 1.0  # the emulator's whole seconds
        assert event.wait == pytest.approx(0.25)  # capped at retry_after_max
    assert elapsed >= 0.25 * len(with_header) * 0.95
    assert events
    for event in events:
        assert isinstance(event.exception, RateLimitError)
        assert event.exception.retry_after is None
        assert 0 <= event.wait <= 0.1


# --------------------------------------------------------------------------- ambiguous submits


@pytest.mark.upstage_emulator(drop_rate=1.0, fault_routes=("async",))
async def test_dropped_submit_is_adopted_not_resent(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """The connection drops after the service took the document: the client adopts that request."""
    known = await client.ocr(make_pdf(1), filename="first.pdf", mode="sync")
    assert known.num_pages == 1
    upstage_emulator.configure(drop_rate=0.0)
    earlier = await client.submit(make_pdf(2), filename="earlier.pdf")  # known: no candidate
    upstage_emulator.configure(drop_rate=1.0)
    data = make_pdf(12)
    request_id = await client.submit(data, filename="dropped.pdf")
    stats = upstage_emulator.stats
    assert stats.drops == 1
    assert stats.async_submissions[sha(data)] == 1
    assert request_id != earlier
    assert set(upstage_emulator.request_ids()) == {earlier, request_id}
    assert stats.requests["list"] == 1
    result = await client.wait(request_id)
    assert texts(result) == [page_text(n) for n in range(1, 13)]


@pytest.mark.upstage_emulator(drop_rate=1.0, fault_routes=("async",))
async def test_concurrent_dropped_submits_are_not_guessed(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """Two submits dropped at once: neither guesses whose request is whose, neither resends."""
    docs = [
        make_pdf([f"first {n}" for n in range(1, 4)]),
        make_pdf([f"second {n}" for n in range(1, 4)]),
    ]
    outcomes: list[str | BaseException] = [""] * 2

    async def one(index: int) -> None:
        try:
            outcomes[index] = await client.submit(docs[index], filename=f"{index}.pdf")
        except AmbiguousSubmitError as exc:
            outcomes[index] = exc

    async with anyio.create_task_group() as group:
        for index in range(2):
            group.start_soon(one, index)
    ids = set(upstage_emulator.request_ids())
    assert len(ids) == 2
    for data in docs:
        assert upstage_emulator.stats.async_submissions[sha(data)] == 1
    seen: set[str] = set()
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, AmbiguousSubmitError):  # the safe answer when both overlap
            assert outcome.candidates
            assert set(outcome.candidates) <= ids
            assert "could pay twice" in str(outcome)
            seen.update(outcome.candidates)
        else:  # adopted only when no other submit was open: then it is its own
            assert isinstance(outcome, str)
            result = await client.wait(outcome)
            assert result.pages[0].text == ("first 1", "second 1")[index]
            seen.add(outcome)
    assert seen == ids


@pytest.mark.upstage_emulator(error_rate=1.0, error_statuses=(502,), fault_routes=("async",))
async def test_gateway_error_checks_the_list_then_resends(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """A 502 may hide an accepted submit: the list shows none, so it is sent again."""
    with set_testing(True, attempts=3), pytest.raises(InternalServerError):
        await client.submit(make_pdf(2), filename="gw.pdf")
    stats = upstage_emulator.stats
    assert stats.requests["async"] == 3
    assert stats.requests["list"] == 3
    assert upstage_emulator.request_ids() == []


# --------------------------------------------------------------------------- sync time-out


@pytest.mark.upstage_emulator(sync_latency=1.5)
async def test_sync_timeout_goes_async_once(
    upstage_emulator: EmulatorThread, api_key: str, retry_testing: None
) -> None:
    """A sync call past `Timeouts.sync_ocr` is sent once through the async endpoint instead."""
    data = make_pdf(4)
    async with AsyncUpstageOCR(
        api_key, base_url=upstage_emulator.base_url, timeouts=Timeouts(sync_ocr=0.3), polling=FAST
    ) as client:
        result = await client.ocr(data, filename="slow.pdf")
        assert texts(result) == [page_text(n) for n in range(1, 5)]
        stats = upstage_emulator.stats
        assert stats.requests["sync"] == 1
        assert stats.async_submissions[sha(data)] == 1
        with set_testing(True, attempts=2), pytest.raises(APITimeoutError):
            await client.ocr(data, filename="slow.pdf", mode="sync")
        assert stats.requests["sync"] == 3


@pytest.mark.upstage_emulator(error_rate=1.0, error_statuses=(504,), fault_routes=("sync",))
async def test_server_504_goes_async(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """The service's own sync time-out (504) also goes async, without retrying sync."""
    data = make_pdf(3)
    assert (await client.ocr(data, filename="gw.pdf")).num_pages == 3
    assert upstage_emulator.stats.requests["sync"] == 1
    assert upstage_emulator.stats.async_submissions[sha(data)] == 1


# --------------------------------------------------------------------------- status, wait, list


async def test_get_request_wait_and_list(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """A submitted request can be looked at, waited for with progress, and found in the list."""
    request_id = await client.submit(make_pdf(25), filename="w.pdf")
    status = await client.get_request(request_id)
    assert isinstance(status, RequestStatus)
    assert status.id == request_id
    assert status.total_pages == 25
    reports: list[Progress] = []
    result = await client.wait(request_id, on_progress=reports.append)
    assert result.num_pages == 25
    assert reports[-1].done
    assert reports[-1].downloaded_pages == 25
    downloaded = [r.downloaded_pages for r in reports]
    assert downloaded == sorted(downloaded)
    listed = await client.list_requests()
    assert request_id in [entry.id for entry in listed]


@pytest.mark.upstage_emulator(start_delay=30.0)
async def test_wait_timeout(client: AsyncUpstageOCR, upstage_emulator: EmulatorThread) -> None:
    """`wait(timeout=...)` raises WaitTimeoutError naming the request, which goes on."""
    request_id = await client.submit(make_pdf(2), filename="late.pdf")
    with pytest.raises(WaitTimeoutError, match=request_id) as info:
        await client.wait(request_id, timeout=0.15)
    assert isinstance(info.value, TimeoutError)
    assert (await client.get_request(request_id)).status == "submitted"


# --------------------------------------------------------------------------- keys


async def test_key_and_base_url_from_the_environment(
    upstage_emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch, api_key: str
) -> None:
    """UPSTAGE_API_KEY and UPSTAGE_BASE_URL are read; no key is a clear error on first use."""
    monkeypatch.setenv("UPSTAGE_API_KEY", api_key)
    monkeypatch.setenv("UPSTAGE_BASE_URL", upstage_emulator.base_url)
    async with AsyncUpstageOCR() as client:
        assert client.base_url == upstage_emulator.base_url
        assert (await client.ocr(make_pdf(1), filename="e.pdf")).num_pages == 1
    monkeypatch.delenv("UPSTAGE_API_KEY")
    async with AsyncUpstageOCR() as keyless:
        with pytest.raises(MissingAPIKeyError, match="UPSTAGE_API_KEY"):
            await keyless.ocr(make_pdf(1), filename="e.pdf")
    assert upstage_emulator.stats.uploads == 1


async def test_key_never_shows(
    upstage_emulator: EmulatorThread,
    api_key: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    retry_testing: None,
) -> None:
    """The key is in no repr, str, error, log line or written file."""
    caplog.set_level(logging.DEBUG)
    upstage_emulator.configure(api_key="another-key")
    client = AsyncUpstageOCR(api_key, base_url=upstage_emulator.base_url, polling=FAST)
    shown = [repr(client), str(client), repr(client._transport), repr(vars(client))]
    with pytest.raises(AuthenticationError) as refused:
        await client.list_requests()
    shown += [str(refused.value), repr(refused.value), repr(refused.value.body)]
    upstage_emulator.configure(api_key=None, error_rate=0.5, error_statuses=(503,), seed=5)
    result = await client.ocr(make_pdf(11), filename="k.pdf", mode="async")
    saved = result.save(tmp_path / "k.ocr.json")
    await client.aclose()
    shown += [saved.read_text(), caplog.text]
    assert caplog.records  # the retries were logged
    for text in shown:
        assert api_key not in text
