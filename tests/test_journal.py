"""The resume journal: states, resume queries, durability, runs sharing one journal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest

from aioupstage_ocr import _journal
from aioupstage_ocr._exceptions import ConfigurationError
from aioupstage_ocr._journal import (
    DEFAULT_LEASE,
    JOURNAL_NAME,
    LEASE_ENV,
    SCHEMA_VERSION,
    ClaimLostError,
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


async def wait_until(condition: Callable[[], bool], limit: float = 60) -> None:
    """Poll `condition()` until it holds (or fail after `limit` seconds)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


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


async def test_two_runs_share_the_journal(jpath: Path, tmp_path: Path) -> None:
    """Two journals open on one file at once: each sees the other's rows and run."""
    async with Journal(jpath) as first, Journal(jpath) as second:
        await first.record_submitting(tmp_path / "a.pdf", SHA_A, "async", size=1, mtime_ns=1)
        await second.record_submitting(tmp_path / "b.pdf", SHA_B, "async", size=2, mtime_ns=2)
        await second.record_submitted(tmp_path / "b.pdf", "req-b")
        assert [e.path.name for e in await first.open_requests()] == ["a.pdf", "b.pdf"]
        assert (await second.get(tmp_path / "a.pdf")) is not None
        runs = await first.runs()
        assert [run.run_id for run in runs] == [first.run.run_id, second.run.run_id]
        assert {run.pid for run in runs} == {os.getpid()}
        assert str(first.run).startswith(f"run {first.run.run_id} (pid {os.getpid()} on ")
    async with Journal(jpath) as third:  # both left: their rows stay, their runs went
        assert [run.run_id for run in await third.runs()] == [third.run.run_id]
        assert len(await third.open_requests()) == 2


async def test_an_input_is_claimed_by_one_run_at_a_time(jpath: Path, tmp_path: Path) -> None:
    """The first claim wins; the other run is told who holds it until it is given up."""
    doc = tmp_path / "a.pdf"
    async with Journal(jpath) as first, Journal(jpath) as second:
        got = await first.claim(doc)
        assert got.claimed
        assert got.entry is not None
        assert (got.entry.state, got.entry.owner) == (State.PENDING, first.run.run_id)
        assert (await first.claim(doc)).claimed  # claiming again is harmless

        held = await second.claim(doc)
        assert not held.claimed
        assert held.holder is not None
        assert held.holder.run_id == first.run.run_id
        with pytest.raises(ClaimLostError, match=rf"a\.pdf: run {first.run.run_id} .*holds it"):
            await second.record_submitting(doc, SHA_A, "async", size=1, mtime_ns=1)

        await first.record_submitting(doc, SHA_A, "async", size=1, mtime_ns=1)
        await first.record_submitted(doc, "req-a")
        assert not (await second.claim(doc)).claimed
        await first.record_done(doc, tmp_path / "a.ocr.json", 3)  # gives the claim up
        after = await second.claim(doc)
        assert after.claimed
        assert after.taken_from is None
        assert after.entry is not None
        assert (after.entry.state, after.entry.request_id) == (State.DONE, "req-a")
        await second.release(doc)
        assert (await first.claim(doc)).claimed
        other = tmp_path / "b.pdf"
        both = await second.claim_many([doc, other])  # one transaction, in order
        assert [(c.claimed, c.entry.path if c.entry else None) for c in both] == [
            (False, doc),
            (True, other),
        ]


async def test_closing_gives_up_every_claim(jpath: Path, tmp_path: Path) -> None:
    """A run that closes its journal leaves its rows as they are, held by nobody."""
    async with Journal(jpath) as first:
        for name in ("a", "b"):
            await first.claim(tmp_path / f"{name}.pdf")
        await first.record_submitting(tmp_path / "c.pdf", SHA_A, "async", size=1, mtime_ns=1)
        await first.record_submitted(tmp_path / "c.pdf", "req-c")
    async with Journal(jpath) as second:
        for name in ("a", "b", "c"):
            claim = await second.claim(tmp_path / f"{name}.pdf")
            assert claim.claimed
            assert claim.taken_from is None
        entry = await second.get(tmp_path / "c.pdf")
    assert entry is not None
    assert (entry.state, entry.request_id) == (State.SUBMITTED, "req-c")


