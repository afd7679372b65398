"""The poll scheduler: many requests, one loop; backoff; batches downloaded as they finish."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
import pytest
from aiohttp import web

from aioupstage_ocr import (
    AsyncUpstageOCR,
    BatchFailedError,
    DocumentLimits,
    IncompleteResultError,
    Limits,
    PermissionDeniedError,
    Polling,
    Progress,
    RateLimit,
    RequestFailedError,
)
from aioupstage_ocr._poller import MAX_LINK_REFRESHES, PollScheduler
from aioupstage_ocr._transport import Transport
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf, page_text

FAST = Polling(initial=0.02, maximum=0.1, factor=1.5, jitter=0.1)


def batch_result(start: int, end: int) -> dict[str, Any]:
    """A batch download body in the sync shape, page ids counting from the batch."""
    return {
        "api": "2.0",
        "model": "ocr-test",
        "pages": [
            {"id": i, "text": f"page {p}", "words": []} for i, p in enumerate(range(start, end + 1))
        ],
        "usage": {"pages": end - start + 1},
    }


class FakeService:
    """A scripted async service on loopback: `statuses(fetch_number)` gives each status body."""

    def __init__(
        self,
        statuses: Callable[[int, str], dict[str, Any]],
        lists: Callable[[int], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.statuses = statuses
        self.lists = lists  # None: the list route is not served (404)
        self.fetches: list[float] = []
        self.fetched: list[str] = []  # request ids, one per status fetch
        self.listed = 0
        self.downloads: list[str] = []
        self.storage = ""

    def link(self, start: int, end: int, generation: int) -> str:
        return f"{self.storage}/b/{start}-{end}.json?gen={generation}"

    async def status(self, request: web.Request) -> web.Response:
        self.fetches.append(time.monotonic())
        self.fetched.append(request.match_info["request_id"])
        body = self.statuses(len(self.fetches), request.match_info["request_id"])
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def list(self, request: web.Request) -> web.Response:
        if self.lists is None:
            raise web.HTTPNotFound()
        self.listed += 1
        body = {"requests": self.lists(self.listed)}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def download(self, request: web.Request) -> web.Response:
        self.downloads.append(request.path_qs)
        if request.query.get("gen") == "1":
            return web.Response(
                body=b"<Error><Code>AccessDenied</Code><Message>Expired</Message></Error>",
                status=403,
                content_type="application/xml",
            )
        start, end = (int(x) for x in request.match_info["pages"].split("-"))
        return web.Response(
            body=orjson.dumps(batch_result(start, end)), content_type="application/json"
        )


@asynccontextmanager
async def running(service: FakeService) -> AsyncIterator[Transport]:
    """The fake service's API and storage hosts, and a transport to them."""
    api = web.Application()
    api.router.add_get("/v1/document-digitization/requests/{request_id}", service.status)
    api.router.add_get("/v1/document-digitization/requests", service.list)
    storage = web.Application()
    storage.router.add_get("/b/{pages}.json", service.download)
    runners = [web.AppRunner(app, shutdown_timeout=0.1) for app in (api, storage)]
    ports = []
    for runner in runners:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        ports.append(runner.addresses[0][1])
    service.storage = f"http://127.0.0.1:{ports[1]}"
    transport = Transport(api_key="k", base_url=f"http://127.0.0.1:{ports[0]}/v1")
    try:
        yield transport
    finally:
        await transport.aclose()
        for runner in runners:
            await runner.cleanup()


def status_body(
    request_id: str, batches: list[tuple[int, int, str, str]], *, total: int, status: str
) -> dict[str, Any]:
    return {
        "id": request_id,
        "status": status,
        "failure_message": "",
        "total_pages": total,
        "completed_pages": sum(e - s + 1 for s, e, st, _ in batches if st == "completed"),
        "batches": [
            {"id": i, "status": st, "download_url": url, "start_page": s, "end_page": e}
            for i, (s, e, st, url) in enumerate(batches)
        ],
    }


