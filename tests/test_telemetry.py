"""Traces and logs: a span per document and per HTTP exchange, with the fields that say
what happened, and never the key or a signed link's query."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from yarl import URL

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aioupstage_ocr import AsyncUpstageOCR, Polling, Retries
from aioupstage_ocr import _telemetry as telemetry
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf

POLLING = Polling(initial=0.02, maximum=0.1, factor=1.5, jitter=0.1)
_EXPORTER = InMemorySpanExporter()


class _WhileTesting(SimpleSpanProcessor):
    """Exports only while a test of this module runs: the provider, once set, stays for
    the rest of the session, and other tests' spans must not pile up here."""

    active = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            super().on_end(span)


_PROCESSOR = _WhileTesting(_EXPORTER)


@pytest.fixture(scope="module")
def provider() -> TracerProvider:
    """The process's tracer provider (set once: OpenTelemetry allows no second one)."""
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        current = TracerProvider()
        trace.set_tracer_provider(current)
    current.add_span_processor(_PROCESSOR)
    return current


@pytest.fixture
def spans(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    _PROCESSOR.active = True
    yield _EXPORTER
    _PROCESSOR.active = False
    _EXPORTER.clear()


def _all_text(found: list[ReadableSpan]) -> str:
    parts: list[str] = []
    for span in found:
        parts.append(span.name)
        parts += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
        parts += [str(e.attributes) for e in span.events]
        if span.status.description:
            parts.append(span.status.description)
    return "\n".join(parts)


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_spans_of_sync_and_async_documents(
    spans: InMemorySpanExporter,
    upstage_emulator: EmulatorThread,
    api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One document span each, its exchanges its children, with route, pages, request id;
    download spans carry no query string; nothing holds the key."""
    caplog.set_level(logging.DEBUG, logger="aioupstage_ocr")
    async with AsyncUpstageOCR(api_key, base_url=upstage_emulator.base_url, polling=POLLING) as c:
        sync = await c.ocr(make_image("png", seed=3), filename="one.png")
        seen: list[str] = []
        result = await c.ocr(
            make_pdf(12), filename="twelve.pdf", mode="async", on_accepted=seen.append
        )
        found = list(spans.get_finished_spans())
        status = await c.get_request(seen[0])  # outside any document: its span has no parent
    links = [URL(b.download_url) for b in status.batches if b.download_url is not None]
    assert len(links) == 2
    assert all(link.query_string for link in links)  # signed: the signature is the query
    assert sync.num_pages == 1
    documents = [s for s in found if s.name == "upstage.ocr.document"]
    assert [_attrs(d)["upstage.ocr.document"] for d in documents] == ["one.png", "twelve.pdf"]
    one, twelve = documents
    assert _attrs(one)["upstage.ocr.route"] == "sync"
    assert _attrs(one)["upstage.ocr.pages"] == 1
    assert "upstage.ocr.request_id" not in _attrs(one)
    assert _attrs(twelve)["upstage.ocr.route"] == "async"
    assert _attrs(twelve)["upstage.ocr.pages"] == 12
    request_id = _attrs(twelve)["upstage.ocr.request_id"]
    assert [request_id] == seen
    assert result.num_pages == 12
    http = [s for s in found if s.name == "upstage.ocr.http"]
    assert all(s.parent is not None for s in http)
    children = {
        d.context.span_id: [s for s in http if s.parent.span_id == d.context.span_id]
        for d in documents
    }  # type: ignore[union-attr]
    assert [_attrs(s)["upstage.ocr.route"] for s in children[one.context.span_id]] == ["sync_ocr"]
    routes = [_attrs(s)["upstage.ocr.route"] for s in children[twelve.context.span_id]]
    assert routes[0] == "request"  # the submit, then status fetches and downloads
    assert routes.count("download") == 2  # 12 pages: two batches of 10
    assert _attrs(twelve)["upstage.ocr.exchanges"] == len(routes)
    for span in http:
        attributes = _attrs(span)
        assert attributes["http.response.status_code"] == 200
        assert "?" not in attributes["url.full"]
        assert attributes["server.address"] == "127.0.0.1"
    downloads = [s for s in http if _attrs(s)["upstage.ocr.route"] == "download"]
    assert all(_attrs(s)["upstage.ocr.request_id"] == request_id for s in downloads)
    text = _all_text(found) + "\n".join(r.getMessage() for r in caplog.records)
    assert api_key not in text
    for link in links:
        assert link.query_string not in text
        assert str(link.with_query(None)) in text  # the link's span is there, unsigned


@pytest.mark.upstage_emulator(rps=1)
async def test_429_and_retries_are_counted_on_the_document(
    spans: InMemorySpanExporter,
    upstage_emulator: EmulatorThread,
    api_key: str,
    caplog: pytest.LogCaptureFixture,
    retry_testing: None,
) -> None:
    """429s answered and the retries they cost show on the document span and on the
    retry log records (`extra` fields); the 429 exchanges are spans with status ERROR."""
    caplog.set_level(logging.INFO, logger="aioupstage_ocr")
    async with AsyncUpstageOCR(
        api_key, base_url=upstage_emulator.base_url, retries=Retries(attempts=10)
    ) as c:
        for n in range(3):
            await c.ocr(make_image("png", seed=40 + n), filename=f"r{n}.png")
    found = list(spans.get_finished_spans())
    documents = [s for s in found if s.name == "upstage.ocr.document"]
    throttled = [s for s in found if _attrs(s).get("http.response.status_code") == 429]
    assert throttled
    assert all(s.status.status_code == trace.StatusCode.ERROR for s in throttled)
    assert sum(_attrs(d)["upstage.ocr.rate_limited"] for d in documents) == len(throttled)
    assert sum(_attrs(d)["upstage.ocr.retries"] for d in documents) >= len(throttled)
    retried = [r for r in caplog.records if r.getMessage().startswith("retrying")]
    assert retried
    assert all(
        getattr(r, "upstage_ocr_document", None) in {"r0.png", "r1.png", "r2.png"} for r in retried
    )
    assert api_key not in _all_text(found)


async def test_a_failed_document_span_says_the_error_type(
    spans: InMemorySpanExporter, upstage_emulator: EmulatorThread
) -> None:
    """A refused key: the span's status is ERROR with the exception's type, no message."""
    from aioupstage_ocr import AuthenticationError

    upstage_emulator.configure(api_key="the-right-key")
    async with AsyncUpstageOCR("wrong-key-1234", base_url=upstage_emulator.base_url) as c:
        with pytest.raises(AuthenticationError):
            await c.ocr(make_image("png", seed=1), filename="x.png")
    (document,) = [s for s in spans.get_finished_spans() if s.name == "upstage.ocr.document"]
    assert document.status.status_code == trace.StatusCode.ERROR
    assert document.status.description == "AuthenticationError"
    assert "wrong-key-1234" not in _all_text(list(spans.get_finished_spans()))


async def test_no_spans_without_opentelemetry(
    monkeypatch: pytest.MonkeyPatch,
    spans: InMemorySpanExporter,
    upstage_emulator: EmulatorThread,
    api_key: str,
) -> None:
    """Without the package (as if `[otel]` were not installed) nothing is traced, and
    everything works."""
    monkeypatch.setattr(telemetry, "_trace", None)
    assert not telemetry.enabled()
    async with AsyncUpstageOCR(api_key, base_url=upstage_emulator.base_url) as c:
        assert (await c.ocr(make_image("png", seed=9), filename="n.png")).num_pages == 1
    assert list(spans.get_finished_spans()) == []


async def test_bulk_documents_get_a_span_each(
    spans: InMemorySpanExporter, upstage_emulator: EmulatorThread, api_key: str
) -> None:
    documents = [make_image("png", seed=70 + n) for n in range(5)]
    async with AsyncUpstageOCR(api_key, base_url=upstage_emulator.base_url) as c:
        async for item in c.ocr_many(documents):
            assert item.ok
    found = list(spans.get_finished_spans())
    spans_of_documents = [s for s in found if s.name == "upstage.ocr.document"]
    assert len(spans_of_documents) == 5
    ids = {d.context.span_id for d in spans_of_documents}
    http = [
        s
        for s in found
        if s.name == "upstage.ocr.http" and _attrs(s)["upstage.ocr.route"] == "sync_ocr"
    ]
    assert len(http) == 5
    assert {s.parent.span_id for s in http if s.parent is not None} == ids
