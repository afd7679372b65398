"""The emulator over real HTTP: sync and async endpoints, shapes, downloads, samples.

`Api` below is the raw HTTP helper the other emulator test modules import.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from aioupstage_ocr.testing import (
    EmulatorThread,
    UpstageEmulator,
    emulated_text,
    make_image,
    make_pdf,
    make_tiff,
    page_text,
)

KEY = "test-key"


@dataclass
class Reply:
    """One HTTP answer, read whole."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def error_message(self) -> str:
        data = self.json()
        return str(data["error"]["message"] if "error" in data else data["message"])


class Api:
    """Raw HTTP calls to an emulator (no client library in between)."""

    def __init__(self, session: aiohttp.ClientSession, emulator: UpstageEmulator) -> None:
        self.session = session
        self.emulator = emulator
        self.auth = {"Authorization": f"Bearer {KEY}"}

    async def _send(self, method: str, url: str, **kwargs: Any) -> Reply:
        async with self.session.request(method, url, **kwargs) as response:
            body = await response.read()
            return Reply(response.status, dict(response.headers), body)

    async def post(
        self,
        document: bytes | io.IOBase | None,
        *,
        filename: str = "doc.pdf",
        model: str | None = "ocr",
        endpoint: str = "sync",
        schema: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        form = aiohttp.FormData()
        if model is not None:
            form.add_field("model", model)
        if schema is not None:
            form.add_field("schema", schema)
        if document is not None:
            form.add_field("document", document, filename=filename)
        path = "/document-digitization" + ("/async" if endpoint == "async" else "")
        return await self._send(
            "POST",
            self.emulator.base_url + path,
            data=form,
            headers=self.auth if headers is None else headers,
        )

    async def submit(self, document: bytes, **kwargs: Any) -> str:
        reply = await self.post(document, endpoint="async", **kwargs)
        assert reply.status == 200, reply.body
        return str(reply.json()["request_id"])

    async def status(self, request_id: str) -> Reply:
        url = f"{self.emulator.base_url}/document-digitization/requests/{request_id}"
        return await self._send("GET", url, headers=self.auth)

    async def requests(self) -> Reply:
        url = f"{self.emulator.base_url}/document-digitization/requests"
        return await self._send("GET", url, headers=self.auth)

    async def wait(self, request_id: str, within: float = 30.0) -> dict[str, Any]:
        """Poll until the request is completed or failed (at most `within` s); its last status."""
        async with asyncio.timeout(within):
            while True:
                reply = await self.status(request_id)
                assert reply.status == 200, reply.body
                data: dict[str, Any] = reply.json()
                if data["status"] in ("completed", "failed"):
                    return data
                await asyncio.sleep(0.02)

    async def download(self, url: str, headers: dict[str, str] | None = None) -> Reply:
        return await self._send("GET", url, headers=headers)


@pytest.fixture
async def api(upstage_emulator: EmulatorThread) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, upstage_emulator)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_unit_box(word: dict[str, Any]) -> None:
    """A seed-shape word's box: four ratio vertices, clockwise from top-left."""
    vertices = word["bounding_box"]["vertices"]
    assert len(vertices) == 4
    for vertex in vertices:
        assert 0 <= vertex["x"] <= 1
        assert 0 <= vertex["y"] <= 1
    (x0, y0), (x1, y1) = (vertices[0]["x"], vertices[0]["y"]), (vertices[2]["x"], vertices[2]["y"])
    assert x0 <= x1
    assert y0 <= y1
    assert vertices[1] == {"x": x1, "y": y0}  # clockwise from top-left
    assert vertices[3] == {"x": x0, "y": y1}


def assert_pixel_box(word: dict[str, Any], width: int, height: int) -> None:
    """A live-shape word's box: four integer pixel vertices on the page, clockwise."""
    vertices = word["boundingBox"]["vertices"]
    assert len(vertices) == 4
    for vertex in vertices:
        assert set(vertex) == {"x", "y"}
        assert type(vertex["x"]) is int
        assert type(vertex["y"]) is int
        assert 0 <= vertex["x"] <= width
        assert 0 <= vertex["y"] <= height
    (x0, y0), (x1, y1) = (vertices[0]["x"], vertices[0]["y"]), (vertices[2]["x"], vertices[2]["y"])
    assert x0 <= x1
    assert y0 <= y1
    assert vertices[1] == {"x": x1, "y": y0}
    assert vertices[3] == {"x": x0, "y": y1}


