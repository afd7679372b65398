"""`OCRStage` in this process (no cluster): rows in, rows out, against the emulator and S3."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import orjson
import pytest
import pytest_asyncio

pytest.importorskip("ray.data")
pytest.importorskip("s3fs")

from conftest import TEST_KEY

from aioupstage_ocr import parse_result
from aioupstage_ocr._storage import read_bytes, write_whole
from aioupstage_ocr.ray import OUTPUT_SCHEMA, OCRStage
from aioupstage_ocr.ray._ledger import Ledger, content_hash
from aioupstage_ocr.testing import EmulatorThread, UpstageEmulator, make_pdf
from aioupstage_ocr.testing._fixtures import CLIENT_POLLING


def _doc(i: int) -> bytes:
    return make_pdf([f"document {i} of the stage test"])


async def _row(stage: OCRStage, data: bytes, name: str) -> dict[str, object]:
    """The one output row of a batch of one document given as bytes."""
    row: dict[str, object] = (await stage({"bytes": [data], "name": [name]})).to_pylist()[0]
    return row


@pytest_asyncio.fixture(loop_scope="session")
async def stage_factory(
    upstage_emulator: EmulatorThread, retry_testing: None
) -> AsyncIterator[type[OCRStage]]:
    stages: list[OCRStage] = []

    def make(**settings: object) -> OCRStage:
        stage = OCRStage(
            api_key=TEST_KEY, base_url=upstage_emulator.base_url, polling=CLIENT_POLLING, **settings
        )
        stages.append(stage)
        return stage

    yield make  # type: ignore[misc]
    for stage in stages:
        await stage.aclose()


async def test_paths_on_s3_become_rows_and_outputs(
    stage_factory: type[OCRStage], s3_bucket: str, upstage_emulator: EmulatorThread
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
    stage_factory: type[OCRStage], upstage_emulator: EmulatorThread
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


# --------------------------------------------------------------------------- the ledger


@pytest.fixture
def short_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settle 0.5 s after a window closes (the window's own margin still applies)."""
    import aioupstage_ocr.ray._stage as stage_module

    monkeypatch.setattr(stage_module, "SETTLE", 0.5)


def _submissions(emulator: UpstageEmulator, data: bytes, route: str = "async") -> int:
    import hashlib

    counts = getattr(emulator.stats, f"{route}_submissions")
    return int(counts[hashlib.sha256(data).hexdigest()])


async def test_a_second_run_reads_outputs_and_sends_nothing(
    stage_factory: type[OCRStage], s3_bucket: str, upstage_emulator: EmulatorThread
) -> None:
    docs = [_doc(30 + i) for i in range(4)]
    batch = {"bytes": docs, "name": [f"d{i}.pdf" for i in range(4)]}
    first = (await stage_factory(output=f"{s3_bucket}/out")(batch)).to_pylist()
    uploads = upstage_emulator.stats.uploads
    again = (await stage_factory(output=f"{s3_bucket}/out")(batch)).to_pylist()
    assert upstage_emulator.stats.uploads == uploads
    assert [row["status"] for row in again] == ["ok"] * 4
    assert [row["result"] for row in again] == [row["result"] for row in first]
    assert [row["output"] for row in again] == [row["output"] for row in first]


async def test_an_open_request_of_a_dead_attempt_is_waited_for(
    stage_factory: type[OCRStage], s3_bucket: str, upstage_emulator: EmulatorThread, client
) -> None:
    """`submitted` in the ledger: the request id is adopted, the document is not sent again."""
    data = _doc(40)
    request_id = await client.submit(data, filename="a.pdf")
    ledger = Ledger(f"{s3_bucket}/ledger")
    ledger.submitted(content_hash(data), request_id, name="a.pdf")
    stage = stage_factory(mode="async", ledger=f"{s3_bucket}/ledger")
    row = await _row(stage, data, "a.pdf")
    assert row["status"] == "ok", row["error"]
    assert row["request_id"] == request_id
    assert row["text"] == "document 40 of the stage test"
    assert _submissions(upstage_emulator, data) == 1
    entry = ledger.read(content_hash(data))
    assert entry is not None
    assert entry.state == "done"


