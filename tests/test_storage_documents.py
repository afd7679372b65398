"""Object-storage URLs where a path goes: `ocr` and `ocr_many` read documents from S3 (moto)."""

from __future__ import annotations

import pytest

pytest.importorskip("s3fs")

from aioupstage_ocr import AsyncUpstageOCR, DocumentNotFoundError
from aioupstage_ocr._preflight import SMALL_UPLOAD, prepare
from aioupstage_ocr._storage import RemoteDocument, write_whole
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf


async def test_ocr_reads_a_url(client: AsyncUpstageOCR, s3_bucket: str) -> None:
    write_whole(f"{s3_bucket}/in/a.pdf", make_pdf(["read from object storage"]))
    result = await client.ocr(f"{s3_bucket}/in/a.pdf")
    assert result.text == "read from object storage"


def test_a_large_object_streams_from_the_store(s3_bucket: str) -> None:
    """Over `SMALL_UPLOAD` the upload body is a ranged file object, opened per attempt."""
    big = make_image("bmp", width=400, height=300)
    assert len(big) > SMALL_UPLOAD
    write_whole(f"{s3_bucket}/big.bmp", big)
    prepared = prepare(f"{s3_bucket}/big.bmp")
    assert isinstance(prepared.source, RemoteDocument)
    assert prepared.name == f"{s3_bucket}/big.bmp"
    assert prepared.upload_name == "big.bmp"
    body = prepared.open()
    assert not isinstance(body, bytes)
    with body:
        assert body.read() == big


async def test_ocr_many_over_urls(
    client: AsyncUpstageOCR, s3_bucket: str, upstage_emulator: EmulatorThread
) -> None:
    big = make_image("bmp", width=400, height=300)
    write_whole(f"{s3_bucket}/big.bmp", big)
    urls = []
    for i in range(3):
        write_whole(f"{s3_bucket}/d{i}.pdf", make_pdf([f"url document {i}"]))
        urls.append(f"{s3_bucket}/d{i}.pdf")
    inputs = [*urls, f"{s3_bucket}/big.bmp", f"{s3_bucket}/missing.pdf"]
    items = {item.source: item async for item in client.ocr_many(inputs)}
    for i, url in enumerate(urls):
        assert items[url].result is not None, items[url].error
        assert items[url].result.text == f"url document {i}"
    assert items[f"{s3_bucket}/big.bmp"].result is not None
    missing = items[f"{s3_bucket}/missing.pdf"].error
    assert isinstance(missing, DocumentNotFoundError)
    assert f"{s3_bucket}/missing.pdf" in str(missing)
    assert upstage_emulator.stats.uploads == 4
