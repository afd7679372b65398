"""The command line with page ranges and documents cut into parts: killed, resumed, paid once."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest
from test_cli import pdf_texts, read_report, run_cli, start_cli, texts
from test_cli_resume import wait_for

from aioupstage_ocr import AsyncUpstageOCR, OCRResult
from aioupstage_ocr._cli._resume import settle_part
from aioupstage_ocr._journal import Journal, State, journal_path
from aioupstage_ocr._preflight import prepare
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf, page_text


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.upstage_emulator(batch_latency=0.0)
async def test_pages_3_to_5_of_a_40_page_pdf(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """`--pages 3-5`: three pages billed; the output's pages say 3, 4 and 5."""
    source = tmp_path / "forty.pdf"
    source.write_bytes(make_pdf(40))
    out = tmp_path / "out"
    ran = await run_cli(
        "ocr", source, "-o", out, "--pages", "3-5", "--base-url", upstage_emulator.base_url
    )
    assert ran.code == 0, ran.stderr
    (path,) = ran.paths
    result = OCRResult.load(path)
    assert result.source_pages == (3, 4, 5)
    assert texts(path) == [page_text(n) for n in (3, 4, 5)]
    assert upstage_emulator.stats.pages_billed == 3


async def test_bad_page_ranges(upstage_emulator: EmulatorThread, tmp_path: Path) -> None:
    """A malformed range is a usage error; one past the end fails that input, naming both."""
    source = tmp_path / "four.pdf"
    source.write_bytes(make_pdf(4))
    report = tmp_path / "report.jsonl"
    bad = await run_cli("ocr", source, "--pages", "5-2", "--base-url", upstage_emulator.base_url)
    assert bad.code == 2
    assert "backwards" in bad.stderr
    past = await run_cli(
        "ocr", source, "-o", tmp_path / "out", "--pages", "2-9", "--report", report,
        "--base-url", upstage_emulator.base_url,
    )  # fmt: skip
    assert past.code == 1
    row = read_report(report)[str(source)]
    assert row["error"] == {
        "type": "PageRangeError",
        "message": f"{source}: pages 2-9 are outside the document, which has 4 pages "
        "(asked for 2-9)",
    }
    assert upstage_emulator.stats.uploads == 0