async def test_a_send_that_never_left_is_sent(
    stage_factory: type[OCRStage],
    s3_bucket: str,
    upstage_emulator: EmulatorThread,
    short_settle: None,
) -> None:
    data = _doc(41)
    Ledger(f"{s3_bucket}/l").sending(content_hash(data), route="async", name="b.pdf")
    stage = stage_factory(mode="async", ledger=f"{s3_bucket}/l")
    row = await _row(stage, data, "b.pdf")
    assert row["status"] == "ok", row["error"]
    assert _submissions(upstage_emulator, data) == 1


async def test_a_send_that_left_unrecorded_is_adopted(
    stage_factory: type[OCRStage],
    s3_bucket: str,
    upstage_emulator: EmulatorThread,
    client,
    short_settle: None,
) -> None:
    """`sending`, and one unclaimed request since: that one is adopted."""
    data = _doc(42)
    ledger = Ledger(f"{s3_bucket}/l")
    ledger.sending(content_hash(data), route="async", name="c.pdf")
    request_id = await client.submit(data, filename="c.pdf")  # its answer was never recorded
    stage = stage_factory(mode="async", ledger=f"{s3_bucket}/l")
    row = await _row(stage, data, "c.pdf")
    assert row["status"] == "ok", row["error"]
    assert row["request_id"] == request_id
    assert _submissions(upstage_emulator, data) == 1
    assert ledger.claimed(request_id)


async def test_two_unrecorded_sends_are_refused_not_paid_twice(
    stage_factory: type[OCRStage],
    s3_bucket: str,
    upstage_emulator: EmulatorThread,
    client,
    short_settle: None,
) -> None:
    docs = [_doc(43), _doc(44)]
    ledger = Ledger(f"{s3_bucket}/l")
    for i, data in enumerate(docs):
        ledger.sending(content_hash(data), route="async", name=f"{i}.pdf")
        await client.submit(data, filename=f"{i}.pdf")
    stage = stage_factory(mode="async", ledger=f"{s3_bucket}/l")
    rows = (await stage({"bytes": docs, "name": ["0.pdf", "1.pdf"]})).to_pylist()
    assert [row["status"] for row in rows] == ["failed", "failed"]
    assert all(row["error"].startswith("AmbiguousSubmitError") for row in rows)
    assert [_submissions(upstage_emulator, data) for data in docs] == [1, 1]


async def test_a_sync_send_is_repeated_at_most_once(
    stage_factory: type[OCRStage], s3_bucket: str, upstage_emulator: EmulatorThread
) -> None:
    data = _doc(45)
    Ledger(f"{s3_bucket}/l").sending(content_hash(data), route="sync", name="s.pdf")
    stage = stage_factory(ledger=f"{s3_bucket}/l")
    row = await _row(stage, data, "s.pdf")
    assert row["status"] == "ok"
    assert _submissions(upstage_emulator, data, "sync") == 1


# ------------------------------------ `sending` rows settled by `_reconcile`'s rules
# Each of these paid twice (or took another's result) with the ledger's old rule:
# "unclaimed requests created since the entry; none: send it again".


async def test_a_claim_written_before_its_entry_is_adopted(
    stage_factory: type[OCRStage],
    s3_bucket: str,
    upstage_emulator: EmulatorThread,
    client,
    short_settle: None,
) -> None:
    """Died between the request id's claim and the `submitted` entry: its own, not resent."""
    data = _doc(50)
    ledger = Ledger(f"{s3_bucket}/l")
    request_id = await client.submit(data, filename="d.pdf")
    ledger.submitted(content_hash(data), request_id, name="d.pdf")  # the claim landed...
    ledger.sending(content_hash(data), route="async", name="d.pdf")  # ...the entry did not
    stage = stage_factory(mode="async", ledger=f"{s3_bucket}/l")
    row = await _row(stage, data, "d.pdf")
    assert row["status"] == "ok", row["error"]
    assert row["request_id"] == request_id
    assert _submissions(upstage_emulator, data) == 1


