"""Bulk runs: every document back whole, in order when asked, bounded, stoppable, resumable."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioupstage_ocr import (
    AsyncUpstageOCR,
    AuthenticationError,
    BulkEvent,
    BulkItem,
    BulkRun,
    DocumentError,
    DocumentNotFoundError,
    EmptyDocumentError,
    PermissionDeniedError,
    Polling,
    RateLimit,
    Resume,
    Retries,
    Submission,
    UnprocessableEntityError,
    UnsupportedFormatError,
)
from aioupstage_ocr._bulk._gate import FIRST_WAVE, KEY_WAVE, KeyGate
from aioupstage_ocr._retry import RetryEvent
from aioupstage_ocr.testing import (
    EmulatorThread,
    UpstageEmulator,
    emulated_text,
    make_image,
    make_pdf,
    page_text,
)

#: The tests that build their own client (a thread's emulator, real retry waits) use these.
TEST_KEY = "bulk-test-key"
FAST_POLLING = Polling(initial=0.02, maximum=0.1, factor=1.5, jitter=0.1)

# --------------------------------------------------------------------------- helpers


async def collect(run: BulkRun) -> list[BulkItem]:
    """Every item of a run, in the order yielded."""
    return [item async for item in run]


async def drain(run: BulkRun, into: list[BulkItem]) -> None:
    """Append each item of `run` to `into` as it comes (what came stays if the run raises)."""
    async for item in run:
        into.append(item)  # noqa: PERF401 - kept item by item on purpose


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def texts(item: BulkItem) -> list[str]:
    assert item.result is not None, item
    return [page.text for page in item.result.pages]


def unique_png(index: int, base: bytes = make_image("png", seed=1)) -> bytes:
    """A small valid PNG whose bytes (and so hash and OCR text) differ by `index`."""
    return base + f"#{index}".encode()


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def client_tasks(baseline: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Tasks started since `baseline`, other than the running one."""
    return [t for t in asyncio.all_tasks() - baseline if t is not asyncio.current_task()]


@contextmanager
def emulator_in_thread(**config: Any) -> Iterator[UpstageEmulator]:
    """An emulator on its own event loop in a thread: the test's loop holds only client tasks."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        async with UpstageEmulator(**config) as emulator:
            holder["emulator"], holder["stop"] = emulator, asyncio.Event()
            holder["loop"] = asyncio.get_running_loop()
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the emulator did not start"
    try:
        yield holder["emulator"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)


# --------------------------------------------------------------------------- results


async def test_mixed_documents_come_back_whole(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Images and small PDFs go sync, multi-batch PDFs async; every page is right and in order."""
    images = [make_image("png" if n % 2 else "jpeg", seed=n) for n in range(20)]
    pdfs = {101: make_pdf(101), 123: make_pdf(123), 7: make_pdf(7)}
    names = [f"img{n}.{'png' if n % 2 else 'jpg'}" for n in range(20)]
    paths = [write(tmp_path, name, data) for name, data in zip(names, images, strict=True)]
    paths += [write(tmp_path, f"doc{n}.pdf", d) for n, d in pdfs.items()]
    expected = [emulated_text(d) for d in images] + [
        [page_text(p) for p in range(1, n + 1)] for n in pdfs
    ]
    events: list[BulkEvent] = []

    items = await collect(client.ocr_many(paths, on_event=events.append))

    assert sorted(item.index for item in items) == list(range(len(paths)))
    for item in items:
        assert item.ok, item
        assert item.source == paths[item.index]
        assert texts(item) == expected[item.index]
        assert item.result is not None
        assert [page.index for page in item.result.pages] == list(range(item.pages or 0))
        assert item.started_at is not None
        assert item.queued_at <= item.started_at <= item.finished_at
    by_pages = {item.pages: item for item in items if item.index >= 20}
    assert by_pages[7].route == "sync"
    assert by_pages[7].request_id is None
    for n in (101, 123):
        assert by_pages[n].route == "async"
        assert by_pages[n].request_id
        assert upstage_emulator.stats.async_submissions[sha(pdfs[n])] == 1
    assert upstage_emulator.stats.downloads_with_auth == 0
    kinds = Counter(event.kind for event in events)
    assert kinds["queued"] == kinds["preflighted"] == kinds["submitted"] == len(paths)
    assert kinds["finished"] == len(paths)
    assert kinds["failed"] == 0
    pages_events = [e for e in events if e.kind == "pages"]
    assert pages_events
    assert {e.request_id for e in pages_events} == {
        by_pages[101].request_id,
        by_pages[123].request_id,
    }
    assert all(e.pages_total in (101, 123) for e in pages_events)