def assert_error_body(reply: Reply, status: int) -> dict[str, Any]:
    """The reference's error body, `{"code": <status>, "message": ...}`; returns it."""
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    error: dict[str, Any] = reply.json()
    assert set(error) == {"code", "message"}
    assert error["code"] == status
    assert error["message"]
    return error


# -- sync ---------------------------------------------------------------------


LIVE_TOP = {
    "apiVersion", "confidence", "metadata", "mimeType", "modelVersion", "numBilledPages",
    "pages", "stored", "text",
}  # fmt: skip
LIVE_PAGE = {"confidence", "height", "id", "text", "width", "words"}
LIVE_WORD = {"boundingBox", "confidence", "id", "text"}


async def test_sync_reads_pdf_text_layer(api: Api) -> None:
    """A PDF's pages come back in the live shape, key for key, one page object each."""
    reply = await api.post(make_pdf(3))
    assert reply.status == 200
    data = reply.json()
    assert set(data) == LIVE_TOP
    assert list(data) == sorted(LIVE_TOP)  # in the service's order too
    assert (data["apiVersion"], data["modelVersion"]) == ("1.1", "ocr-2.2.1")
    assert (data["mimeType"], data["stored"], data["numBilledPages"]) == (
        "multipart/form-data", False, 3
    )  # fmt: skip
    assert [p["id"] for p in data["pages"]] == [0, 1, 2]
    assert [p["text"] for p in data["pages"]] == [page_text(n) for n in (1, 2, 3)]
    assert data["text"] == "".join(p["text"] for p in data["pages"])
    assert data["confidence"] == min(p["confidence"] for p in data["pages"])
    assert data["metadata"] == {
        "pages": [{"height": 1650, "page": n, "width": 1275} for n in (1, 2, 3)]
    }  # letter at 150 dpi
    ids = [w["id"] for p in data["pages"] for w in p["words"]]
    assert ids == list(range(len(ids)))  # counting across the document
    for page in data["pages"]:
        assert set(page) == LIVE_PAGE
        assert " ".join(w["text"] for w in page["words"]) == page["text"]
        for word in page["words"]:
            assert set(word) == LIVE_WORD
            assert_pixel_box(word, page["width"], page["height"])
            assert 0 < word["confidence"] <= 1


async def test_lines_joined_as_the_service_joins_them(api: Api) -> None:
    """A page's lines are joined with " \\n"; image pages are the image's own pixels."""
    data = (await api.post(make_image("png"), filename="scan.png")).json()
    page = data["pages"][0]
    assert " \n" in page["text"]
    assert "\n" not in page["text"].replace(" \n", "")
    from PIL import Image

    with Image.open(io.BytesIO(make_image("png"))) as image:
        assert (page["width"], page["height"]) == image.size


async def test_two_pages_never_read_the_same(api: Api) -> None:
    """Pages of one document differ, in text and in derived content."""
    pdf = (await api.post(make_pdf(3))).json()["pages"]
    assert len({p["text"] for p in pdf}) == 3
    tiff = (await api.post(make_tiff(3), filename="scan.tiff")).json()["pages"]
    assert len(tiff) == 3
    assert [p["text"].split()[:2] for p in tiff] == [["page", "1"], ["page", "2"], ["page", "3"]]
    assert len({p["text"] for p in tiff}) == 3


async def test_same_document_reads_the_same(api: Api) -> None:
    """Deterministic content: the same bytes give the same answer, as `emulated_text` says."""
    image = make_image("jpeg", seed=5)
    first = (await api.post(image, filename="a.jpg")).json()
    second = (await api.post(image, filename="b.jpg")).json()
    assert first == second
    assert [p["text"] for p in first["pages"]] == emulated_text(image)


