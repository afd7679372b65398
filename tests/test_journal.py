"""The resume journal: states, resume queries, durability, one run at a time."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aioupstage_ocr._exceptions import ConfigurationError
from aioupstage_ocr._journal import (
    JOURNAL_NAME,
    SCHEMA_VERSION,
    Journal,
    State,
    journal_path,
)

SHA_A = "a" * 64
SHA_B = "b" * 64


@pytest.fixture
def jpath(tmp_path: Path) -> Path:
    return journal_path(tmp_path / "out")


def wal_exists(path: Path) -> bool:
    return Path(f"{path}-wal").exists()


def write_garbage(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database at all " * 100)


def test_journal_lives_in_the_output_folder(tmp_path: Path) -> None:
    """`journal_path(DIR)` is `DIR/.aioupstage-ocr-journal.sqlite3`, absolute."""
    assert journal_path(tmp_path) == tmp_path / ".aioupstage-ocr-journal.sqlite3"
    assert JOURNAL_NAME == ".aioupstage-ocr-journal.sqlite3"


async def test_new_journal_is_wal_and_versioned(jpath: Path) -> None:
    """Opening creates the folder and a WAL-mode file with the schema version set."""
    async with Journal(jpath) as journal:
        await journal.record_pending(jpath.parent / "a.pdf", size=1, mtime_ns=2)
        assert wal_exists(jpath)
    with sqlite3.connect(jpath) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM inputs").fetchone()[0] == 1
    conn.close()


async def test_state_machine_of_an_async_input(jpath: Path, tmp_path: Path) -> None:
    """pending -> submitting -> submitted -> done, each visible in the row."""
    doc = tmp_path / "a.pdf"
    async with Journal(jpath) as journal:
        await journal.record_pending(doc, size=10, mtime_ns=20, sha256=SHA_A)
        entry = await journal.get(doc)
        assert entry is not None
        assert entry.state is State.PENDING

        await journal.record_submitting(doc, SHA_A, "async", size=10, mtime_ns=20)
        entry = await journal.get(doc)
        assert entry is not None
        assert (entry.state, entry.route, entry.request_id) == ("submitting", "async", None)

        await journal.record_submitted(doc, "req-1")
        entry = await journal.get(doc)
        assert entry is not None
        assert (entry.state, entry.request_id) == (State.SUBMITTED, "req-1")

        await journal.record_done(doc, tmp_path / "out" / "a.ocr.json", 3)
        entry = await journal.get(doc)
    assert entry is not None
    assert entry.state is State.DONE
    assert entry.path == doc
    assert entry.output == tmp_path / "out" / "a.ocr.json"
    assert (entry.pages, entry.request_id, entry.route, entry.sha256) == (
        3,
        "req-1",
        "async",
        SHA_A,
    )
    assert (entry.size, entry.mtime_ns, entry.error_type) == (10, 20, None)


async def test_failure_keeps_the_request_id_and_a_retry_clears_it(
    jpath: Path, tmp_path: Path
) -> None:
    """`failed` records the error; submitting again starts the row over."""
    doc = tmp_path / "a.pdf"
    async with Journal(jpath) as journal:
        await journal.record_submitting(doc, SHA_A, "async", size=1, mtime_ns=1)
        await journal.record_submitted(doc, "req-9")
        await journal.record_failed(doc, "RequestFailedError", "request req-9 failed: boom")
        failed = await journal.get(doc)
        await journal.record_submitting(doc, SHA_A, "sync", size=1, mtime_ns=1)
        retried = await journal.get(doc)
    assert failed is not None
    assert failed.state is State.FAILED
    assert (failed.request_id, failed.error_type) == ("req-9", "RequestFailedError")
    assert failed.error_message == "request req-9 failed: boom"
    assert retried is not None
    assert (retried.state, retried.route, retried.request_id) == ("submitting", "sync", None)
    assert (retried.error_type, retried.error_message) == (None, None)


async def test_lookup_matches_size_and_mtime_only(
    jpath: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lookup` is the quick check: a changed size or mtime answers None."""
    doc = tmp_path / "a.pdf"
    async with Journal(jpath) as journal:
        await journal.record_submitting(doc, SHA_A, "sync", size=100, mtime_ns=5)
        await journal.record_done(doc, tmp_path / "a.ocr.json", 1)
        hit = await journal.lookup(doc, 100, 5)
        assert hit is not None
        assert hit.state is State.DONE
        assert await journal.lookup(doc, 100, 6) is None
        assert await journal.lookup(doc, 101, 5) is None
        assert await journal.lookup(tmp_path / "other.pdf", 100, 5) is None
        # Relative and absolute spellings are the same input.
        monkeypatch.chdir(tmp_path)
        assert await journal.lookup("a.pdf", 100, 5) == hit


