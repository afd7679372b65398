"""Several runs on one output folder: they share its journal and split the work.

Every run here is `python -m aioupstage_ocr` in a process of its own, all
against the test's one emulator (so its counters see what every run sent),
with a lease of a few seconds (`AIOUPSTAGE_OCR_LEASE`).
"""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cli import Ran, cli_env, read_report, run_main, start_cli, texts
from test_cli_resume import sha256

from aioupstage_ocr import AsyncUpstageOCR, OCRResult
from aioupstage_ocr._journal import LEASE_ENV, Journal, journal_path
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf

#: The lease of every run in these tests, in seconds.
LEASE = "3"


def make_docs(folder: Path, prefix: str, *, pdfs: int, images: int) -> dict[Path, list[str]]:
    """`pdfs` PDFs of 101, 102, ... pages (async), then `images` small PNGs, none alike.

    Each path with the page texts the emulator reads from it (an image: one
    page, its text unchecked: an empty list).
    """
    folder.mkdir(parents=True)
    made: dict[Path, list[str]] = {}
    for n in range(pdfs):
        path = folder / f"{prefix}{n:02d}-book.pdf"
        pages = [f"{prefix} {n} page {page}" for page in range(1, 102 + n)]
        path.write_bytes(make_pdf(pages))
        made[path] = pages
    for n in range(images):
        path = folder / f"{prefix}{n:02d}-scan.png"
        seed = sum(map(ord, prefix)) * 1000 + n
        path.write_bytes(make_image("png", seed=seed, width=48, height=32))
        made[path] = []
    return made


def check_outputs(made: dict[Path, list[str]], docs: Path, out: Path) -> None:
    """Every output whole and right: a PDF's pages in order, an image's one page."""
    for source, pages in made.items():
        output = out / source.relative_to(docs).with_suffix(".ocr.json")
        if source.suffix == ".pdf":
            assert texts(output) == pages, source
        else:
            assert OCRResult.load(output).num_pages == 1, source
    assert not list(out.rglob("*.tmp"))


def summary(ran: Ran) -> tuple[int, int, int]:
    """(ok, failed, skipped) from the one-line summary of a `--quiet` run."""
    found = re.search(r"(\d+) ok, (\d+) failed, (\d+) skipped", ran.stderr)
    assert found is not None, ran.stderr
    ok, failed, skipped = map(int, found.groups())
    return ok, failed, skipped


def open_requests_by_pid(journal: Path) -> dict[int, int]:
    """How many `submitted` rows each live run's process holds, read straight from the file."""
    if not journal.exists():
        return {}
    conn = sqlite3.connect(journal, timeout=5)
    try:
        rows = conn.execute(
            "SELECT runs.pid, count(*) FROM inputs JOIN runs ON inputs.owner = runs.run_id "
            "WHERE inputs.state = 'submitted' GROUP BY runs.pid"
        ).fetchall()
    except sqlite3.OperationalError:  # the schema is still being made
        return {}
    finally:
        conn.close()
    return {int(pid): int(count) for pid, count in rows}


def run_pids(journal: Path) -> set[int]:
    """The pids of the runs registered in the journal (live or not yet forgotten)."""
    if not journal.exists():
        return set()
    conn = sqlite3.connect(journal, timeout=5)
    try:
        return {int(row[0]) for row in conn.execute("SELECT pid FROM runs")}
    except sqlite3.OperationalError:  # the schema is still being made
        return set()
    finally:
        conn.close()


async def wait_for(condition: Callable[[], bool], limit: float = 120) -> None:
    """Poll `condition()` on the event loop (which serves the emulator meanwhile)."""
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def finish(proc: asyncio.subprocess.Process, limit: float = 240) -> Ran:
    out, err = await asyncio.wait_for(proc.communicate(), limit)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def run_together(*argvs: tuple[object, ...], env: dict[str, str]) -> list[Ran]:
    """Start every command at once; each one's end."""
    procs = [await start_cli(*argv, env=env) for argv in argvs]  # type: ignore[arg-type]
    return list(await asyncio.gather(*map(finish, procs)))