async def test_auth_any_key_by_default(api: Api) -> None:
    """Any non-empty bearer key passes; none or a malformed header gets 401 with a JSON body."""
    assert (await api.post(make_pdf(1), headers={"Authorization": "Bearer x"})).status == 200
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}):
        reply = await api.post(make_pdf(1), headers=headers)
        assert "Authorization" in assert_error_body(reply, 401)["message"]


async def test_auth_configured_key(api: Api, upstage_emulator: EmulatorThread) -> None:
    """With a configured key only that key passes, and the key is never echoed."""
    upstage_emulator.configure(api_key="s3cret")
    reply = await api.post(make_pdf(1), headers={"Authorization": "Bearer wrong"})
    assert_error_body(reply, 401)
    assert b"s3cret" not in reply.body
    assert "s3cret" not in repr(upstage_emulator)
    ok = await api.post(make_pdf(1), headers={"Authorization": "Bearer s3cret"})
    assert ok.status == 200
    assert (await api.status("x")).status == 401


async def test_model_field(api: Api) -> None:
    """`ocr` and the pinned version pass; a missing or unknown model is a 400."""
    assert (await api.post(make_pdf(1), model="ocr-2.2.1")).status == 200
    assert assert_error_body(await api.post(make_pdf(1), model="layout"), 400) == {
        "code": 400, "message": "invalid model name"
    }  # fmt: skip
    assert_error_body(await api.post(make_pdf(1), model=None), 400)
    assert_error_body(await api.post(make_pdf(1), endpoint="async", model="nope"), 400)


async def test_document_field_required(api: Api) -> None:
    """No document, or no multipart body at all, is a 400 with a JSON error."""
    assert assert_error_body(await api.post(None), 400)["message"] == "no document in the request"
    reply = await api._send(
        "POST", api.emulator.base_url + "/document-digitization", json={"model": "ocr"},
        headers=api.auth,
    )  # fmt: skip
    assert_error_body(reply, 400)


async def test_format_from_bytes_not_name(api: Api) -> None:
    """A PNG named .pdf is read as the image it is."""
    reply = await api.post(make_image("png"), filename="scan.pdf")
    assert reply.status == 200
    pages = reply.json()["pages"]
    assert len(pages) == 1
    assert pages[0]["text"].startswith("page 1 ")


async def test_unsupported_format_415(api: Api) -> None:
    """Plain text is not taken: 415."""
    reply = await api.post(b"just some text\n", filename="notes.txt")
    assert assert_error_body(reply, 415)["message"] == "unsupported document format"


async def test_empty_document_400(api: Api) -> None:
    """A zero-byte document is refused with a JSON error naming it."""
    reply = await api.post(b"", filename="empty.pdf")
    assert "empty.pdf" in assert_error_body(reply, 400)["message"]


async def test_over_50_mb_413(api: Api, tmp_path: Path) -> None:
    """A document over 50 MB (a sparse file) gets 413, after the body was read."""
    big = tmp_path / "big.pdf"
    with big.open("wb") as handle:
        handle.write(b"%PDF-1.4\n")
        handle.truncate(50_000_001)
    with big.open("rb") as handle:
        reply = await api.post(handle, filename="big.pdf")
    message = assert_error_body(reply, 413)["message"]
    assert message == "uploaded document is too large. max allowed size is 50MB"
    assert api.emulator.stats.sync_submissions == {}


async def test_sync_page_limit_413(api: Api, upstage_emulator: EmulatorThread) -> None:
    """More than 100 pages is a 413 on sync; the limit is configurable."""
    assert "101 pages" in assert_error_body(await api.post(make_pdf(101)), 413)["message"]
    assert (await api.post(make_pdf(100))).status == 200
    upstage_emulator.configure(max_sync_pages=2)
    assert_error_body(await api.post(make_pdf(3)), 413)


async def test_pixel_limit_413(api: Api, upstage_emulator: EmulatorThread) -> None:
    """A page over the pixel limit is refused."""
    upstage_emulator.configure(max_pixels=1000)
    assert "pixels" in assert_error_body(await api.post(make_image("png")), 413)["message"]