async def test_a_request_listed_late_is_adopted_not_resent(
    stage_factory: type[OCRStage],
    s3_bucket: str,
    upstage_emulator: EmulatorThread,
    client,
    short_settle: None,
) -> None:
    """The dead attempt's request appears after the retry began: still found, not paid twice."""
    data = _doc(51)
    Ledger(f"{s3_bucket}/l").sending(content_hash(data), route="async", name="e.pdf")
    stage = stage_factory(mode="async", ledger=f"{s3_bucket}/l")
    late: list[str] = []

    async def dead_attempts_request() -> None:
        await anyio.sleep(0.5)  # the retry has read the ledger and the list by now
        late.append(await client.submit(data, filename="e.pdf"))

    async with anyio.create_task_group() as group:
        group.start_soon(dead_attempts_request)
        table = await stage({"bytes": [data], "name": ["e.pdf"]})
    row = table.to_pylist()[0]
    assert row["status"] == "ok", row["error"]
    assert row["request_id"] == late[0]
    assert _submissions(upstage_emulator, data) == 1


async def test_a_live_actors_request_not_yet_claimed_is_not_taken(
    stage_factory: type[OCRStage],
    s3_bucket: str,
    upstage_emulator: EmulatorThread,
    client,
    short_settle: None,
) -> None:
    """A competitor: another actor's request in the window, claimed a moment later.

    The dead attempt never reached the service; the retry must send its own
    document, not adopt the other's request (that would give it the wrong text).
    """
    mine, theirs = _doc(52), _doc(53)
    ledger = Ledger(f"{s3_bucket}/l")
    ledger.sending(content_hash(mine), route="async", name="f.pdf")
    their_id = await client.submit(theirs, filename="g.pdf")
    stage = stage_factory(mode="async", ledger=f"{s3_bucket}/l")

    async def live_actor_claims() -> None:
        await anyio.sleep(1.0)  # its answer and claim come late, under load
        await anyio.to_thread.run_sync(
            lambda: ledger.submitted(content_hash(theirs), their_id, name="g.pdf")
        )

    async with anyio.create_task_group() as group:
        group.start_soon(live_actor_claims)
        table = await stage({"bytes": [mine], "name": ["f.pdf"]})
    row = table.to_pylist()[0]
    assert row["status"] == "ok", row["error"]
    assert row["text"] == "document 52 of the stage test"
    assert row["request_id"] != their_id
    assert _submissions(upstage_emulator, mine) == 1
    assert _submissions(upstage_emulator, theirs) == 1


async def test_two_actors_racing_on_one_content_hash_pay_once(
    stage_factory: type[OCRStage],
    s3_bucket: str,
    upstage_emulator: EmulatorThread,
    short_settle: None,
) -> None:
    """The same bytes in two actors' batches; the second starts once the first is sending."""
    data = _doc(54)
    ledger = Ledger(f"{s3_bucket}/l")
    first = stage_factory(mode="async", ledger=f"{s3_bucket}/l")
    second = stage_factory(mode="async", ledger=f"{s3_bucket}/l")
    rows: dict[str, dict[str, object]] = {}

    async def run(stage: OCRStage, name: str) -> None:
        rows[name] = await _row(stage, data, name)

    async with anyio.create_task_group() as group:
        group.start_soon(run, first, "h1.pdf")
        with anyio.fail_after(30):
            while await anyio.to_thread.run_sync(ledger.read, content_hash(data)) is None:  # noqa: ASYNC110
                await anyio.sleep(0.005)  # polling the store: no event to wait on
        group.start_soon(run, second, "h2.pdf")
    assert [rows[n]["status"] for n in ("h1.pdf", "h2.pdf")] == ["ok", "ok"], rows
    assert rows["h1.pdf"]["request_id"] == rows["h2.pdf"]["request_id"]
    assert rows["h2.pdf"]["text"] == "document 54 of the stage test"
    assert _submissions(upstage_emulator, data) == 1