@pytest.mark.slow
@pytest.mark.upstage_emulator(batch_latency=0.05, workers=2)
async def test_two_runs_on_different_inputs_share_the_default_output_folder(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """No -o, started together: both exit 0, every output right, each tells only its own."""
    temp = tmp_path / "temp"  # the system temp folder, as both runs see it
    temp.mkdir()
    env = cli_env(TMPDIR=str(temp), **{LEASE_ENV: LEASE})
    made = {name: make_docs(tmp_path / name, name, pdfs=2, images=15) for name in ("left", "right")}
    reports = {name: tmp_path / f"{name}.jsonl" for name in made}
    base = ("--base-url", upstage_emulator.base_url, "--quiet")
    ran = dict(
        zip(
            made,
            await run_together(
                *(("ocr", tmp_path / name, "--report", reports[name], *base) for name in made),
                env=env,
            ),
            strict=True,
        )
    )

    for name, docs in made.items():
        assert ran[name].code == 0, ran[name].stderr
        check_outputs(docs, tmp_path / name, temp)
        rows = read_report(reports[name])
        assert set(rows) == {str(path) for path in docs}  # its own inputs, nothing else
        assert {row["status"] for row in rows.values()} == {"ok"}
        assert summary(ran[name]) == (len(docs), 0, 0)
        assert sorted(ran[name].paths) == sorted(
            str(temp / path.relative_to(tmp_path / name).with_suffix(".ocr.json")) for path in docs
        )
    assert journal_path(temp).is_file()
    stats = upstage_emulator.stats
    assert all(stats.submissions(sha256(path)) == 1 for docs in made.values() for path in docs)


@pytest.mark.slow
@pytest.mark.upstage_emulator(batch_latency=0.02, workers=4)
async def test_two_runs_on_the_same_inputs_send_each_document_once(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """40 async PDFs and 40 images, two runs at once on one folder: each sent once in all."""
    docs, out = tmp_path / "docs", tmp_path / "out"
    made = make_docs(docs, "d", pdfs=40, images=40)
    env = cli_env(**{LEASE_ENV: LEASE})
    reports = [tmp_path / "first.jsonl", tmp_path / "second.jsonl"]
    base = ("ocr", docs, "-o", out, "--base-url", upstage_emulator.base_url, "--quiet")
    ran = await run_together(*((*base, "--report", report) for report in reports), env=env)

    assert [r.code for r in ran] == [0, 0], [r.stderr for r in ran]
    check_outputs(made, docs, out)
    stats = upstage_emulator.stats
    assert {path.name: stats.submissions(sha256(path)) for path in made} == {
        path.name: 1 for path in made
    }
    assert sum(stats.async_submissions.values()) == 40
    rows = [read_report(report) for report in reports]
    done = [{key for key, row in got.items() if row["status"] == "ok"} for got in rows]
    assert not done[0] & done[1]  # never both
    assert done[0] | done[1] == {str(path) for path in made}
    for got, own, other, result in zip(rows, done, reversed(done), ran, strict=True):
        assert set(got) == {str(path) for path in made}
        skipped = {key: row for key, row in got.items() if row["status"] == "skipped"}
        assert set(skipped) == set(got) - own
        assert set(skipped) <= other  # the other run did them
        for row in skipped.values():  # waited for (with the output) or left (with the reason)
            assert row["output"] is not None or "holds it" in str(row["reason"])
        assert summary(result) == (len(own), 0, len(skipped))
    print(f"\nsplit: {len(done[0])} + {len(done[1])} of {len(made)}")


@pytest.mark.slow
@pytest.mark.upstage_emulator(batch_latency=0.1, sync_latency=0.3, workers=2)
async def test_a_killed_run_leaves_its_inputs_to_the_other_without_paying_twice(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """SIGKILL a run holding open requests: the other takes them over; none is sent twice."""
    docs, out = tmp_path / "docs", tmp_path / "out"
    made = make_docs(docs, "k", pdfs=8, images=40)
    pdfs = [path for path in made if path.suffix == ".pdf"]
    env = cli_env(**{LEASE_ENV: LEASE})
    reports = [tmp_path / "killed.jsonl", tmp_path / "survivor.jsonl", tmp_path / "rerun.jsonl"]
    where = ("-o", out, "--base-url", upstage_emulator.base_url)
    stats = upstage_emulator.stats
    journal = journal_path(out)

    # The PDFs go to the first run on stdin (left open: it keeps reading), so it holds them.
    killed = await start_cli(
        "ocr", "-", *where, "--report", reports[0], env=env, stdin=True, cwd=docs
    )
    assert killed.stdin is not None
    killed.stdin.write(b"".join(path.name.encode() + b"\n" for path in pdfs))
    await killed.stdin.drain()
    await wait_for(lambda: open_requests_by_pid(journal).get(killed.pid, 0) >= 3)
    survivor = await start_cli("ocr", docs, *where, "--report", reports[1], env=env)
    await wait_for(lambda: survivor.pid in run_pids(journal))  # it has joined the folder
    held = open_requests_by_pid(journal).get(killed.pid, 0)
    killed.kill()
    await killed.wait()
    assert killed.returncode == -signal.SIGKILL

    survived = await finish(survivor)
    assert survived.code == 0, survived.stderr
    taken = survived.stderr.count("stopped while it held it; taken over")
    assert taken >= 1, survived.stderr
    check_outputs(made, docs, out)
    assert {path.name: stats.async_submissions[sha256(path)] for path in pdfs} == {
        path.name: 1 for path in pdfs
    }
    assert sum(stats.async_submissions.values()) == len(pdfs)
    rows = read_report(reports[1])
    assert set(rows) == {str(path) for path in made}
    assert {row["status"] for row in rows.values()} <= {"ok", "skipped"}

    before = sum(stats.requests.values())
    rerun = await finish(await start_cli("ocr", docs, *where, "--report", reports[2], env=env))
    assert rerun.code == 0, rerun.stderr
    assert {row["status"] for row in read_report(reports[2]).values()} == {"skipped"}
    assert sum(stats.requests.values()) == before  # nothing left to ask the service
    assert run_pids(journal) == set()  # nobody holds anything any more
    print(f"\nkilled holding {held} open request(s); the survivor took over {taken} input(s)")


async def test_a_cut_off_submit_taken_over_waits_for_a_live_runs_answer(
    upstage_emulator: EmulatorThread,
    client: AsyncUpstageOCR,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A dead run's cut-off submit, and a live run's submit of the same size still unanswered:
    the request that could be either's is not adopted until the live run records its own."""
    monkeypatch.setenv("UPSTAGE_API_KEY", "any-key")
    docs, out = tmp_path / "docs", tmp_path / "out"
    docs.mkdir()
    mine, theirs = docs / "mine.pdf", docs / "theirs.pdf"
    mine_pages = [f"mine {n}" for n in range(1, 111)]
    mine.write_bytes(make_pdf(mine_pages))
    theirs.write_bytes(make_pdf([f"theirs {n}" for n in range(1, 111)]))  # the same size
    async with Journal(journal_path(out)) as dead:  # a run that stopped mid-submit
        info = mine.stat()
        await dead.record_submitting(
            mine, sha256(mine), "async", size=info.st_size, mtime_ns=info.st_mtime_ns
        )
        dead_id = dead.run.run_id
    with sqlite3.connect(journal_path(out)) as conn:  # ... and never let go of it
        now = time.time()
        conn.execute(
            "INSERT INTO runs VALUES (?, 1, 'elsewhere', '', ?, ?)", (dead_id, now - 60, now - 30)
        )
        conn.execute("UPDATE inputs SET owner = ?", (dead_id,))
    conn.close()
    async with Journal(journal_path(out)) as live:  # another run, its submit unanswered
        info = theirs.stat()
        await live.record_submitting(
            theirs, sha256(theirs), "async", size=info.st_size, mtime_ns=info.st_mtime_ns
        )
        mine_request = await client.submit(mine)  # both reached the service
        theirs_request = await client.submit(theirs)

        argv = ["ocr", mine, "-o", out, "--base-url", upstage_emulator.base_url]
        command = asyncio.create_task(run_main(argv))
        stats = upstage_emulator.stats
        await wait_for(lambda: stats.requests["list"] >= 2 or command.done())  # looked twice
        assert not command.done()  # waiting: either request could be its
        await live.record_submitted(theirs, theirs_request)  # the live run's answer came
        assert await asyncio.wait_for(command, 120) == 0

    err = capfd.readouterr().err
    assert f"{mine}: the last run stopped while submitting it; request {mine_request}" in err
    assert theirs_request not in err
    assert texts(out / "mine.ocr.json") == mine_pages
    assert stats.async_submissions[sha256(mine)] == 1  # the submit cut off, never again
