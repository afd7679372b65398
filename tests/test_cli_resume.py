"""Resume: a run killed or interrupted part-way, then run again, pays for nothing twice."""

from __future__ import annotations

import asyncio
import hashlib
import signal
from pathlib import Path

import pytest
from test_cli import pdf_texts, read_report, run_cli, run_main, start_cli, texts

from aioupstage_ocr import AsyncUpstageOCR, OCRResult
from aioupstage_ocr._journal import Journal, State, journal_path
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf, page_text


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_docs(folder: Path, *, pdfs: tuple[int, ...], images: int) -> dict[Path, int]:
    """Async-sized PDFs first (by name), then small images; each path with its page count."""
    folder.mkdir(parents=True)
    made: dict[Path, int] = {}
    for n, pages in enumerate(pdfs):
        path = folder / f"a{n}-book.pdf"
        path.write_bytes(make_pdf(pages))
        made[path] = pages
    for n in range(images):
        path = folder / f"b{n:03d}-scan.png"
        path.write_bytes(make_image("png", seed=1000 + n, width=48, height=32))
        made[path] = 1
    return made


async def wait_for(condition: object, limit: float = 30) -> None:
    """Poll `condition()` on the event loop (which serves the emulator meanwhile)."""
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def output_exists(row: dict[str, object]) -> bool:
    return Path(str(row["output"])).is_file()


def check_outputs(made: dict[Path, int], docs: Path, out: Path) -> None:
    """Every output whole and right: a PDF's pages in order, an image's one page."""
    for source, pages in made.items():
        output = out / source.relative_to(docs).with_suffix(".ocr.json")
        if source.suffix == ".pdf":
            assert texts(output) == pdf_texts(pages), source
        else:
            assert OCRResult.load(output).num_pages == 1


