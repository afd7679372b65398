"""Prepared documents wait for a sender longest work first, and none starves."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from aioupstage_ocr import AsyncUpstageOCR, BulkEvent, Limits
from aioupstage_ocr._bulk._ready import ReadyQueue
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf


@dataclass
class Doc:
    """What `ReadyQueue.put` reads of a prepared document."""

    route: str
    pages: int | None


def put(queue: ReadyQueue[str], name: str, route: str = "sync", pages: int = 1) -> None:
    queue.put(name, Doc(route, pages))  # type: ignore[arg-type]


def drain(queue: ReadyQueue[str]) -> list[str]:
    taken = []
    while len(queue):
        taken.append(queue._next())
    return taken


def test_async_first_then_the_most_pages_then_arrival() -> None:
    queue = ReadyQueue[str](1, patience=100)
    put(queue, "img-1")
    put(queue, "pdf-30", pages=30)
    put(queue, "async-120", "async", 120)
    put(queue, "img-2")
    put(queue, "async-300", "async", 300)
    put(queue, "pdf-11", pages=11)
    assert drain(queue) == ["async-300", "async-120", "pdf-30", "pdf-11", "img-1", "img-2"]


def test_the_oldest_is_overtaken_at_most_patience_times() -> None:
    queue = ReadyQueue[str](1, patience=2)
    put(queue, "small")
    taken = []
    for n in range(6):  # big ones keep coming
        put(queue, f"big-{n}", pages=50)
        taken.append(queue._next())
    assert taken.index("small") == 2


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 5),
    st.lists(st.tuples(st.booleans(), st.integers(1, 400), st.booleans()), max_size=60),
)
def test_every_document_goes_once_within_its_bound(patience: int, steps: list) -> None:
    """Random puts and gets: each goes out once, within k x (patience + 1) gets of its put."""
    queue = ReadyQueue[int](1, patience=patience)
    waiting: dict[int, tuple[int, int]] = {}  # item -> (gets so far at put, documents ahead)
    gets = 0
    out: list[int] = []
    for n, (is_async, pages, get_now) in enumerate(steps):
        waiting[n] = (gets, len(queue))
        queue.put(n, Doc("async" if is_async else "sync", pages))  # type: ignore[arg-type]
        if get_now:
            out.append(item := queue._next())
            gets += 1
            at, ahead = waiting.pop(item)
            assert gets - at <= (ahead + 1) * (patience + 1)
    while len(queue):
        out.append(item := queue._next())
        gets += 1
        at, ahead = waiting.pop(item)
        assert gets - at <= (ahead + 1) * (patience + 1)
    assert sorted(out) == list(range(len(steps)))


async def test_get_ends_when_every_producer_is_done() -> None:
    queue = ReadyQueue[str](2, patience=4)
    got: list[str | None] = []

    async def consume() -> None:
        while (item := await queue.get()) is not None:
            got.append(item)
        got.append(None)

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        put(queue, "a")
        queue.done()
        await anyio.wait_all_tasks_blocked()
        assert got == ["a"]
        queue.done()
    assert got == ["a", None]


async def test_a_bulk_run_submits_the_async_document_first() -> None:
    """A big PDF last in the input is submitted before the images queued ahead of it."""
    order: list[str] = []

    def watch(event: BulkEvent) -> None:
        if event.kind == "submitted" and (event.route == "sync" or event.request_id):
            order.append(event.route or "")

    base = make_image("png", seed=1)
    documents: list[bytes] = [base + f"#{n}".encode() for n in range(40)]
    documents.append(make_pdf(120))
    with EmulatorThread(sync_latency=0.05, batch_latency=0.01) as emulator:
        async with AsyncUpstageOCR(
            "key", base_url=emulator.base_url, limits=Limits(max_open_documents=2)
        ) as client:
            async for item in client.ocr_many(documents, on_event=watch):
                assert item.ok
    # In input order it would go 41st; it goes once preflighted, ahead of what waits.
    assert order.index("async") < 20