@pytest.mark.filterwarnings("ignore::UserWarning")
async def test_corrupt_documents_422(api: Api) -> None:
    """Corrupt files get a 422 naming them, never a 500."""
    tiff = bytearray(make_tiff(1))
    tiff[8] ^= 0xFF  # the first directory's entry count
    pdf = make_pdf(2)[:300]
    for data, name in ((bytes(tiff), "broken.tif"), (pdf, "cut.pdf")):
        error = assert_error_body(await api.post(data, filename=name), 422)
        assert name in error["message"]
    assert api.emulator.stats.statuses[500] == 0


async def test_seed_shape_switch(api: Api, upstage_emulator: EmulatorThread) -> None:
    """`shape="seed"`: the seed page's shape, ratio boxes, usage.pages, no sizes."""
    upstage_emulator.configure(shape="seed")
    data = (await api.post(make_tiff(2, width=200, height=150), filename="t.tif")).json()
    assert set(data) == {"api", "model", "pages", "usage"}
    assert (data["api"], data["model"], data["usage"]) == ("2.0", "ocr-2.2.1", {"pages": 2})
    for page in data["pages"]:
        assert set(page) == {"id", "text", "words"}
        assert [w["id"] for w in page["words"]] == list(range(len(page["words"])))
        for word in page["words"]:
            assert_unit_box(word)


async def test_live_shape_sizes(api: Api) -> None:
    """Live page sizes: an image's pixels; a PDF page's points at 150 dpi."""
    data = (await api.post(make_tiff(2, width=200, height=150), filename="t.tif")).json()
    assert data["numBilledPages"] == 2
    assert data["metadata"]["pages"] == [
        {"height": 150, "page": 1, "width": 200},
        {"height": 150, "page": 2, "width": 200},
    ]
    for page in data["pages"]:
        assert (page["width"], page["height"]) == (200, 150)
        assert 0 < page["confidence"] <= 1
        for word in page["words"]:
            assert_pixel_box(word, 200, 150)
    pdf = (await api.post(make_pdf(1))).json()["pages"][0]
    assert (pdf["width"], pdf["height"]) == (1275, 1650)  # letter at 150 dpi


async def test_error_shape_switch(api: Api, upstage_emulator: EmulatorThread) -> None:
    """The other error body, `{"error": {"message", "type", "code"}}`, names the error."""
    upstage_emulator.configure(error_shape="error")
    reply = await api.post(make_pdf(1), model="bad")
    assert reply.status == 400
    assert reply.json() == {
        "error": {
            "message": "invalid model name",
            "type": "invalid_request_error",
            "code": "invalid_model",
        }
    }
    error = (await api.post(make_pdf(1), headers={})).json()["error"]
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")


async def test_vendor_schemas(api: Api) -> None:
    """`schema=clova` and `schema=google` convert the output; anything else is a 400."""
    clova = (await api.post(make_pdf(2), schema="clova")).json()
    assert clova["version"] == "V2"
    assert len(clova["images"]) == 2
    assert clova["images"][0]["fields"][0]["inferText"] == "page"
    google = (await api.post(make_pdf(2), schema="google")).json()
    assert google["responses"][1]["fullTextAnnotation"]["text"] == page_text(2)
    assert_error_body(await api.post(make_pdf(1), schema="aws"), 400)


async def test_unknown_routes_are_json(api: Api) -> None:
    """Unknown paths get a JSON 404; a wrong method a JSON 405."""
    base = api.emulator.base_url
    assert_error_body(await api._send("GET", base + "/nothing", headers=api.auth), 404)
    wrong_method = await api._send("GET", base + "/document-digitization")
    assert_error_body(wrong_method, 405)
    assert wrong_method.headers["Allow"] == "POST"


# -- async ----------------------------------------------------------------------


