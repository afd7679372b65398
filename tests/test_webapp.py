"""The example web app (examples/webapp.py) on loopback, beside the emulator, through real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from aioupstage_ocr.testing import EmulatorThread, make_pdf, page_text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import webapp

KEY = "up_TEST-key-webapp-0b7d-do-not-leak"


@pytest.fixture
async def app_url(
    upstage_emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    upstage_emulator.configure(api_key=KEY)
    monkeypatch.setenv("UPSTAGE_API_KEY", KEY)
    monkeypatch.setenv("UPSTAGE_BASE_URL", upstage_emulator.base_url)
    runner = web.AppRunner(webapp.make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    (host, port, *_) = runner.addresses[0]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_upload_route(app_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{app_url}/ocr?filename=three.pdf", data=make_pdf(3)) as response:
            assert response.status == 200
            body = await response.json()
        assert body["pages"] == 3
        assert body["text"] == "".join(page_text(n) for n in range(1, 4))
        assert body["request_id"] is None  # three pages: the sync endpoint answered
        async with session.post(f"{app_url}/ocr", data=b"") as response:
            assert response.status == 400


@pytest.mark.upstage_emulator(batch_latency=30.0)
async def test_upload_past_its_deadline_gives_the_request_to_collect(
    app_url: str, upstage_emulator: EmulatorThread
) -> None:
    """504 with the async request id; collecting it later pays nothing again."""
    async with aiohttp.ClientSession() as session:
        url = f"{app_url}/ocr?filename=big.pdf&timeout=0.5"
        async with session.post(url, data=make_pdf(120)) as response:
            assert response.status == 504
            body = await response.json()
    (request_id,) = body["request_ids"]
    assert upstage_emulator.stats.submissions(hashlib.sha256(make_pdf(120)).hexdigest()) == 1
    assert request_id in upstage_emulator.request_ids()


async def test_refused_document_is_a_400_naming_it(app_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{app_url}/ocr?filename=notes.pdf"
        async with session.post(url, data=b"plain text, not a PDF") as response:
            assert response.status == 400
            body = await response.json()
    assert "notes.pdf" in body["reason"]


async def test_bulk_route(app_url: str) -> None:
    form = aiohttp.FormData()
    for n in (1, 2, 120):  # 120 pages: past the sync limit, an async request
        form.add_field("document", make_pdf(n), filename=f"doc{n}.pdf")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{app_url}/bulk", data=form) as response:
            assert response.status == 202
            job = (await response.json())["job"]
        while True:
            async with session.get(f"{app_url}/bulk/{job}") as response:
                assert response.status == 200
                status = await response.json()
            if status["finished"]:
                break
            await asyncio.sleep(0.05)
        async with session.get(f"{app_url}/bulk/nope") as response:
            assert response.status == 404
    assert status["error"] is None
    assert status["total"] == status["completed"] == 3
    items = {item["source"]: item for item in status["items"]}
    for n in (1, 2, 120):
        item = items[f"doc{n}.pdf"]
        assert item["error"] is None
        assert item["pages"] == n
        assert item["text"] == "".join(page_text(p) for p in range(1, n + 1))
    assert items["doc120.pdf"]["request_id"]
    assert items["doc1.pdf"]["request_id"] is None