async def test_find_by_hash_prefers_done(jpath: Path, tmp_path: Path) -> None:
    """An identical file is found done first, else in flight; failed ones do not count."""
    async with Journal(jpath) as journal:
        assert await journal.find_by_hash(SHA_A) is None
        await journal.record_submitting(tmp_path / "1.pdf", SHA_A, "async", size=1, mtime_ns=1)
        found = await journal.find_by_hash(SHA_A)
        assert found is not None
        assert found.state is State.SUBMITTING
        await journal.record_submitting(tmp_path / "2.pdf", SHA_A, "async", size=1, mtime_ns=1)
        await journal.record_submitted(tmp_path / "2.pdf", "req-2")
        found = await journal.find_by_hash(SHA_A)
        assert found is not None
        assert (found.path, found.request_id) == (tmp_path / "2.pdf", "req-2")
        await journal.record_submitting(tmp_path / "3.pdf", SHA_A, "sync", size=1, mtime_ns=1)
        await journal.record_done(tmp_path / "3.pdf", tmp_path / "3.ocr.json", 2)
        found = await journal.find_by_hash(SHA_A)
        assert found is not None
        assert (found.path, found.output) == (tmp_path / "3.pdf", tmp_path / "3.ocr.json")
        await journal.record_submitting(tmp_path / "4.pdf", SHA_B, "sync", size=1, mtime_ns=1)
        await journal.record_failed(tmp_path / "4.pdf", "InternalServerError", "HTTP 500")
        assert await journal.find_by_hash(SHA_B) is None


async def test_copied_result_records_the_new_inputs_fingerprint(
    jpath: Path, tmp_path: Path
) -> None:
    """`record_done` on a new path (an identical file's result) stores what it is given."""
    async with Journal(jpath) as journal:
        await journal.record_done(
            tmp_path / "copy.pdf", tmp_path / "copy.ocr.json", 4, size=7, mtime_ns=8, sha256=SHA_A
        )
        entry = await journal.lookup(tmp_path / "copy.pdf", 7, 8)
    assert entry is not None
    assert (entry.state, entry.sha256, entry.pages) == (State.DONE, SHA_A, 4)


async def test_open_requests_and_counts(jpath: Path, tmp_path: Path) -> None:
    """Open requests are the submitting and submitted rows, oldest first."""
    async with Journal(jpath) as journal:
        for name in ["a", "b", "c", "d"]:
            await journal.record_submitting(
                tmp_path / f"{name}.pdf", SHA_A, "async", size=1, mtime_ns=1
            )
        await journal.record_submitted(tmp_path / "b.pdf", "req-b")
        await journal.record_done(tmp_path / "c.pdf", tmp_path / "c.ocr.json", 1)
        await journal.record_failed(tmp_path / "d.pdf", "X", "y")
        open_ = await journal.open_requests()
        counts = await journal.counts()
    assert [(e.path.name, e.state, e.request_id) for e in open_] == [
        ("a.pdf", "submitting", None),
        ("b.pdf", "submitted", "req-b"),
    ]
    assert counts == {
        State.PENDING: 0,
        State.SUBMITTING: 1,
        State.SUBMITTED: 1,
        State.DONE: 1,
        State.FAILED: 1,
    }


async def test_submitted_needs_a_submitting_row(jpath: Path, tmp_path: Path) -> None:
    """A request id for an unknown path is a caller's mistake, said clearly."""
    async with Journal(jpath) as journal:
        with pytest.raises(LookupError, match=r"ghost\.pdf"):
            await journal.record_submitted(tmp_path / "ghost.pdf", "req")
        # The journal goes on working after a refused operation.
        await journal.record_pending(tmp_path / "a.pdf")
        assert await journal.get(tmp_path / "a.pdf") is not None


async def test_rows_survive_reopening_and_reset_clears_them(jpath: Path, tmp_path: Path) -> None:
    """A second run sees the first's rows; `reset` and `fresh=True` forget them."""
    async with Journal(jpath) as journal:
        await journal.record_submitting(tmp_path / "a.pdf", SHA_A, "async", size=1, mtime_ns=1)
        await journal.record_submitted(tmp_path / "a.pdf", "req-a")
    async with Journal(jpath) as journal:
        assert [e.request_id for e in await journal.open_requests()] == ["req-a"]
        await journal.reset()
        assert await journal.open_requests() == []
        await journal.record_pending(tmp_path / "b.pdf")
    async with Journal(jpath, fresh=True) as journal:
        assert await journal.get(tmp_path / "b.pdf") is None


async def test_undecodable_path_round_trips(jpath: Path, tmp_path: Path) -> None:
    """A file name that is not UTF-8 is stored as its bytes and comes back equal."""
    doc = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.pdf"))
    async with Journal(jpath) as journal:
        await journal.record_submitting(doc, SHA_A, "sync", size=1, mtime_ns=1)
        await journal.record_done(doc, doc.with_suffix(".ocr.json"), 1)
        entry = await journal.get(doc)
    assert entry is not None
    assert entry.path == doc
    assert entry.output == doc.with_suffix(".ocr.json")


async def test_second_run_on_the_same_folder_is_refused(jpath: Path) -> None:
    """While one journal is open, another on the same file fails at once, clearly."""
    async with Journal(jpath):
        with pytest.raises(ConfigurationError, match="in use by another run"):
            await Journal(jpath).open()
    async with Journal(jpath):  # released on close
        pass