async def test_async_lifecycle(api: Api, upstage_emulator: EmulatorThread) -> None:
    """submitted, then started, then completed; batches of 10 pages, the last partial."""
    upstage_emulator.configure(start_delay=0.3, batch_latency=0.1, workers=2)
    request_id = await api.submit(make_pdf(25))
    first = (await api.status(request_id)).json()
    assert first["status"] == "submitted"
    assert first["model"] == "ocr"
    assert first["total_pages"] == 25
    assert first["completed_pages"] == 0
    assert first["completed_at"] is None
    assert first["failure_message"] == ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", first["requested_at"])
    batches = sorted(first["batches"], key=lambda b: b["start_page"])
    assert [(b["id"], b["start_page"], b["end_page"]) for b in batches] == [
        (0, 1, 10),
        (1, 11, 20),
        (2, 21, 25),
    ]
    assert {b["status"] for b in batches} == {"scheduled"}
    assert {b["download_url"] for b in batches} == {""}
    assert set(batches[0]) == {
        "id", "model", "status", "failure_message", "download_url",
        "start_page", "end_page", "requested_at", "updated_at",
    }  # fmt: skip
    seen = set()
    async with asyncio.timeout(10):
        while True:
            data = (await api.status(request_id)).json()
            seen.add(data["status"])
            if data["status"] == "completed":
                break
            await asyncio.sleep(0.02)
    assert seen >= {"submitted", "started", "completed"}
    assert data["completed_pages"] == 25
    assert data["completed_at"] is not None
    assert all(b["status"] == "completed" and b["download_url"] for b in data["batches"])
    assert upstage_emulator.stats.polls[request_id] >= 3


async def test_batches_out_of_order_and_unsorted(
    api: Api, upstage_emulator: EmulatorThread
) -> None:
    """Batches finish out of order and the list is not sorted (seeded)."""
    upstage_emulator.configure(workers=2, batch_latency=0.05, latency_jitter=0.5)
    request_id = await api.submit(make_pdf(60))
    done = await api.wait(request_id)
    listed = [b["id"] for b in done["batches"]]
    assert sorted(listed) == list(range(6))
    assert listed != sorted(listed)
    finished = [b["id"] for b in sorted(done["batches"], key=lambda b: b["updated_at"])]
    assert finished != sorted(finished)


async def test_download_covers_batch_pages(api: Api, upstage_emulator: EmulatorThread) -> None:
    """A batch's download is a live-shape result of its pages; ids from the batch by default."""
    request_id = await api.submit(make_pdf(23))
    done = await api.wait(request_id)
    for batch in done["batches"]:
        reply = await api.download(batch["download_url"])
        assert reply.status == 200
        result = reply.json()
        count = batch["end_page"] - batch["start_page"] + 1
        assert set(result) == LIVE_TOP
        assert result["numBilledPages"] == count
        assert [p["id"] for p in result["pages"]] == list(range(count))
        assert [m["page"] for m in result["metadata"]["pages"]] == list(range(1, count + 1))
        ids = [w["id"] for p in result["pages"] for w in p["words"]]
        assert ids == list(range(len(ids)))
        texts = [page_text(n) for n in range(batch["start_page"], batch["end_page"] + 1)]
        assert [p["text"] for p in result["pages"]] == texts
    upstage_emulator.configure(page_ids="document")
    done = (await api.status(request_id)).json()
    last = next(b for b in done["batches"] if b["start_page"] == 21)
    result = (await api.download(last["download_url"])).json()
    assert [p["id"] for p in result["pages"]] == [20, 21, 22]
    words_before = sum(len(emulated) for emulated in _words_per_page(make_pdf(23))[:20])
    assert result["pages"][0]["words"][0]["id"] == words_before
    assert upstage_emulator.stats.downloads_served == 4


def _words_per_page(data: bytes) -> list[list[str]]:
    return [text.split() for text in emulated_text(data)]


async def test_download_seed_shape(api: Api, upstage_emulator: EmulatorThread) -> None:
    """The shape switch applies to downloads too."""
    upstage_emulator.configure(shape="seed")
    done = await api.wait(await api.submit(make_pdf(2)))
    result = (await api.download(done["batches"][0]["download_url"])).json()
    assert set(result) == {"api", "model", "pages", "usage"}
    assert result["usage"] == {"pages": 2}