async def test_expired_links_share_one_refetch(retry_testing: None) -> None:
    """Four expired links: one status re-fetch serves them all, then each downloads once more."""
    ranges = [(31, 35), (1, 10), (21, 30), (11, 20)]  # listed out of order

    def statuses(fetch: int, request_id: str) -> dict[str, Any]:
        batches = [(s, e, "completed", service.link(s, e, fetch)) for s, e in ranges]
        return status_body(request_id, batches, total=35, status="completed")

    service = FakeService(statuses)
    async with running(service) as transport, PollScheduler(transport, FAST) as scheduler:
        result = await scheduler.track("req-1")
    assert len(service.fetches) == 2
    assert sorted(service.downloads) == sorted(
        [f"/b/{s}-{e}.json?gen={g}" for s, e in ranges for g in (1, 2)]
    )
    assert [p.text for p in result.pages] == [f"page {n}" for n in range(1, 36)]
    assert [p.index for p in result.pages] == list(range(35))
    assert result.billed_pages == 35


async def test_backoff_grows_without_progress_and_resets() -> None:
    """Waits grow by `factor` while nothing moves, up to `maximum`, and reset on progress."""
    polling = Polling(initial=0.04, maximum=0.16, factor=2.0, jitter=0.0)

    def statuses(fetch: int, request_id: str) -> dict[str, Any]:
        first = "completed" if fetch >= 6 else "started"
        second = "completed" if fetch >= 8 else "started"
        batches = [
            (1, 10, first, service.link(1, 10, 2) if first == "completed" else ""),
            (11, 12, second, service.link(11, 12, 2) if second == "completed" else ""),
        ]
        done = "completed" if fetch >= 8 else "started"
        return status_body(request_id, batches, total=12, status=done)

    service = FakeService(statuses)
    async with running(service) as transport, PollScheduler(transport, polling) as scheduler:
        result = await scheduler.track("req-2")
    assert result.num_pages == 12
    gaps = [b - a for a, b in zip(service.fetches, service.fetches[1:], strict=False)]
    # fetch 1 sets the baseline; 2..5 see nothing new; 6 sees a batch done; 7 nothing; 8 done.
    expected = [0.04, 0.08, 0.16, 0.16, 0.16, 0.04, 0.08]
    assert len(gaps) == len(expected)
    for gap, want in zip(gaps, expected, strict=True):
        assert gap >= want * 0.95
    assert gaps[5] < gaps[4]  # reset after progress
    assert service.downloads == ["/b/1-10.json?gen=2", "/b/11-12.json?gen=2"]


async def test_completed_batch_downloads_while_others_run() -> None:
    """A batch is fetched as soon as it is listed completed, before the request completes."""
    downloaded_at: dict[int, int] = {}

    def statuses(fetch: int, request_id: str) -> dict[str, Any]:
        for path in service.downloads:
            downloaded_at.setdefault(int(path.split("/b/")[1].split("-")[0]), fetch)
        late = fetch >= 10
        batches = [
            (1, 10, "completed", service.link(1, 10, 2)),
            (11, 15, "completed" if late else "started", service.link(11, 15, 2) if late else ""),
        ]
        return status_body(request_id, batches, total=15, status="completed" if late else "started")

    service = FakeService(statuses)
    async with running(service) as transport, PollScheduler(transport, FAST) as scheduler:
        result = await scheduler.track("req-3")
    assert result.num_pages == 15
    assert downloaded_at[1] < 10  # fetched while the request was still running


async def test_completed_without_link_is_asked_again() -> None:
    """A batch listed completed but without a link (not signed yet) is polled for one."""

    def statuses(fetch: int, request_id: str) -> dict[str, Any]:
        url = service.link(1, 4, 2) if fetch >= 3 else ""
        return status_body(request_id, [(1, 4, "completed", url)], total=4, status="completed")

    service = FakeService(statuses)
    async with running(service) as transport, PollScheduler(transport, FAST) as scheduler:
        result = await scheduler.track("req-6")
    assert result.num_pages == 4
    assert len(service.fetches) == 3
    assert service.downloads == ["/b/1-4.json?gen=2"]