async def test_lease_is_renewed_while_the_journal_is_open(jpath: Path, tmp_path: Path) -> None:
    """With nothing else to do, the journal's thread renews the lease: the claim holds."""
    async with Journal(jpath, lease=0.3) as first, Journal(jpath) as second:
        await first.claim(tmp_path / "a.pdf")
        start = first.renewals
        await wait_until(lambda: first.renewals >= start + 4)
        held = await second.claim(tmp_path / "a.pdf")
        assert not held.claimed
        (row,) = [run for run in await second.runs() if run.run_id == first.run.run_id]
        assert row.lease_until > first.run.started_at + 0.3  # renewed, not the first lease


async def test_a_dead_runs_claims_are_taken_over(jpath: Path, tmp_path: Path) -> None:
    """A run on another host whose lease ran out is dead; one whose lease holds is not."""
    async with Journal(jpath) as journal:
        await journal.record_pending(tmp_path / "gone.pdf")
        await journal.record_pending(tmp_path / "live.pdf")
    now = time.time()
    with sqlite3.connect(jpath) as conn:
        conn.executemany(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("gone", 1, "elsewhere", "", now - 100, now - 1),
                ("live", 1, "elsewhere", "", now, now + 600),
            ],
        )
        for name in ("gone", "live"):
            conn.execute(
                "UPDATE inputs SET owner = ? WHERE path = ?",
                (name, os.fsencode(tmp_path / f"{name}.pdf")),
            )
    conn.close()
    async with Journal(jpath) as journal:
        assert {run.run_id for run in await journal.runs()} == {journal.run.run_id, "live"}
        gone = await journal.claim(tmp_path / "gone.pdf")
        live = await journal.claim(tmp_path / "live.pdf")
    assert gone.claimed
    assert gone.taken_from is not None
    assert (gone.taken_from.run_id, gone.taken_from.host) == ("gone", "elsewhere")
    assert gone.entry is not None
    assert gone.entry.owner == journal.run.run_id
    assert not live.claimed
    assert live.holder is not None
    assert (live.holder.run_id, live.holder.host) == ("live", "elsewhere")


async def test_orphaned_submits_are_claimed_for_settling(jpath: Path, tmp_path: Path) -> None:
    """`claim_orphans` takes the cut-off submits nobody holds; another run's stay its own."""
    async with Journal(jpath) as first, Journal(jpath) as second:
        await first.record_submitting(tmp_path / "mine.pdf", SHA_A, "async", size=1, mtime_ns=1)
        await first.release(tmp_path / "mine.pdf")  # as a run that stopped leaves it
        await second.record_submitting(tmp_path / "busy.pdf", SHA_B, "async", size=1, mtime_ns=1)
        await second.record_submitting(tmp_path / "sent.pdf", SHA_B, "async", size=1, mtime_ns=1)
        await second.record_submitted(tmp_path / "sent.pdf", "req-sent")
        orphans = await first.claim_orphans()
        assert [(e.path.name, e.owner) for e in orphans] == [("mine.pdf", first.run.run_id)]
        in_flight = await first.in_flight()
        assert sorted((e.path.name, e.owner) for e in in_flight) == [
            ("busy.pdf", second.run.run_id),
            ("mine.pdf", first.run.run_id),
        ]
        assert in_flight == await second.in_flight()
        assert not (await second.claim(tmp_path / "mine.pdf")).claimed


async def test_fresh_start_keeps_what_other_live_runs_hold(jpath: Path, tmp_path: Path) -> None:
    """`--no-resume` beside a live run forgets the free rows, never the other run's."""
    async with Journal(jpath) as first:
        await first.record_submitting(tmp_path / "held.pdf", SHA_A, "async", size=1, mtime_ns=1)
        await first.record_done(tmp_path / "free.pdf", tmp_path / "free.ocr.json", 1)
        async with Journal(jpath, fresh=True) as second:
            assert await second.get(tmp_path / "free.pdf") is None
            assert await second.get(tmp_path / "held.pdf") is not None
            await second.reset()
            assert [e.path.name for e in await second.open_requests()] == ["held.pdf"]


