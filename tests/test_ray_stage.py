"""`OCRStage` in this process (no cluster): rows in, rows out, against the emulator and S3."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
import pytest_asyncio

pytest.importorskip("ray.data")
pytest.importorskip("s3fs")

from conftest import FAST_POLLING, TEST_KEY

from aioupstage_ocr import parse_result
from aioupstage_ocr._storage import read_bytes, write_whole
from aioupstage_ocr.ray import OUTPUT_SCHEMA, OCRStage
from aioupstage_ocr.testing import UpstageEmulator, make_pdf


def _doc(i: int) -> bytes:
    return make_pdf([f"document {i} of the stage test"])


@pytest_asyncio.fixture(loop_scope="session")
async def stage_factory(
    upstage_emulator: UpstageEmulator, retry_testing: None
) -> AsyncIterator[type[OCRStage]]:
    stages: list[OCRStage] = []

    def make(**settings: object) -> OCRStage:
        stage = OCRStage(
            api_key=TEST_KEY, base_url=upstage_emulator.base_url, polling=FAST_POLLING, **settings
        )
        stages.append(stage)
        return stage

    yield make  # type: ignore[misc]
    for stage in stages:
        await stage.aclose()


async def test_paths_on_s3_become_rows_and_outputs(
    stage_factory: type[OCRStage], s3_bucket: str, upstage_emulator: UpstageEmulator
) -> None:
    """Each row gets its result; outputs mirror the input keys; bad rows fail alone."""
    paths = [f"{s3_bucket}/in/{i % 2}/doc{i}.pdf" for i in range(5)]
    for i, path in enumerate(paths):
        write_whole(path, _doc(i))
    write_whole(f"{s3_bucket}/in/notes.pdf", b"this is not a PDF at all")
    batch = {"path": [*paths, f"{s3_bucket}/in/missing.pdf", f"{s3_bucket}/in/notes.pdf"]}
    stage = stage_factory(output=f"{s3_bucket}/out", input_prefix=f"{s3_bucket}/in")

    table = await stage(batch)

    assert table.schema == OUTPUT_SCHEMA
    rows = table.to_pylist()
    assert [row["path"] for row in rows] == batch["path"]
    for i, row in enumerate(rows[:5]):
        assert row["status"] == "ok", row["error"]
        assert row["error"] is None
        assert row["pages"] == 1
        assert row["text"] == f"document {i} of the stage test"
        assert row["output"] == f"{s3_bucket}/out/{i % 2}/doc{i}.pdf.ocr.json"
        written = read_bytes(row["output"])
        assert written == row["result"].encode()
        assert parse_result(written).text == row["text"]
    missing, notes = rows[5], rows[6]
    assert missing["status"] == notes["status"] == "failed"
    assert "missing.pdf: no such object" in missing["error"]
    assert missing["output"] is None
    assert notes["error"].startswith(("UnsupportedFormatError", "UnreadableDocumentError"))
    # Only the good documents were uploaded.
    assert sum(upstage_emulator.stats.sync_submissions.values()) == 5


async def test_bytes_with_names_and_async_mode(
    stage_factory: type[OCRStage], upstage_emulator: UpstageEmulator
) -> None:
    """A `bytes` column with `name`s; async mode fills `request_id`; no output column value."""
    stage = stage_factory(mode="async")
    table = await stage({"bytes": [_doc(10), _doc(11), b""], "name": ["a.pdf", "b.pdf", "e.pdf"]})
    rows = table.to_pylist()
    assert [row["status"] for row in rows] == ["ok", "ok", "failed"]
    assert rows[0]["text"] == "document 10 of the stage test"
    assert rows[0]["request_id"]
    assert rows[1]["request_id"] != rows[0]["request_id"]
    assert orjson.loads(rows[1]["result"])["pages"][0]["text"] == "document 11 of the stage test"
    assert rows[2]["error"].startswith("EmptyDocumentError: e.pdf")
    assert all(row["output"] is None for row in rows)
    assert sum(upstage_emulator.stats.async_submissions.values()) == 2


async def test_local_paths_and_a_missing_column(
    stage_factory: type[OCRStage], tmp_path: object
) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "x.pdf").write_bytes(_doc(20))
    stage = stage_factory(output=str(folder / "out"), input_prefix=str(folder))
    rows = (await stage({"path": [str(folder / "x.pdf")]})).to_pylist()
    assert rows[0]["status"] == "ok"
    assert rows[0]["output"] == str(folder / "out" / "x.pdf.ocr.json")
    assert (folder / "out" / "x.pdf.ocr.json").read_bytes() == rows[0]["result"].encode()
    with pytest.raises(Exception, match="needs a `path` column"):
        await stage({"file": ["x"]})


def test_repr_hides_the_key() -> None:
    assert TEST_KEY not in repr(OCRStage(api_key=TEST_KEY))