async def test_completed_batch_downloadable_while_others_run(
    api: Api, upstage_emulator: EmulatorThread
) -> None:
    """One worker: the first batch can be fetched while the rest are still queued."""
    upstage_emulator.configure(workers=1, batch_latency=0.15)
    request_id = await api.submit(make_pdf(30))
    async with asyncio.timeout(5):
        while True:
            data = (await api.status(request_id)).json()
            completed = [b for b in data["batches"] if b["status"] == "completed"]
            if completed:
                break
            await asyncio.sleep(0.02)
    assert data["status"] == "started"
    assert data["completed_pages"] == 10
    assert any(b["status"] in ("scheduled", "started") for b in data["batches"])
    assert (await api.download(completed[0]["download_url"])).status == 200


async def test_download_refuses_authorization(api: Api, upstage_emulator: EmulatorThread) -> None:
    """A download carrying Authorization is refused with XML, and counted."""
    done = await api.wait(await api.submit(make_pdf(3)))
    url = done["batches"][0]["download_url"]
    assert url.startswith(upstage_emulator.storage_url + "/")
    assert not url.startswith(upstage_emulator.base_url)
    reply = await api.download(url, headers=api.auth)
    assert reply.status == 400
    assert reply.headers["Content-Type"].startswith("application/xml")
    assert b"<Code>InvalidArgument</Code>" in reply.body
    assert upstage_emulator.stats.downloads_with_auth == 1
    assert (await api.download(url)).status == 200
    assert upstage_emulator.stats.downloads == 2


async def test_link_expiry_and_fresh_link(api: Api, upstage_emulator: EmulatorThread) -> None:
    """Past url_ttl a link gives a 403 XML; a fresh status fetch signs a working one."""
    upstage_emulator.configure(url_ttl=1.0)
    done = await api.wait(await api.submit(make_pdf(2)))
    url = done["batches"][0]["download_url"]
    await asyncio.sleep(1.05)
    reply = await api.download(url)
    assert reply.status == 403
    assert reply.headers["Content-Type"].startswith("application/xml")
    assert b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message>" in reply.body
    assert upstage_emulator.stats.downloads_expired == 1
    fresh = (await api.status(done["id"])).json()["batches"][0]["download_url"]
    assert fresh != url
    assert (await api.download(fresh)).status == 200


async def test_expire_links_now(api: Api, upstage_emulator: EmulatorThread) -> None:
    """`expire_links()` expires every link signed so far; tampered links fail the signature."""
    done = await api.wait(await api.submit(make_pdf(2)))
    url = done["batches"][0]["download_url"]
    tampered = re.sub(r"expires=(\d+)", lambda m: f"expires={int(m[1]) + 1000}", url)
    reply = await api.download(tampered)
    assert reply.status == 403
    assert b"SignatureDoesNotMatch" in reply.body
    upstage_emulator.expire_links()
    assert b"Request has expired" in (await api.download(url)).body
    fresh = (await api.status(done["id"])).json()["batches"][0]["download_url"]
    assert (await api.download(fresh)).status == 200


async def test_over_async_page_limit_accepted_then_failed(api: Api) -> None:
    """A 1001-page document is accepted, then fails with a failure_message."""
    request_id = await api.submit(make_pdf(1001))
    done = await api.wait(request_id)
    assert done["status"] == "failed"
    assert "1001" in done["failure_message"]
    assert "1000" in done["failure_message"]
    assert done["batches"] == []


async def test_failed_batches(api: Api, upstage_emulator: EmulatorThread) -> None:
    """Failing batches end `failed` with a failure_message, and so does the request."""
    upstage_emulator.configure(batch_failure_rate=1.0)
    done = await api.wait(await api.submit(make_pdf(12)))
    assert done["status"] == "failed"
    assert "2 of 2 batches failed" in done["failure_message"]
    for batch in done["batches"]:
        assert batch["status"] == "failed"
        assert batch["failure_message"]
        assert batch["download_url"] == ""
    assert upstage_emulator.stats.batches_failed == 2