@pytest.mark.slow
@pytest.mark.upstage_emulator(batch_latency=0.02, workers=2)
async def test_killed_mid_split_document_then_resumed(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """SIGKILL once a part is submitted; the rerun waits for it: no part is submitted twice."""
    source = tmp_path / "docs" / "long.pdf"
    source.parent.mkdir()
    data = make_pdf(1050)
    source.write_bytes(data)
    parts = [p.source for p in prepare(source).parts]
    hashes = {sha(part) for part in parts if isinstance(part, bytes)}
    assert len(hashes) == 2
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    args = ("ocr", source, "-o", out, "--report", report, "--base-url", upstage_emulator.base_url)
    stats = upstage_emulator.stats

    proc = await start_cli(*args)
    await wait_for(lambda: len(stats.async_submissions) >= 1, limit=60)
    proc.kill()
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not list(out.rglob("*.ocr.json"))  # it really stopped part-way

    ran = await run_cli(*args, limit=120)
    assert ran.code == 0, ran.stderr
    (path,) = ran.paths
    assert texts(path) == pdf_texts(1050)
    assert OCRResult.load(path).billed_pages == 1050
    assert dict(stats.async_submissions) == dict.fromkeys(hashes, 1)
    assert stats.submissions(sha(data)) == 0
    assert read_report(report)[str(source)]["status"] == "ok"


async def test_a_part_left_submitting_is_found_in_the_request_list(
    upstage_emulator: EmulatorThread, client: AsyncUpstageOCR, tmp_path: Path
) -> None:
    """A part whose submit reached the service before a kill is adopted, not sent again."""
    source = tmp_path / "doc.pdf"
    source.write_bytes(make_pdf(12))
    part = prepare(source, mode="async", pages=((3, 8),)).parts[0]
    assert isinstance(part.source, bytes)
    async with Journal(journal_path(tmp_path / "out")) as journal:
        await journal.record_part_submitting(source, part.sha256, "3-8", "async")
        request_id = await client.submit(part.source, filename="doc.pdf")  # then the kill
        row = await journal.part(source, part.sha256)
        assert row is not None
        assert await settle_part(client, journal, row) == request_id
        again = await journal.part(source, part.sha256)
        assert again is not None
        assert again.state is State.SUBMITTED
        assert again.request_id == request_id
        # A part left submitting that never reached the service is sent again.
        other = prepare(source, mode="async", pages=((9, 12),)).parts[0]
        await journal.record_part_submitting(source, other.sha256, "9-12", "async")
        row = await journal.part(source, other.sha256)
        assert row is not None
        assert await settle_part(client, journal, row) is None
    assert upstage_emulator.stats.async_submissions[part.sha256] == 1


async def test_journal_parts_rows(tmp_path: Path) -> None:
    """Parts rows: submitting, then submitted with an id; counted as known ids; reset clears."""
    path = journal_path(tmp_path)
    async with Journal(path) as journal:
        assert await journal.part(tmp_path / "a.pdf", "f" * 64) is None
        await journal.record_part_submitting(tmp_path / "a.pdf", "f" * 64, "1-525", "async")
        row = await journal.part(tmp_path / "a.pdf", "f" * 64)
        assert row is not None
        assert (row.state, row.request_id, row.pages) == (State.SUBMITTING, None, "1-525")
        await journal.record_part_submitted(tmp_path / "a.pdf", "f" * 64, "req-1")
        assert "req-1" in await journal.request_ids()
        with pytest.raises(LookupError, match="record_part_submitting first"):
            await journal.record_part_submitted(tmp_path / "a.pdf", "e" * 64, "req-2")
    async with Journal(path) as journal:  # kept across runs
        row = await journal.part(tmp_path / "a.pdf", "f" * 64)
        assert row is not None
        assert row.request_id == "req-1"
        await journal.reset()
        assert await journal.part(tmp_path / "a.pdf", "f" * 64) is None


async def test_pages_that_always_fail_and_allow_partial(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """A batch that always fails names its pages; --allow-partial writes the rest."""
    upstage_emulator.configure(batch_latency=0.0, fail_pages=(15,))
    source = tmp_path / "book.pdf"
    source.write_bytes(make_pdf(25))
    report = tmp_path / "report.jsonl"
    base = ("ocr", source, "--mode", "async", "--report", report)
    url = ("--base-url", upstage_emulator.base_url)

    strict = await run_cli(*base, "-o", tmp_path / "strict", *url)
    assert strict.code == 1
    row = read_report(report)[str(source)]
    assert row["status"] == "failed"
    error = row["error"]
    assert isinstance(error, dict)
    assert error["type"] == "PartialResultError"
    assert f"{source}: pages 11-20 did not come back" in str(error["message"])
    assert not list((tmp_path / "strict").rglob("*.ocr.json"))

    partial = await run_cli(*base, "-o", tmp_path / "partial", "--allow-partial", *url)
    assert partial.code == 0, partial.stderr
    assert "partial:" in partial.stderr
    (path,) = partial.paths
    result = OCRResult.load(path)
    assert result.raw["missingPages"] == list(range(11, 21))
    assert result.source_pages == (*range(1, 11), *range(21, 26))
    assert texts(path) == [page_text(n) for n in result.source_pages]
    row = read_report(report)[str(source)]
    assert row["status"] == "ok"
    assert row["missing_pages"] == list(range(11, 21))


@pytest.mark.upstage_emulator(batch_latency=0.0, workers=8)
async def test_dry_run_on_a_folder_then_the_real_run(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """--dry-run: nothing reaches the emulator; its totals are what the real run bills."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "long.pdf").write_bytes(make_pdf(1050))
    (docs / "mid.pdf").write_bytes(make_pdf(120))
    (docs / "short.pdf").write_bytes(make_pdf(3))
    (docs / "photo.png").write_bytes(make_image("png"))
    url = ("--base-url", upstage_emulator.base_url)
    dry = await run_cli("ocr", docs, "--dry-run", "--price-per-page", "0.01", *url)
    assert dry.code == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert f"{docs / 'long.pdf'}\t1050 pages, split into 2 parts (async)" in lines
    assert f"{docs / 'mid.pdf'}\t120 pages, async" in lines
    assert f"{docs / 'photo.png'}\t1 page, sync" in lines
    assert "total: 4 inputs, 1174 pages in 5 requests" in lines
    assert "cost: 1174 pages x 0.01 = 11.74" in lines
    assert sum(upstage_emulator.stats.requests.values()) == 0

    ran = await run_cli("ocr", docs, "-o", tmp_path / "out", *url, limit=120)
    assert ran.code == 0, ran.stderr
    assert upstage_emulator.stats.pages_billed == 1174
    assert sum(upstage_emulator.stats.async_submissions.values()) == 3

    (docs / "bad.pdf").write_bytes(b"not a pdf")
    refused = await run_cli("ocr", docs, "--dry-run", *url)
    assert refused.code == 1
    assert "1 refused" in refused.stdout
    assert "cost: give --price-per-page" in refused.stdout


@pytest.mark.upstage_emulator(batch_latency=0.0)
async def test_max_pages_on_the_command_line(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """--max-pages: billed pages stay under N; the rest are skipped with the reason, then sent."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for k in range(4):
        (docs / f"d{k}.pdf").write_bytes(make_pdf([f"doc {k} page {n}" for n in range(25)]))
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    args = ("ocr", docs, "-o", out, "--report", report, "--base-url", upstage_emulator.base_url)
    ran = await run_cli(*args, "--max-pages", "60")
    assert ran.code == 0, ran.stderr
    assert upstage_emulator.stats.pages_billed == 50
    rows = read_report(report)
    statuses = sorted(str(row["status"]) for row in rows.values())
    assert statuses == ["ok", "ok", "skipped", "skipped"]
    for row in rows.values():
        if row["status"] == "skipped":
            assert row["error"] is None
            assert "not sent" in str(row["reason"])
            assert "max_pages" in str(row["reason"])
    assert "--max-pages 60: 2 input(s) not sent" in ran.stderr
    again = await run_cli(*args)  # the next run sends only what was skipped
    assert again.code == 0, again.stderr
    assert upstage_emulator.stats.pages_billed == 100