async def test_gap_in_batches_is_an_error() -> None:
    """A completed request whose batches leave pages out raises, never a shorter document."""

    def statuses(fetch: int, request_id: str) -> dict[str, Any]:
        batches = [
            (1, 10, "completed", service.link(1, 10, 2)),
            (21, 30, "completed", service.link(21, 30, 2)),
        ]
        return status_body(request_id, batches, total=30, status="completed")

    service = FakeService(statuses)
    async with running(service) as transport, PollScheduler(transport, FAST) as scheduler:
        with pytest.raises(IncompleteResultError, match="pages 11-20 missing"):
            await scheduler.track("req-4")


async def test_links_that_never_work_give_up(retry_testing: None) -> None:
    """A link refused after every refresh ends the wait with the 403, after a bounded number."""

    def statuses(fetch: int, request_id: str) -> dict[str, Any]:
        return status_body(
            request_id, [(1, 3, "completed", service.link(1, 3, 1))], total=3, status="completed"
        )

    service = FakeService(statuses)
    async with running(service) as transport, PollScheduler(transport, FAST) as scheduler:
        with pytest.raises(PermissionDeniedError, match="AccessDenied: Expired"):
            await scheduler.track("req-5")
    assert len(service.downloads) == MAX_LINK_REFRESHES + 1
    assert len(service.fetches) == MAX_LINK_REFRESHES + 1