async def test_retrying_batches(api: Api, upstage_emulator: EmulatorThread) -> None:
    """A failing batch is retried (`retrying`) before it fails for good."""
    upstage_emulator.configure(batch_failure_rate=1.0, batch_retries=1, batch_latency=0.15)
    request_id = await api.submit(make_pdf(5))
    seen = []
    async with asyncio.timeout(10):
        while True:
            data = (await api.status(request_id)).json()
            seen.append(data["batches"][0]["status"])
            if data["status"] == "failed":
                break
            await asyncio.sleep(0.02)
    assert "retrying" in seen
    assert seen.index("retrying") < len(seen) - 1
    assert seen[-1] == "failed"


async def test_unknown_request_404(api: Api) -> None:
    """An unknown request id is a JSON 404."""
    assert "no-such-id" in assert_error_body(await api.status("no-such-id"), 404)["message"]


async def test_request_list(api: Api) -> None:
    """The list holds every request, newest first, in the documented shape."""
    first = await api.submit(make_pdf(1))
    second = await api.submit(make_pdf(2))
    await api.wait(second)
    listed = (await api.requests()).json()["requests"]
    assert [r["id"] for r in listed] == [second, first]
    assert set(listed[0]) == {"id", "status", "model", "requested_at", "completed_at"}


async def test_async_refusals(api: Api) -> None:
    """The async endpoint refuses what it cannot take at submission."""
    assert_error_body(await api.post(b"text", endpoint="async", filename="a.txt"), 415)
    assert_error_body(await api.post(b"", endpoint="async"), 400)
    assert api.emulator.stats.async_submissions == {}


async def test_request_ids_replay_per_document(api: Api, upstage_emulator: EmulatorThread) -> None:
    """Request ids come from the seed and the document: a replay gets the same ids."""
    data = make_pdf(2)
    first = await api.submit(data)
    second = await api.submit(data)
    assert first != second
    assert upstage_emulator.stats.async_submissions[sha(data)] == 2
    upstage_emulator.reset()
    assert await api.submit(data) == first


# -- samples --------------------------------------------------------------------


async def test_sample_password_pdf_422(api: Api, samples: Path) -> None:
    """The password-protected PDF gets a clear 422 on both endpoints, never a 500."""
    data = (samples / "libreoffice-writer-password.pdf").read_bytes()
    for endpoint in ("sync", "async"):
        reply = await api.post(data, endpoint=endpoint, filename="locked.pdf")
        error = assert_error_body(reply, 422)
        assert "password" in error["message"]
        assert "locked.pdf" in error["message"]


async def test_sample_text_layer(api: Api, samples: Path) -> None:
    """pdflatex-4-pages reads from its text layer, words boxed in the page's pixels."""
    reply = await api.post((samples / "pdflatex-4-pages.pdf").read_bytes())
    data = reply.json()
    assert len(data["pages"]) == 4
    assert data["pages"][0]["text"].startswith("Hello, here is some text without a meaning.")
    for page in data["pages"]:
        assert page["words"]
        for word in page["words"]:
            assert_pixel_box(word, page["width"], page["height"])


async def test_sample_scans(api: Api, samples: Path) -> None:
    """The sample TIFFs and JPEG read as one page each."""
    for name in ("phototest.tif", "eurotext.tif", "hebtypo.jpg", "smile-lzw.tiff"):
        reply = await api.post((samples / name).read_bytes(), filename=name)
        assert reply.status == 200, name
        assert len(reply.json()["pages"]) == 1


@pytest.mark.slow
async def test_sample_117_pages(api: Api, upstage_emulator: EmulatorThread, samples: Path) -> None:
    """GeoTopo (117 pages): 413 on sync, 12 batches that complete on async."""
    upstage_emulator.configure(batch_latency=0.01, workers=8)
    data = (samples / "GeoTopo-komprimiert.pdf").read_bytes()
    assert "117 pages" in assert_error_body(await api.post(data), 413)["message"]
    done = await api.wait(await api.submit(data), within=60)
    assert done["status"] == "completed"
    assert done["total_pages"] == 117
    assert len(done["batches"]) == 12
    ranges = sorted((b["start_page"], b["end_page"]) for b in done["batches"])
    assert ranges[0] == (1, 10)
    assert ranges[-1] == (111, 117)
    last = next(b for b in done["batches"] if b["start_page"] == 111)
    result = (await api.download(last["download_url"])).json()
    assert len(result["pages"]) == 7