async def test_unreadable_or_newer_journal(jpath: Path) -> None:
    """A file that is not a journal, or of a newer schema, is refused unless fresh."""
    write_garbage(jpath)
    with pytest.raises(ConfigurationError, match="not a journal") as caught:
        await Journal(jpath).open()
    assert str(jpath) in str(caught.value)
    async with Journal(jpath, fresh=True) as journal:
        assert await journal.open_requests() == []
    conn = sqlite3.connect(jpath)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ConfigurationError, match="schema version 99"):
        await Journal(jpath).open()
    async with Journal(jpath, fresh=True) as journal:
        assert await journal.counts() == dict.fromkeys(State, 0)


async def test_closed_journal_refuses_work(jpath: Path) -> None:
    """Calls before open or after close raise instead of hanging."""
    journal = Journal(jpath)
    with pytest.raises(RuntimeError, match="not open"):
        await journal.open_requests()
    await journal.open()
    await journal.close()
    await journal.close()
    with pytest.raises(RuntimeError, match="not open"):
        await journal.record_pending("a.pdf")


async def test_cancelled_caller_leaves_the_journal_working(jpath: Path, tmp_path: Path) -> None:
    """A caller cancelled mid-write does not wedge the journal's thread."""
    async with Journal(jpath) as journal:
        tasks = [
            asyncio.create_task(
                journal.record_submitting(tmp_path / f"{n}.pdf", SHA_A, "sync", size=1, mtime_ns=1)
            )
            for n in range(50)
        ]
        await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await journal.record_pending(tmp_path / "after.pdf")
        counts = await journal.counts()
    assert counts[State.PENDING] == 1
    assert 25 <= counts[State.SUBMITTING] <= 50


async def test_concurrent_writers_group_commit_and_never_block_the_loop(
    jpath: Path, tmp_path: Path
) -> None:
    """Hundreds of coroutines writing at once: every row lands, commits are shared,
    and the event loop keeps ticking meanwhile."""
    inputs = 400
    lags: list[float] = []
    running = True

    async def ticker() -> None:
        while running:
            start = time.perf_counter()
            await asyncio.sleep(0.002)
            lags.append(time.perf_counter() - start - 0.002)

    async def lifecycle(journal: Journal, n: int) -> None:
        doc = tmp_path / f"{n}.pdf"
        await journal.record_submitting(doc, f"{n:064x}", "async", size=n, mtime_ns=n)
        await journal.record_submitted(doc, f"req-{n}")
        await journal.record_done(doc, tmp_path / f"{n}.ocr.json", 1)

    async with Journal(jpath) as journal:
        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        await asyncio.gather(*(lifecycle(journal, n) for n in range(inputs)))
        elapsed = time.perf_counter() - started
        running = False
        await tick
        counts = await journal.counts()
        commits = journal.commits
    records = 3 * inputs
    print(f"{records} records in {elapsed:.3f} s: {records / elapsed:.0f}/s, {commits} commits")
    assert counts[State.DONE] == inputs
    assert commits < records / 4  # group commit: many records per transaction
    assert len(lags) > 3  # the loop ran the ticker while the writes were in flight
    assert max(lags) < 0.5


CRASHER = textwrap.dedent(
    """
    import asyncio, os, sys
    from aioupstage_ocr._journal import Journal

    async def main(path, folder):
        journal = await Journal(path).open()
        n = 0
        while True:
            doc = os.path.join(folder, f"{n}.pdf")
            await journal.record_submitting(doc, "%064x" % n, "async", size=n, mtime_ns=n)
            # The request would go out now: announce it, as the wire would.
            sys.stdout.write(f"{n}\\n")
            sys.stdout.flush()
            if sys.argv[3] == "exit" and n == 4:
                os._exit(0)
            n += 1

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def run_crasher(jpath: Path, folder: Path, how: str) -> list[int]:
    """Run CRASHER to its end (exit) or kill it after 50 records; what it announced."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHER, str(jpath), str(folder), how],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    announced = []
    for line in proc.stdout:
        announced.append(int(line))
        if how == "kill" and len(announced) == 50:
            proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return announced


@pytest.mark.parametrize("how", ["exit", "kill"])
async def test_submitting_survives_a_killed_process(jpath: Path, tmp_path: Path, how: str) -> None:
    """Whatever `record_submitting` returned for is on disk, however the process ends."""
    announced = await asyncio.to_thread(run_crasher, jpath, tmp_path, how)
    assert len(announced) >= (5 if how == "exit" else 50)
    async with Journal(jpath) as journal:
        open_ = await journal.open_requests()
    recorded = {int(entry.path.stem) for entry in open_}
    assert set(announced) <= recorded
    assert all(entry.state is State.SUBMITTING and entry.request_id is None for entry in open_)


async def test_request_ids_since(tmp_path: Path) -> None:
    """request_ids lists the ids on rows changed since a moment, and only those."""
    async with Journal(tmp_path / "j.sqlite3") as journal:
        await journal.record_submitting("/a.pdf", "a" * 64, "async", size=1, mtime_ns=1)
        await journal.record_submitted("/a.pdf", "req-a")
        assert await journal.request_ids() == {"req-a"}
        assert await journal.request_ids(time.time() + 60) == set()