@pytest.mark.slow
@pytest.mark.upstage_emulator(batch_latency=0.05, workers=2)
async def test_killed_twice_then_resumed_submits_each_async_document_once(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """SIGKILL part-way, twice; the third run: exit 0, outputs right, each async doc sent once."""
    docs, out, report = tmp_path / "docs", tmp_path / "out", tmp_path / "report.jsonl"
    made = make_docs(docs, pdfs=(101, 102, 103, 104, 105), images=12)
    args = ("ocr", docs, "-o", out, "--report", report, "--base-url", upstage_emulator.base_url)
    stats = upstage_emulator.stats

    for progress in (2, 12):  # kill the first run after 2 async submits, the second after
        before = sum(stats.requests.values())  # 12 more requests of any kind
        proc = await start_cli(*args)
        if progress == 2:
            await wait_for(lambda: len(stats.async_submissions) >= 2)
        else:
            target = before + progress
            await wait_for(lambda t=target: sum(stats.requests.values()) >= t)
        proc.kill()
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
    assert len(list(out.rglob("*.ocr.json"))) < len(made)  # it really stopped part-way

    ran = await run_cli(*args)
    assert ran.code == 0, ran.stderr
    check_outputs(made, docs, out)
    assert sorted(ran.paths) == sorted(str(p) for p in out.rglob("*.ocr.json"))
    pdfs = [path for path in made if path.suffix == ".pdf"]
    assert {sha256(path): 1 for path in pdfs} == dict(stats.async_submissions)
    rows = read_report(report)
    assert set(rows) == {str(path) for path in made}
    assert {row["status"] for row in rows.values()} <= {"ok", "skipped"}
    assert all(rows[str(path)]["request_id"] for path in pdfs)
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
@pytest.mark.upstage_emulator(batch_latency=0.05, workers=2)
async def test_ctrl_c_stops_reading_finishes_what_was_taken_and_resumes(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """One SIGINT: exit 130 with how to resume, inputs left unread; the next run completes them."""
    docs, out, report = tmp_path / "docs", tmp_path / "out", tmp_path / "report.jsonl"
    made = make_docs(docs, pdfs=(110, 120), images=150)
    args = ("ocr", docs, "-o", out, "--report", report, "--base-url", upstage_emulator.base_url)
    stats = upstage_emulator.stats

    proc = await start_cli(*args)
    await wait_for(lambda: len(stats.sync_submissions) >= 5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130, stderr.decode()
    assert "run the same command again to resume" in stderr.decode()
    first = read_report(report)  # closed properly: the rows so far, each with its output
    assert 0 < len(first) < len(made)
    assert {row["status"] for row in first.values()} == {"ok"}
    assert all(output_exists(row) for row in first.values())
    assert sorted(stdout.decode().split()) == sorted(str(row["output"]) for row in first.values())
    async with Journal(journal_path(out)) as journal:  # consistent: nothing left half-sent
        counts = await journal.counts()
    assert counts[State.SUBMITTING] == 0
    assert counts[State.DONE] == len(first)

    ran = await run_cli(*args)
    assert ran.code == 0, ran.stderr
    check_outputs(made, docs, out)
    rows = read_report(report)
    assert {k for k, row in rows.items() if row["status"] == "skipped"} == set(first)
    pdfs = [path for path in made if path.suffix == ".pdf"]
    assert {sha256(path): 1 for path in pdfs} == dict(stats.async_submissions)
    assert all(count == 1 for count in stats.sync_submissions.values())


async def test_unanswered_submits_are_adopted_resent_or_refused(
    upstage_emulator: EmulatorThread,
    client: AsyncUpstageOCR,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Rows left `submitting`: the one request that fits is adopted, none: sent, two: refused."""
    monkeypatch.setenv("UPSTAGE_API_KEY", "any-key")
    docs, out, report = tmp_path / "docs", tmp_path / "out", tmp_path / "report.jsonl"
    docs.mkdir()
    files = {
        "adopt.pdf": make_pdf(110),  # reached the service: its request is taken over
        "resend.pdf": make_pdf(120),  # never reached it: sent now
        "sync.png": make_image("png", seed=9),  # sync: sent again
        "twin-1.pdf": make_pdf([f"one {n}" for n in range(130)]),  # two requests of the
        "twin-2.pdf": make_pdf([f"two {n}" for n in range(130)]),  # same size: cannot tell
    }
    for name, data in files.items():
        (docs / name).write_bytes(data)
    async with Journal(journal_path(out)) as journal:
        for name in files:
            path = docs / name
            info = path.stat()
            route = "sync" if name.endswith(".png") else "async"
            await journal.record_submitting(
                path, sha256(path), route, size=info.st_size, mtime_ns=info.st_mtime_ns
            )
    adopted = await client.submit(docs / "adopt.pdf")
    twins = {await client.submit(docs / "twin-1.pdf"), await client.submit(docs / "twin-2.pdf")}

    argv = ["ocr", docs, "-o", out, "--report", report, "--base-url", upstage_emulator.base_url]
    assert await run_main(argv) == 1
    err = capfd.readouterr().err
    rows = read_report(report)
    assert rows[str(docs / "adopt.pdf")]["request_id"] == adopted
    assert texts(out / "adopt.ocr.json") == [page_text(n) for n in range(1, 111)]
    assert rows[str(docs / "resend.pdf")]["status"] == "ok"
    assert rows[str(docs / "sync.png")]["status"] == "ok"
    for name in ("twin-1.pdf", "twin-2.pdf"):
        row = rows[str(docs / name)]
        assert row["status"] == "failed"
        error = row["error"]
        assert isinstance(error, dict)
        assert error["type"] == "AmbiguousSubmitError"
        assert all(request_id in error["message"] for request_id in twins)
        assert f"failed: {docs / name}" in err
        assert not (out / name).with_suffix(".ocr.json").exists()
    stats = upstage_emulator.stats
    for name in ("adopt.pdf", "resend.pdf", "twin-1.pdf", "twin-2.pdf"):
        assert stats.async_submissions[sha256(docs / name)] == 1, name
    assert stats.sync_submissions[sha256(docs / "sync.png")] == 1
    async with Journal(journal_path(out)) as journal:  # the twins stay open for a later look
        for name in ("twin-1.pdf", "twin-2.pdf"):
            entry = await journal.get(docs / name)
            assert entry is not None
            assert entry.state is State.SUBMITTING