async def test_stats_and_open_requests_at_the_end(client: AsyncUpstageOCR) -> None:
    """Counters add up; nothing is left open once every item is handed over."""
    documents = [unique_png(n) for n in range(12)] + [make_pdf(105)]
    run = client.ocr_many(documents)
    items = await collect(run)
    stats = run.stats
    assert (stats.queued, stats.succeeded, stats.failed, stats.yielded) == (13, 13, 0, 13)
    assert (stats.submitted_sync, stats.submitted_async, stats.preflighted) == (12, 1, 13)
    assert stats.pages == sum(item.pages or 0 for item in items) == 12 + 105
    assert stats.pending == 0
    assert stats.open_requests == 0
    assert run.open_requests == ()
    assert stats.elapsed > 0
    assert stats.finished == 13
    assert "13 succeeded" in repr(run)


async def test_ordered_yields_in_input_order(client: AsyncUpstageOCR) -> None:
    """ordered=True: input order, a slow async document first included; the window holds."""
    documents: list[bytes] = [make_pdf(112)] + [unique_png(n) for n in range(30)]
    run: BulkRun
    pending: list[int] = []

    def watch(event: BulkEvent) -> None:
        pending.append(run.stats.pending)

    run = client.ocr_many(documents, ordered=True, max_pending=6, on_event=watch)
    items = await collect(run)
    assert [item.index for item in items] == list(range(31))
    assert all(item.ok for item in items)
    assert items[0].route == "async"
    assert items[0].pages == 112
    assert max(pending) <= 6