async def test_version_1_journal_is_brought_up_to_date(jpath: Path, tmp_path: Path) -> None:
    """A journal from before runs shared a folder keeps its rows and gains claims."""
    jpath.parent.mkdir(parents=True)
    conn = sqlite3.connect(jpath)
    script = _journal._INPUTS + "PRAGMA user_version = 1;"
    conn.executescript(script)
    conn.execute(
        "INSERT INTO inputs (path, state, request_id, updated_at) VALUES (?, 'submitted', 'r', 1)",
        (os.fsencode(tmp_path / "old.pdf"),),
    )
    conn.commit()
    conn.close()
    async with Journal(jpath) as journal:
        (entry,) = await journal.open_requests()
        claim = await journal.claim(tmp_path / "old.pdf")
    assert (entry.path.name, entry.request_id, entry.owner) == ("old.pdf", "r", None)
    assert claim.claimed
    with sqlite3.connect(jpath) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_lease_from_the_environment(jpath: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`AIOUPSTAGE_OCR_LEASE` sets the lease when none is given; nonsense is refused."""
    monkeypatch.delenv(LEASE_ENV, raising=False)
    assert Journal(jpath).lease == DEFAULT_LEASE == 30.0
    monkeypatch.setenv(LEASE_ENV, "2.5")
    assert Journal(jpath).lease == 2.5
    assert Journal(jpath, lease=7).lease == 7
    for bad in ("soon", "0", "-1", "nan"):
        monkeypatch.setenv(LEASE_ENV, bad)
        with pytest.raises(ConfigurationError, match="lease"):
            Journal(jpath)


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


# --------------------------------------------------------------------------- several processes

WORKER = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from aioupstage_ocr._journal import Journal, State

    async def main(path, folder, name, count):
        async with Journal(path) as journal:
            print("ready", flush=True)
            sys.stdin.readline()  # "go": every worker starts at once
            did = []
            slots = asyncio.Semaphore(8)

            async def one(n):
                doc = os.path.join(folder, f"{n}.pdf")
                async with slots:
                    claim = await journal.claim(doc)
                    if not claim.claimed:
                        return
                    if claim.entry.state is State.DONE:  # another worker finished it first
                        await journal.release(doc)
                        return
                    await journal.record_submitting(doc, "%064x" % n, "async", size=n, mtime_ns=n)
                    await journal.record_submitted(doc, f"{name}-{n}")
                    await journal.record_done(doc, f"{doc}.{name}", 1)
                    did.append(n)

            await asyncio.gather(*(one(n) for n in range(count)))
            print(json.dumps({"did": did, "commits": journal.commits}), flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    """
)