async def test_many_requests_one_scheduler(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """Six requests tracked at once by one scheduler, polls at most `max_polls` at a time."""
    upstage_emulator.configure(batch_latency=0.05, latency_jitter=0.8, workers=3)
    documents = [make_pdf([f"doc {d} page {p}" for p in range(1, 4 + d * 3)]) for d in range(6)]
    ids = [await client.submit(doc, filename=f"d{d}.pdf") for d, doc in enumerate(documents)]
    reports: list[Progress] = []
    results: dict[str, Any] = {}
    async with PollScheduler(
        client._transport, FAST, Limits(max_polls=2), on_progress=reports.append
    ) as scheduler:

        async def one(request_id: str) -> None:
            results[request_id] = await scheduler.track(request_id)

        async with anyio.create_task_group() as group:
            for request_id in ids:
                group.start_soon(one, request_id)
        assert scheduler.tracking == 0
    for d, request_id in enumerate(ids):
        pages = results[request_id].pages
        assert [p.text for p in pages] == [f"doc {d} page {p}" for p in range(1, 4 + d * 3)]
    finals = [r for r in reports if r.done]
    assert sorted(r.request_id for r in finals) == sorted(ids)
    assert all(r.downloaded_pages == r.total_pages for r in finals)
    assert all(upstage_emulator.stats.polls[i] >= 1 for i in ids)


async def test_truncated_downloads_are_fetched_again(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """Bodies cut short by the storage host are downloaded again; the result is whole."""
    upstage_emulator.configure(truncate_rate=0.5, seed=3)
    request_id = await client.submit(make_pdf(40), filename="t.pdf")
    result = await client.wait(request_id)
    assert [p.text for p in result.pages] == [page_text(n) for n in range(1, 41)]
    assert upstage_emulator.stats.downloads_truncated > 0


async def test_failures_carry_the_service_reason(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """A failed batch and a failed request raise with the service's failure_message."""
    upstage_emulator.configure(batch_failure_rate=1.0)
    request_id = await client.submit(make_pdf(12), filename="b.pdf")
    with pytest.raises(BatchFailedError) as batch:
        await client.wait(request_id)
    assert batch.value.request_id == request_id
    assert batch.value.failure_message
    assert batch.value.failure_message in str(batch.value)
    upstage_emulator.configure(batch_failure_rate=0.0, max_async_pages=3)
    request_id = await client.submit(make_pdf(5), filename="r.pdf")
    with pytest.raises(RequestFailedError) as request:
        await client.wait(request_id)
    assert not isinstance(request.value, BatchFailedError)
    assert request.value.failure_message


async def test_leaving_the_scheduler_stops_everything(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """Closing the scheduler ends waits still open; cancelling a wait stops its polls."""
    upstage_emulator.configure(start_delay=30.0)
    request_id = await client.submit(make_pdf(2), filename="slow.pdf")
    outcome: list[BaseException] = []
    async with (
        anyio.create_task_group() as group,
        PollScheduler(client._transport, FAST) as scheduler,
    ):

        async def waiter() -> None:
            try:
                await scheduler.track(request_id)
            except RuntimeError as exc:
                outcome.append(exc)

        group.start_soon(waiter)
        await anyio.sleep(0.1)
    assert len(outcome) == 1
    assert "closed" in str(outcome[0])
    polls = upstage_emulator.stats.polls[request_id]
    assert polls >= 2
    # A cancelled wait leaves nothing polling behind.
    async with PollScheduler(client._transport, FAST) as scheduler:
        with anyio.move_on_after(0.1):
            await scheduler.track(request_id)
        assert scheduler.tracking == 0
        await anyio.sleep(0.05)  # a poll already on the wire may still land
        polls = upstage_emulator.stats.polls[request_id]
        await anyio.sleep(0.2)
        assert upstage_emulator.stats.polls[request_id] == polls


async def test_eta_from_the_service_pace_and_the_queue_ahead() -> None:
    """A request is due when the pages open ahead of it and in it are done, at the seen pace."""
    from aioupstage_ocr import RequestStatus
    from aioupstage_ocr._poller import _Tracked

    transport = Transport(api_key="k", base_url="http://127.0.0.1:9/v1")
    scheduler = PollScheduler(transport, Polling(initial=1.0, maximum=15.0, jitter=0.0))
    requests = []
    for order, (total, done) in enumerate([(40, 20), (30, 0), (50, 0)]):
        tracked = _Tracked(f"r{order}", interval=1.0, order=order)
        tracked.last = RequestStatus(
            id=tracked.request_id, status="started", total_pages=total, completed_pages=done
        )
        scheduler._tracked[tracked.request_id] = tracked
        requests.append(tracked)
    now = anyio.current_time()
    assert scheduler._eta(requests[1]) is None  # no pace seen yet: the backoff decides
    scheduler._completions.extend([(now - 10.0, 50), (now - 5.0, 50)])  # 100 pages in 10 s
    assert scheduler._eta(requests[0]) == pytest.approx(2.0, rel=0.01)  # its own 20 pages
    assert scheduler._eta(requests[1]) == pytest.approx(5.0, rel=0.01)  # 20 ahead + its 30
    assert scheduler._eta(requests[2]) == pytest.approx(10.0, rel=0.01)  # 50 ahead + its 50
    # The wait is a share of the estimate, never past Polling.maximum.
    assert scheduler._next_delay(requests[2]) == pytest.approx(6.0, rel=0.01)
    scheduler._completions.clear()
    scheduler._completions.extend([(now - 10.0, 1), (now - 5.0, 1)])  # a crawl: 0.2 pages/s
    assert scheduler._next_delay(requests[2]) == 15.0
    await transport.aclose()


# --------------------------------------------------------------------------- the request list


async def track_all(scheduler: PollScheduler, ids: list[str]) -> dict[str, Any]:
    """Track every id at once; each one's result or error."""
    outcomes: dict[str, Any] = {}

    async def one(request_id: str) -> None:
        try:
            outcomes[request_id] = await scheduler.track(request_id)
        except Exception as exc:  # noqa: BLE001 - the test looks at each outcome
            outcomes[request_id] = exc

    async with anyio.create_task_group() as group:
        for request_id in ids:
            group.start_soon(one, request_id)
    return outcomes


@pytest.mark.upstage_emulator(start_delay=0.2, batch_latency=0.02, workers=4)
async def test_many_open_requests_are_answered_by_the_list(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """Eight requests open at once: lists watch them, each gets one status fetch when it ends."""
    documents = [make_pdf([f"doc {d} page {p}" for p in range(1, 6 + d * 4)]) for d in range(8)]
    ids = [await client.submit(doc, filename=f"d{d}.pdf") for d, doc in enumerate(documents)]
    stats = upstage_emulator.stats
    assert stats.requests["list"] == 0
    async with PollScheduler(client._transport, FAST, Limits(max_polls=2)) as scheduler:
        outcomes = await track_all(scheduler, ids)
    for d, request_id in enumerate(ids):
        pages = outcomes[request_id].pages
        assert [p.text for p in pages] == [f"doc {d} page {p}" for p in range(1, 6 + d * 4)]
    # Never a status fetch while a request ran and another was open: one each, for
    # its batches and links. The last one left open alone is polled on its own (a
    # list would answer for one request only), so it may take a fetch or two more.
    polls = sorted(stats.polls[i] for i in ids)
    assert polls[:-1] == [1] * (len(ids) - 1)
    assert polls[-1] <= 3
    assert stats.requests["status"] == sum(polls)
    assert stats.requests["list"] >= 2  # the 0.2 s start delay outlasts the first list


@pytest.mark.upstage_emulator(start_delay=0.1, max_async_pages=3)
async def test_a_request_listed_failed_gets_its_reason_from_one_status(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """The list says `failed`; one status fetch brings the service's failure message."""
    ids = [await client.submit(make_pdf(5 + d), filename=f"f{d}.pdf") for d in range(3)]
    async with PollScheduler(client._transport, FAST) as scheduler:
        outcomes = await track_all(scheduler, ids)
    for request_id in ids:
        error = outcomes[request_id]
        assert isinstance(error, RequestFailedError)
        assert error.request_id == request_id
        assert error.failure_message
    stats = upstage_emulator.stats
    assert {i: stats.polls[i] for i in ids} == dict.fromkeys(ids, 1)
    assert stats.requests["list"] >= 1


async def test_a_request_missing_from_the_list_gets_its_own_status() -> None:
    """One request never shows in the list: it is polled on its own; the listed ones are not."""
    lists_to_finish, fetches_to_finish = 3, 4

    def listed_state() -> str:
        return "completed" if service.listed >= lists_to_finish else "started"

    def lists(number: int) -> list[dict[str, Any]]:
        return [{"id": rid, "status": listed_state(), "model": "ocr"} for rid in ("a", "b")]

    def statuses(fetch: int, request_id: str) -> dict[str, Any]:
        if request_id == "hidden":
            done = service.fetched.count("hidden") >= fetches_to_finish
            status = "completed" if done else "started"
        else:
            status = listed_state()
        url = service.link(1, 3, 2) if status == "completed" else ""
        return status_body(request_id, [(1, 3, status, url)], total=3, status=status)

    service = FakeService(statuses, lists)
    async with running(service) as transport, PollScheduler(transport, FAST) as scheduler:
        outcomes = await track_all(scheduler, ["a", "b", "hidden"])
    for request_id in ("a", "b", "hidden"):
        assert [p.text for p in outcomes[request_id].pages] == ["page 1", "page 2", "page 3"]
    # The listed ones: one status each, once the list said completed.
    assert service.fetched.count("a") == service.fetched.count("b") == 1
    assert service.fetched.count("hidden") == fetches_to_finish
    assert service.listed >= lists_to_finish


async def test_a_list_not_served_turns_listing_off() -> None:
    """A 404 on the list: one try, then every request is polled on its own, to the end."""

    def statuses(fetch: int, request_id: str) -> dict[str, Any]:
        mine = service.fetched.count(request_id)
        status = "completed" if mine >= 3 else "started"
        url = service.link(1, 2, 2) if status == "completed" else ""
        return status_body(request_id, [(1, 2, status, url)], total=2, status=status)

    service = FakeService(statuses)  # no list route
    ids = ["a", "b", "c"]
    async with running(service) as transport, PollScheduler(transport, FAST) as scheduler:
        outcomes = await track_all(scheduler, ids)
    assert all(outcomes[i].num_pages == 2 for i in ids)
    assert sorted(service.fetched) == sorted(ids * 3)


@pytest.mark.upstage_emulator(start_delay=0.1, batch_latency=0.01, workers=8)
async def test_expired_links_are_fetched_again_while_listing(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread
) -> None:
    """Links dead when a listed request ends: its own status re-fetch brings fresh ones."""
    documents = [make_pdf([f"doc {d} page {p}" for p in range(1, 22 + d * 5)]) for d in range(4)]
    ids = [await client.submit(doc, filename=f"e{d}.pdf") for d, doc in enumerate(documents)]
    triggered: set[str] = set()

    def expire_when_complete(progress: Progress) -> None:
        # The status that shows every batch done starts their downloads; expire those links.
        if (
            not progress.done
            and progress.request_id not in triggered
            and progress.total_pages
            and progress.completed_pages == progress.total_pages
            and progress.downloaded_pages == 0
        ):
            triggered.add(progress.request_id)
            upstage_emulator.expire_links()

    async with PollScheduler(
        client._transport, FAST, on_progress=expire_when_complete
    ) as scheduler:
        outcomes = await track_all(scheduler, ids)
    for d, request_id in enumerate(ids):
        pages = outcomes[request_id].pages
        assert [p.text for p in pages] == [f"doc {d} page {p}" for p in range(1, 22 + d * 5)]
    stats = upstage_emulator.stats
    assert triggered == set(ids)
    assert stats.downloads_expired >= 3 * len(ids)  # every request's first links, at least
    assert stats.requests["list"] >= 1
    for request_id in ids:
        # Its ending status, then one re-fetch (more only if another's expiry hit it too).
        assert 2 <= stats.polls[request_id] <= 1 + len(triggered)


@pytest.mark.upstage_emulator(rps=10, sync_latency=0.01, batch_latency=1.5, workers=1)
async def test_lists_wait_for_uploads_queued_at_the_rate_limit(
    upstage_emulator: EmulatorThread, api_key: str
) -> None:
    """Under a binding RPS limit, a bulk run's request lists wait for its queued uploads.

    Two async PDFs (6 s of batch work) and 40 images (4 s of uploads at 10
    RPS). The same run lifted to handler priority, as a control, lists on
    its usual schedule while the uploads queue; the bulk run's lists wait,
    up to `Polling.maximum` each, and every document still comes back.
    """
    lists: dict[str, int] = {}
    for n, priority in enumerate(("bulk", "handler")):
        pdfs = [make_pdf([f"run {n} pdf {k} page {p}" for p in range(20)]) for k in range(2)]
        images = [make_image("png", seed=1000 * n + k) for k in range(40)]
        before = upstage_emulator.stats.snapshot().requests["list"]
        async with AsyncUpstageOCR(
            api_key,
            base_url=upstage_emulator.base_url,
            rate=RateLimit(rps=10),
            polling=Polling(initial=0.2, maximum=3.0),
            document_limits=DocumentLimits(sync_max_pages=1),
        ) as client:
            items = [item async for item in client.ocr_many(pdfs + images, priority=priority)]
        assert all(item.ok for item in items)
        assert sum(item.request_id is not None for item in items) == 2
        lists[priority] = upstage_emulator.stats.snapshot().requests["list"] - before
    print(f"lists: {lists}")
    assert lists["bulk"] < lists["handler"]
    assert lists["bulk"] <= 5  # the first, one per Polling.maximum while uploads queue, the tail