async def test_identical_files_are_ocred_once(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Copies of one file share the first one's result; the service sees each content once."""
    image, pdf = make_image("png", seed=99), make_pdf(104)
    paths = [write(tmp_path, f"copy{n}.png", image) for n in range(4)]
    paths += [write(tmp_path, f"copy{n}.pdf", pdf) for n in range(3)]
    paths += [write(tmp_path, f"other{n}.png", unique_png(n)) for n in range(5)]
    all_preflighted = asyncio.Event()
    seen = 0

    def watch(event: BulkEvent) -> None:
        nonlocal seen
        seen += event.kind == "preflighted"
        if seen == len(paths):
            all_preflighted.set()

    async def hold(submission: Submission) -> None:
        await all_preflighted.wait()  # every copy finds its first one still in flight

    run = client.ocr_many(paths, ordered=True, on_event=watch, before_submit=hold)
    items = await collect(run)

    stats = upstage_emulator.stats
    assert stats.sync_submissions[sha(image)] == 1
    assert stats.async_submissions[sha(pdf)] == 1
    assert all(item.ok for item in items)
    for group in (items[:4], items[4:7]):  # the first copy to pass preflight goes
        (first,) = [item.index for item in group if item.duplicate_of is None]
        assert sorted(item.duplicate_of for item in group if item.index != first) == [first] * (
            len(group) - 1
        )
    assert all(texts(items[n]) == emulated_text(image) for n in range(4))
    assert all(texts(items[n]) == [page_text(p) for p in range(1, 105)] for n in range(4, 7))
    assert len({items[n].request_id for n in range(4, 7)}) == 1
    assert [item.source for item in items] == paths
    assert run.stats.deduplicated == 5


@pytest.mark.upstage_emulator(error_rate=1.0, error_statuses=(422,), fault_routes=("sync",))
async def test_identical_files_share_an_error(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """When the first copy fails, the copies waiting on it get the same error."""
    image = make_image("png", seed=5)
    all_preflighted = asyncio.Event()
    seen = 0

    def watch(event: BulkEvent) -> None:
        nonlocal seen
        seen += event.kind == "preflighted"
        if seen == 3:
            all_preflighted.set()

    async def hold_first(submission: Submission) -> None:
        await all_preflighted.wait()  # the copies find the first one still in flight

    run = client.ocr_many(
        [image, image, image], ordered=True, on_event=watch, before_submit=hold_first
    )
    items = await collect(run)
    assert [type(item.error) for item in items] == [UnprocessableEntityError] * 3
    assert items[1].error is items[0].error
    assert items[2].duplicate_of == 0
    assert upstage_emulator.stats.requests["sync"] == 1


async def test_bad_documents_fail_alone(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Empty, unsupported, missing, a folder, not a document: each its own error; rest finish."""
    empty = write(tmp_path, "empty.pdf", b"")
    text = write(tmp_path, "notes.pdf", b"just some text, not a PDF")
    missing = tmp_path / "missing.png"
    folder = tmp_path / "folder"
    folder.mkdir()
    good = [write(tmp_path, f"good{n}.png", unique_png(n)) for n in range(6)]
    documents: list[Any] = [good[0], empty, good[1], text, missing, good[2], folder, 42, *good[3:]]

    items = await collect(client.ocr_many(documents, ordered=True))

    errors = {item.index: item.error for item in items if not item.ok}
    assert isinstance(errors[1], EmptyDocumentError)
    assert str(empty) in str(errors[1])
    assert isinstance(errors[3], UnsupportedFormatError)
    assert "notes.pdf" in str(errors[3])
    assert isinstance(errors[4], DocumentNotFoundError)
    assert "missing.png" in str(errors[4])
    assert isinstance(errors[6], DocumentNotFoundError)
    assert "folder" in str(errors[6])
    assert isinstance(errors[7], DocumentError)
    assert "input-7" in str(errors[7])
    assert set(errors) == {1, 3, 4, 6, 7}
    assert all(item.route is None and item.request_id is None for item in items if not item.ok)
    assert sum(item.ok for item in items) == 6
    assert upstage_emulator.stats.uploads == 6  # nothing bad was uploaded


async def test_async_iterable_input(client: AsyncUpstageOCR) -> None:
    """An async generator of documents works like a list."""

    async def documents() -> AsyncIterator[bytes]:
        for n in range(25):
            await asyncio.sleep(0)
            yield unique_png(n)

    items = await collect(client.ocr_many(documents()))
    assert sorted(item.index for item in items) == list(range(25))
    assert all(item.ok and texts(item) == emulated_text(unique_png(item.index)) for item in items)


async def test_endless_generator_is_read_lazily(client: AsyncUpstageOCR) -> None:
    """An endless generator is never listed up front; leaving the loop leaves it be."""
    pulled = itertools.count()

    def documents() -> Iterator[bytes]:
        for n in itertools.count():
            next(pulled)
            yield unique_png(n)

    taken = 0
    async with client.ocr_many(documents(), max_pending=8) as run:
        async for item in run:
            assert item.ok
            taken += 1
            if taken == 20:
                break
    drawn = next(pulled)
    assert drawn < 20 + 8 + 64 + 2  # taken + the window + one read-ahead from the thread
    assert run.stats.queued <= 20 + 8


async def test_input_iterator_error_ends_the_run(client: AsyncUpstageOCR) -> None:
    """An error raised by the input itself ends the run with that error."""

    def documents() -> Iterator[bytes]:
        for n in range(5):
            yield unique_png(n)
        raise ValueError("the listing broke")

    taken: list[BulkItem] = []
    with pytest.raises(ValueError, match="the listing broke"):
        await drain(client.ocr_many(documents()), taken)
    assert len(taken) <= 5


async def test_arguments_are_checked(client: AsyncUpstageOCR) -> None:
    """One document instead of many, an unknown mode, a zero window, a second iteration."""
    with pytest.raises(TypeError, match="for one document, use ocr"):
        client.ocr_many("scan.pdf")
    with pytest.raises(ValueError, match="mode"):
        client.ocr_many([], mode="fast")
    with pytest.raises(ValueError, match="max_pending"):
        client.ocr_many([], max_pending=0)
    run = client.ocr_many([])
    assert await collect(run) == []
    with pytest.raises(RuntimeError, match="iterated once"):
        aiter(run)
    with pytest.raises(ValueError, match="request id"):
        Resume("a.pdf", " ")


# --------------------------------------------------------------------------- stopping early


@pytest.mark.upstage_emulator(api_key="right")
async def test_wrong_key_stops_the_run_at_once(
    upstage_emulator: EmulatorThread, retry_testing: None
) -> None:
    """500 inputs with a refused key: the probe and the first wave, one AuthenticationError."""
    taken: list[BulkItem] = []
    async with AsyncUpstageOCR("wrong-key-123", base_url=upstage_emulator.base_url) as client:
        run = client.ocr_many(unique_png(n) for n in range(500))
        with pytest.raises(AuthenticationError) as caught:
            await drain(run, taken)
    requests = sum(upstage_emulator.stats.requests.values())
    print(f"wrong key: {requests} request(s) for 500 inputs, {run.stats.queued} taken")
    assert requests <= 1 + FIRST_WAVE
    assert taken == []
    assert "wrong-key-123" not in str(caught.value)
    assert any("bulk run stopped" in note for note in caught.value.__notes__)


@pytest.mark.upstage_emulator(error_rate=1.0, error_statuses=(403,), fault_routes=("sync", "async"))
async def test_no_credit_stops_the_run(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """A 403 from the API (no credit) stops the run within the key gate's wave."""
    with pytest.raises(PermissionDeniedError):
        await collect(client.ocr_many([unique_png(n) for n in range(500)]))
    assert upstage_emulator.stats.uploads <= KEY_WAVE


async def test_key_gate_lets_waves_through() -> None:
    """A few unproven, more once the key is valid, all once an answer showed it works."""
    probes: list[str] = []
    gate = KeyGate(lambda: probes.append("probe"))
    passed: list[bool] = []

    async def enter() -> None:
        passed.append(await gate.enter())

    async with anyio.create_task_group() as group:
        for _ in range(KEY_WAVE + 10):
            group.start_soon(enter)
        await anyio.wait_all_tasks_blocked()
        assert passed == [True] * FIRST_WAVE
        assert probes == ["probe"]
        gate.key_valid()
        await anyio.wait_all_tasks_blocked()
        assert passed == [True] * KEY_WAVE
        gate.open(False)  # not an unproven document's answer: changes nothing
        await anyio.wait_all_tasks_blocked()
        assert len(passed) == KEY_WAVE
        gate.open(True)
    assert passed == [True] * KEY_WAVE + [False] * 10
    assert await gate.enter() is False
    assert probes == ["probe"]


@pytest.mark.upstage_emulator(sync_latency=0.3)
async def test_the_first_wave_is_not_one_document(client: AsyncUpstageOCR) -> None:
    """No start-up penalty: many documents are out before the first one returns."""
    sent_before_first_answer: list[int] = []
    submitted = 0

    def watch(event: BulkEvent) -> None:
        nonlocal submitted
        if event.kind == "submitted":
            submitted += 1
        elif event.kind in ("finished", "failed") and not sent_before_first_answer:
            sent_before_first_answer.append(submitted)

    items = await collect(client.ocr_many([unique_png(n) for n in range(40)], on_event=watch))
    assert all(item.ok for item in items)
    assert sent_before_first_answer[0] > FIRST_WAVE  # the probe said the key is valid


@pytest.mark.upstage_emulator(sync_latency=0.2)
async def test_a_clients_next_runs_skip_the_key_gate(
    api_key: str, upstage_emulator: EmulatorThread
) -> None:
    """Once a run's answer showed the key works, the same client's later runs (a Ray
    actor's batches) start with the gate open: no probe (a request the rate limit
    counts) each time. A new client probes again."""
    async with AsyncUpstageOCR(api_key, base_url=upstage_emulator.base_url) as client:
        assert all(item.ok for item in await collect(client.ocr_many([unique_png(0)])))
        probes = upstage_emulator.stats.requests["list"]
        assert probes == 1
        for batch in range(3):
            documents = [unique_png(100 * (batch + 1) + n) for n in range(8)]
            assert all(item.ok for item in await collect(client.ocr_many(documents)))
        assert upstage_emulator.stats.requests["list"] == probes
    async with AsyncUpstageOCR(api_key, base_url=upstage_emulator.base_url) as fresh:
        assert all(item.ok for item in await collect(fresh.ocr_many([unique_png(1)])))
    assert upstage_emulator.stats.requests["list"] == probes + 1


async def test_failing_hook_stops_the_run(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """A before_submit hook that fails stops the run; that document is never sent."""
    documents = [unique_png(n) for n in range(40)]
    calls: list[Submission] = []

    async def journal(submission: Submission) -> None:
        calls.append(submission)
        if len(calls) == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full") as caught:
        await collect(client.ocr_many(documents, before_submit=journal))
    assert any("before_submit hook failed" in note for note in caught.value.__notes__)
    assert upstage_emulator.stats.sync_submissions[calls[2].sha256] == 0


async def test_async_with_leaves_nothing_running(tmp_path: Path) -> None:
    """Leaving `async with` stops everything at once; open requests can be resumed, not resent."""
    baseline = asyncio.all_tasks()
    pdf = make_pdf(125)
    pdf_path = write(tmp_path, "big.pdf", pdf)
    documents: list[Any] = [pdf_path, *(unique_png(n) for n in range(60))]
    with emulator_in_thread(batch_latency=0.1, workers=2) as emulator:
        async with AsyncUpstageOCR(
            TEST_KEY, base_url=emulator.base_url, polling=FAST_POLLING
        ) as client:
            submitted = asyncio.Event()

            def watch(event: BulkEvent) -> None:
                if event.kind == "submitted" and event.request_id:
                    submitted.set()

            async with client.ocr_many(documents, on_event=watch) as run:
                async for _item in run:
                    if submitted.is_set():
                        break
            assert client_tasks(baseline) == []
            assert not submitted.is_set() or len(run.open_requests) == 1
            if not submitted.is_set():  # every image finished first: wait for the submit
                pytest.fail("the PDF was not submitted while 60 images ran")
            (open_request,) = run.open_requests
            assert open_request.source == pdf_path

            items = await collect(client.ocr_many([open_request]))
            assert client_tasks(baseline) == []
        (item,) = items
        assert item.ok
        assert item.request_id == open_request.request_id
        assert texts(item) == [page_text(p) for p in range(1, 126)]
        assert emulator.stats.async_submissions[sha(pdf)] == 1


async def test_break_from_bare_loop_then_close_client() -> None:
    """Breaking out of a bare `async for` and closing the client leaves no task and no session."""
    baseline = asyncio.all_tasks()
    with emulator_in_thread(batch_latency=0.3) as emulator:
        client = AsyncUpstageOCR(TEST_KEY, base_url=emulator.base_url, polling=FAST_POLLING)
        documents = [make_pdf(111), *(unique_png(n) for n in range(200))]
        taken = 0
        run = client.ocr_many(documents)
        async for _item in run:
            taken += 1
            if taken == 10:
                break
        await client.aclose()
        assert client_tasks(baseline) == []
        assert client._transport.closed
        assert client._transport._session is None or client._transport._session.closed
        assert run.stats.yielded == 10


async def test_aclose_stops_a_running_run(retry_testing: None) -> None:
    """Closing the client ends a run under a reader: what finished, then a clear error."""
    baseline = asyncio.all_tasks()
    with emulator_in_thread(sync_latency=0.05) as emulator:
        client = AsyncUpstageOCR(TEST_KEY, base_url=emulator.base_url, polling=FAST_POLLING)
        run = client.ocr_many([unique_png(n) for n in range(300)])
        got: list[BulkItem] = []
        failure: list[BaseException] = []
        five = asyncio.Event()

        async def read() -> None:
            try:
                async for item in run:
                    got.append(item)
                    if len(got) == 5:
                        five.set()
            except RuntimeError as exc:
                failure.append(exc)

        reader = asyncio.create_task(read())
        await five.wait()
        await client.aclose()
        await reader
        assert failure
        assert "client was closed" in str(failure[0])
        assert 5 <= len(got) < 300
        assert client_tasks(baseline) == []


# --------------------------------------------------------------------------- resume and hooks


async def test_resume_polls_without_submitting(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """A `Resume` entry is polled and downloaded, never submitted again."""
    pdf = make_pdf(118)
    path = write(tmp_path, "resumed.pdf", pdf)
    request_id = await client.submit(path)
    documents: list[Any] = [unique_png(1), Resume(path, request_id), Resume(path, request_id)]
    items = await collect(client.ocr_many(documents, ordered=True))
    assert [item.ok for item in items] == [True, True, True]
    assert items[1].source == path
    assert items[1].request_id == request_id
    assert items[1].route == "async"
    assert items[1].pages == 118
    assert items[2].duplicate_of == 1
    assert texts(items[2]) == texts(items[1])
    assert texts(items[1]) == [page_text(p) for p in range(1, 119)]
    assert upstage_emulator.stats.async_submissions[sha(pdf)] == 1


async def test_journal_hooks_run_before_and_after_the_request(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """before_submit runs before the service sees the document; after_submit has the id."""
    pdf, image = make_pdf(102), make_image("png", seed=3)
    paths = [write(tmp_path, "a.pdf", pdf), write(tmp_path, "b.png", image)]
    log: list[tuple[str, str, str, str | None, int]] = []
    stats = upstage_emulator.stats

    async def before(s: Submission) -> None:
        await asyncio.sleep(0.01)  # a journal write takes time; the request waits for it
        log.append(("before", s.name, s.route, s.request_id, stats.submissions(s.sha256)))

    async def after(s: Submission) -> None:
        log.append(("after", s.name, s.route, s.request_id, stats.submissions(s.sha256)))

    items = await collect(client.ocr_many(paths, before_submit=before, after_submit=after))
    rid = next(item.request_id for item in items if item.route == "async")
    assert sorted(log) == sorted(
        [
            ("before", str(paths[0]), "async", None, 0),
            ("after", str(paths[0]), "async", rid, 1),
            ("before", str(paths[1]), "sync", None, 0),
        ]
    )


# --------------------------------------------------------------------------- retries and pauses


@pytest.mark.upstage_emulator(rps=20, retry_after=True, error_rate=0.1, seed=3)
async def test_retrying_and_paused_events(upstage_emulator: EmulatorThread) -> None:
    """5xx and 429s show as `retrying` events for their document; Retry-After as `paused`."""
    events: list[BulkEvent] = []
    retries = Retries(attempts=10, initial=0.01, maximum=0.1, retry_after_max=0.3)
    async with AsyncUpstageOCR(
        TEST_KEY, base_url=upstage_emulator.base_url, retries=retries, rate=RateLimit()
    ) as client:
        run = client.ocr_many([unique_png(n) for n in range(60)], on_event=events.append)
        items = await collect(run)
    assert all(item.ok for item in items)
    retrying = [e for e in events if e.kind == "retrying"]
    paused = [e for e in events if e.kind == "paused"]
    assert retrying
    assert all(e.index is not None and e.error is not None for e in retrying)
    assert paused
    assert all(e.wait == pytest.approx(0.3) for e in paused)
    assert run.stats.retries == len(retrying)
    assert run.stats.pauses == len(paused)
    assert run.stats.rate_limited > 0


@pytest.mark.upstage_emulator(error_rate=0.2, seed=5)
async def test_runs_and_listeners_share_one_client(upstage_emulator: EmulatorThread) -> None:
    """Two runs on one client count their own retries; listeners added meanwhile unhook neither."""
    heard: list[RetryEvent] = []
    late: list[RetryEvent] = []
    retries = Retries(attempts=10, initial=0.01, maximum=0.05)
    async with AsyncUpstageOCR(
        TEST_KEY, base_url=upstage_emulator.base_url, retries=retries
    ) as client:
        client._transport.retry_listeners.append(heard.append)
        first = client.ocr_many([unique_png(n) for n in range(30)])
        second = client.ocr_many([unique_png(n) for n in range(30, 60)])
        items: list[BulkItem] = []

        async def drain(run: BulkRun) -> None:
            async for item in run:
                items.append(item)
                if len(items) == 5:  # mid-run: someone else listens too
                    client._transport.retry_listeners.append(late.append)

        async with anyio.create_task_group() as group:
            group.start_soon(drain, first)
            group.start_soon(drain, second)
    assert len(items) == 60
    assert all(item.ok for item in items)
    assert first.stats.retries > 0
    assert second.stats.retries > 0
    assert first.stats.retries + second.stats.retries == len(heard)
    assert set(map(id, late)) <= set(map(id, heard))


async def test_event_hook_errors_are_logged_not_raised(
    client: AsyncUpstageOCR, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken progress display does not stop the run."""

    def broken(event: BulkEvent) -> None:
        raise ZeroDivisionError

    items = await collect(client.ocr_many([unique_png(n) for n in range(3)], on_event=broken))
    assert all(item.ok for item in items)
    assert "on_event hook" in caplog.text


def test_items_and_events_show_no_bytes() -> None:
    """Reprs name a source without printing a document's bytes."""
    data = unique_png(0)
    item = BulkItem(source=data, index=3, pages=1, route="sync")
    event = BulkEvent("queued", 3, data)
    assert repr(item) == f"<BulkItem #3 <{len(data)} bytes> sync 1 pages>"
    assert "bytes>" in repr(event)
    assert "PNG" not in repr(event)
    assert item.ok
    assert item.duration == 0.0


def test_item_mode_is_a_deprecated_name_for_route() -> None:
    """`BulkItem.route` is the endpoint used; the old name `mode` still reads it, with a warning."""
    item = BulkItem(source="a.pdf", index=0, route="async")
    with pytest.warns(DeprecationWarning, match="route"):
        assert item.mode == "async"