def run_workers(jpath: Path, folder: Path, workers: int, count: int) -> list[dict[str, object]]:
    """Start `workers` WORKER processes on one journal, release them together, collect."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(jpath), str(folder), f"w{n}", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        results.append(orjson.loads(out))
    return results


async def test_several_processes_share_one_journal_and_split_the_inputs(
    jpath: Path, tmp_path: Path
) -> None:
    """Four processes claim the same 200 inputs at once: each is done by exactly one."""
    workers, count = 4, 200
    results = await asyncio.to_thread(run_workers, jpath, tmp_path, workers, count)
    did = [set(result["did"]) for result in results]  # type: ignore[call-overload]
    assert set().union(*did) == set(range(count))
    assert sum(map(len, did)) == count  # nobody did one twice
    async with Journal(jpath) as journal:
        counts = await journal.counts()
        for n in range(count):
            entry = await journal.get(tmp_path / f"{n}.pdf")
            assert entry is not None
            assert entry.owner is None
            assert entry.request_id is not None
            worker = entry.request_id.split("-")[0]  # whoever sent it also wrote it
            assert entry.output == tmp_path / f"{n}.pdf.{worker}"
            assert n in did[int(worker[1:])]
        assert [run.run_id for run in await journal.runs()] == [journal.run.run_id]
    assert counts[State.DONE] == count
    print(f"\n{workers} processes, {count} inputs: split {sorted(map(len, did))}")


HOLDER = textwrap.dedent(
    """
    import asyncio, os, sys
    from aioupstage_ocr._journal import ClaimLostError, Journal

    async def main(path, folder, lease):
        journal = await Journal(path, lease=lease).open()
        sent = os.path.join(folder, "sent.pdf")
        cut = os.path.join(folder, "cut.pdf")
        await journal.record_submitting(sent, "a" * 64, "async", size=1, mtime_ns=1)
        await journal.record_submitted(sent, "req-sent")
        await journal.record_submitting(cut, "b" * 64, "async", size=1, mtime_ns=1)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # told to go on
        try:
            await journal.record_submitting(sent, "a" * 64, "async", size=1, mtime_ns=1)
        except ClaimLostError as exc:
            print(f"lost: {exc}", flush=True)
        else:
            print("sent again", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
    """
)


@contextlib.asynccontextmanager
async def holder(jpath: Path, folder: Path, lease: float) -> AsyncIterator[subprocess.Popen[str]]:
    """A HOLDER process, once it holds `sent.pdf` (request id) and `cut.pdf` (none yet);
    killed at the end."""

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(jpath), str(folder), str(lease)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        return proc

    proc = await asyncio.to_thread(start)
    try:
        yield proc
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait, 30)


async def test_claims_of_a_killed_process_are_taken_over_at_once(
    jpath: Path, tmp_path: Path
) -> None:
    """SIGKILL on this host: the pid is gone, so its claims are free long before its lease ends."""
    async with holder(jpath, tmp_path, 600.0) as proc, Journal(jpath) as journal:
        held = await journal.claim(tmp_path / "sent.pdf")
        assert held.holder is not None
        assert held.holder.pid == proc.pid
        assert [e.path.name for e in await journal.in_flight()] == ["cut.pdf"]
        assert await journal.claim_orphans() == []
        proc.kill()
        await asyncio.to_thread(proc.wait, 30)

        taken = await journal.claim(tmp_path / "sent.pdf")
        assert taken.claimed
        assert taken.taken_from is not None
        assert taken.taken_from.pid == proc.pid
        assert taken.entry is not None
        assert (taken.entry.state, taken.entry.request_id) == (State.SUBMITTED, "req-sent")
        orphans = await journal.claim_orphans()  # the cut-off submit: settled, not resent
        assert [(e.path.name, e.state, e.request_id) for e in orphans] == [
            ("cut.pdf", State.SUBMITTING, None)
        ]
        assert [e.owner for e in await journal.in_flight()] == [journal.run.run_id]
        assert [run.pid for run in await journal.runs()] == [os.getpid()]


async def test_a_stalled_process_loses_its_claims_when_its_lease_runs_out(
    jpath: Path, tmp_path: Path
) -> None:
    """SIGSTOP: no renewals, the lease ends, the claim is taken; woken, it sends nothing."""
    async with holder(jpath, tmp_path, 1.0) as proc, Journal(jpath) as journal:
        assert not (await journal.claim(tmp_path / "sent.pdf")).claimed
        proc.send_signal(signal.SIGSTOP)
        for _ in range(600):  # until the lease has run out (a minute at most)
            taken = await journal.claim(tmp_path / "sent.pdf")
            if taken.claimed:
                break
            await asyncio.sleep(0.1)
        assert taken.taken_from is not None
        assert taken.taken_from.pid == proc.pid
        proc.send_signal(signal.SIGCONT)
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        answer = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        assert answer.startswith("lost: ")
        assert f"run {journal.run.run_id} (pid {os.getpid()}" in answer
        entry = await journal.get(tmp_path / "sent.pdf")
        assert entry is not None
        assert (entry.state, entry.request_id) == (State.SUBMITTED, "req-sent")
