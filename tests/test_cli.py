"""The command line: `ocr` outputs, report, rows for bad inputs, secrets, the request commands.

Subprocess tests run `python -m aioupstage_ocr` against the test's emulator
(the event loop serves it while the child runs); in-process ones call `main`
in a worker thread, which runs its own event loop. `run_cli` and friends are
shared with the other `test_cli_*` modules.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from aioupstage_ocr import AsyncUpstageOCR, OCRResult
from aioupstage_ocr._cli import main
from aioupstage_ocr._cli._display import MAX_LISTED, RunDisplay
from aioupstage_ocr._report import ReportRow
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf, page_text

#: A key distinctive enough to search for in every output.
CLI_KEY = "up_CLI-key-3e8b1d7a9c2f4e60-never-print"
#: Real documents beside the project (used in place, never copied into it).
SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples"


# --------------------------------------------------------------------------- helpers


@dataclass
class Ran:
    """A finished command: exit code and both streams."""

    code: int
    stdout: str
    stderr: str

    @property
    def paths(self) -> list[str]:
        """The lines of stdout (the output paths)."""
        return [line for line in self.stdout.splitlines() if line]


def cli_env(key: str | None = CLI_KEY, **extra: str) -> dict[str, str]:
    """The environment of a command: the test key, nothing else `UPSTAGE_*` from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPSTAGE_")}
    if key is not None:
        env["UPSTAGE_API_KEY"] = key
    env["COLUMNS"] = "160"
    env.update(extra)
    return env


async def start_cli(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    stdin: bool = False,
    cwd: Path | None = None,
) -> asyncio.subprocess.Process:
    """Start `python -m aioupstage_ocr ARGS...`; the event loop keeps serving meanwhile."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aioupstage_ocr",
        *map(os.fspath, args),
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else cli_env(),
        cwd=cwd,
    )


async def run_cli(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    limit: float = 60,
) -> Ran:
    """Run the command to its end (within `limit` seconds)."""
    proc = await start_cli(*args, env=env, stdin=stdin is not None)
    out, err = await asyncio.wait_for(proc.communicate(stdin), limit)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def run_main(argv: Sequence[str | os.PathLike[str]]) -> int:
    """`main(argv)` in a worker thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, [os.fspath(arg) for arg in argv])


def read_report(path: Path) -> dict[str, dict[str, object]]:
    """The report's rows, keyed by input; one row per input."""
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    keyed = {str(row["input"]): row for row in rows}
    assert len(keyed) == len(rows), "an input has two rows"
    return keyed


def texts(output: str | os.PathLike[str]) -> list[str]:
    """The page texts of an output file."""
    return [page.text for page in OCRResult.load(output).pages]


def make_sparse(path: Path, size: int) -> None:
    """A file of `size` bytes that takes no room on disk."""
    with open(path, "wb") as file:
        file.truncate(size)


def files_under(folder: Path) -> list[Path]:
    """Every file under `folder`."""
    return [path for path in folder.rglob("*") if path.is_file()]


def pdf_texts(pages: int) -> list[str]:
    """What the emulator reads from `make_pdf(pages)`."""
    return [page_text(n) for n in range(1, pages + 1)]


# --------------------------------------------------------------------------- ocr, end to end


async def test_mixed_inputs_exit_1_with_a_row_for_each(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Good and bad inputs: exit 1, one report row each, the good written, same names kept apart."""
    docs, out, report = tmp_path / "docs", tmp_path / "out", tmp_path / "report.jsonl"
    (docs / "x").mkdir(parents=True)
    (docs / "y").mkdir()
    (docs / "x" / "a.pdf").write_bytes(make_pdf(["x page one", "x page two"]))
    (docs / "y" / "a.pdf").write_bytes(make_pdf(["y only page"]))
    (docs / "photo.png").write_bytes(make_image("png", seed=3))
    (docs / "empty.png").write_bytes(b"")
    (docs / "notes.pdf").write_bytes(b"typed notes, not a PDF\n")
    make_sparse(docs / "huge.pdf", 51_000_000)
    bad = {
        docs / "empty.png": ("EmptyDocumentError", "empty"),
        docs / "notes.pdf": ("UnsupportedFormatError", "not a format"),
        docs / "huge.pdf": ("DocumentTooLargeError", "over the limit"),
        docs / "missing.pdf": ("DocumentNotFoundError", "no such file"),
    }
    password = SAMPLES / "libreoffice-writer-password.pdf"
    if password.is_file():  # linked, not copied
        (docs / "locked.pdf").symlink_to(password)
        bad[docs / "locked.pdf"] = ("UnreadableDocumentError", "password")

    ran = await run_cli(
        "ocr", docs, docs / "missing.pdf", "-o", out, "--report", report,
        "--base-url", upstage_emulator.base_url,
    )  # fmt: skip

    assert ran.code == 1, ran.stderr
    good = {
        docs / "x" / "a.pdf": (out / "x" / "a.ocr.json", ["x page one", "x page two"]),
        docs / "y" / "a.pdf": (out / "y" / "a.ocr.json", ["y only page"]),
        docs / "photo.png": (out / "photo.ocr.json", None),
    }
    assert sorted(ran.paths) == sorted(str(output) for output, _ in good.values())
    rows = read_report(report)
    assert set(rows) == {str(p) for p in [*good, *bad]}
    for source, (output, expected) in good.items():
        row = rows[str(source)]
        assert (row["status"], row["output"], row["mode"], row["error"]) == (
            "ok", str(output), "sync", None,
        )  # fmt: skip
        assert OCRResult.load(output).num_pages == row["pages"]
        if expected is not None:
            assert texts(output) == expected
    for source, (error_type, reason) in bad.items():
        row = rows[str(source)]
        assert row["status"] == "failed"
        assert row["output"] is None
        error = row["error"]
        assert isinstance(error, dict)
        assert error["type"] == error_type
        assert str(source) in error["message"]
        assert reason in error["message"]
        assert f"failed: {source}: " in ran.stderr  # stderr names the file and the reason
    assert upstage_emulator.stats.uploads == len(good)  # nothing bad was uploaded
    assert not list(out.glob("**/*.tmp"))


@pytest.mark.upstage_emulator(api_key=CLI_KEY)
async def test_the_key_never_appears_anywhere(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """The key is never in stdout, stderr, the report, the journal or the outputs, even refused."""
    docs, out, report = tmp_path / "docs", tmp_path / "out", tmp_path / "report.jsonl"
    docs.mkdir()
    (docs / "scan.png").write_bytes(make_image("png", seed=11))
    (docs / "book.pdf").write_bytes(make_pdf(105))  # async: signed links, request ids
    (docs / "bad.pdf").write_bytes(b"not a pdf")
    base = upstage_emulator.base_url

    ran = await run_cli("ocr", docs, "-o", out, "--report", report, "--base-url", base)
    assert ran.code == 1, ran.stderr
    assert read_report(report)[str(docs / "book.pdf")]["status"] == "ok"

    (docs / "more.png").write_bytes(make_image("png", seed=12))
    upstage_emulator.configure(api_key="another-key-entirely")
    refused = await run_cli("ocr", docs, "-o", out, "--report", report, "--base-url", base)
    assert refused.code == 1
    assert "AuthenticationError" in refused.stderr
    assert "UPSTAGE_API_KEY" in refused.stderr

    key = CLI_KEY.encode()
    for text in (ran.stdout, ran.stderr, refused.stdout, refused.stderr):
        assert CLI_KEY not in text
    written = [path for path in files_under(tmp_path) if path.parent != docs]
    assert any(path.name.endswith(".sqlite3") for path in written)
    assert report in written
    for path in written:
        assert key not in path.read_bytes(), path


async def test_stdout_has_only_paths_while_the_bar_draws_on_a_terminal(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """stderr a terminal (progress bar, summary table), stdout a pipe: one path per line."""
    pty = pytest.importorskip("pty")
    docs, out = tmp_path / "docs", tmp_path / "out"
    docs.mkdir()
    for n in range(6):
        (docs / f"page-{n}.png").write_bytes(make_image("png", seed=100 + n))
    (docs / "bad.png").write_bytes(b"")
    leader, follower = pty.openpty()
    env = cli_env(TERM="xterm")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioupstage_ocr", "ocr", str(docs), "-o", str(out),
        "--base-url", upstage_emulator.base_url,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=follower, env=env,
    )  # fmt: skip
    os.close(follower)
    screen = bytearray()
    loop = asyncio.get_running_loop()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = loop.run_in_executor(None, drain)
    stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
    await asyncio.wait_for(reader, 10)
    os.close(leader)
    assert proc.returncode == 1
    lines = stdout.decode().splitlines()
    assert sorted(lines) == sorted(str(out / f"page-{n}.ocr.json") for n in range(6))
    shown = screen.decode(errors="replace")
    assert "\x1b[" in shown  # drawn for a terminal
    assert "skipped" in shown  # the summary table's header
    assert f"failed: {docs / 'bad.png'}" in shown


async def test_rerun_skips_finished_copies_identical_and_rechecks_content(
    upstage_emulator: EmulatorThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Rerun: skipped; an identical copy is copied; a touched file skipped; an edit sent."""
    monkeypatch.setenv("UPSTAGE_API_KEY", CLI_KEY)
    docs, out, report = tmp_path / "docs", tmp_path / "out", tmp_path / "report.jsonl"
    docs.mkdir()
    (docs / "a.png").write_bytes(make_image("png", seed=1))
    (docs / "b.pdf").write_bytes(make_pdf(3))
    (docs / "big.pdf").write_bytes(make_pdf(101))
    argv = ["ocr", docs, "-o", out, "--report", report, "--base-url", upstage_emulator.base_url]
    assert await run_main(argv) == 0
    first = capfd.readouterr().out.splitlines()
    assert len(first) == 3
    uploads = upstage_emulator.stats.uploads
    assert uploads == 3

    assert await run_main(argv) == 0
    assert sorted(capfd.readouterr().out.splitlines()) == sorted(first)  # printed again
    assert {row["status"] for row in read_report(report).values()} == {"skipped"}
    assert upstage_emulator.stats.uploads == uploads

    (docs / "a-copy.png").write_bytes((docs / "a.png").read_bytes())
    os.utime(docs / "b.pdf", ns=(1, 1))  # another mtime, the same content
    (docs / "big.pdf").write_bytes(make_pdf(102))  # another content
    assert await run_main(argv) == 0
    capfd.readouterr()
    rows = read_report(report)
    assert rows[str(docs / "a-copy.png")]["status"] == "ok"
    assert rows[str(docs / "a.png")]["status"] == "skipped"
    assert rows[str(docs / "b.pdf")]["status"] == "skipped"
    assert rows[str(docs / "big.pdf")]["status"] == "ok"
    assert upstage_emulator.stats.uploads == uploads + 1  # only the edited file went out
    assert texts(out / "a-copy.ocr.json") == texts(out / "a.ocr.json")
    assert texts(out / "big.ocr.json") == pdf_texts(102)

    assert await run_main([*argv, "--no-resume"]) == 0  # fresh: everything again
    capfd.readouterr()
    assert {row["status"] for row in read_report(report).values()} == {"ok"}
    assert upstage_emulator.stats.uploads == uploads + 1 + 3  # the copy shared a's upload


async def test_one_file_goes_to_the_temp_folder_by_default(
    upstage_emulator: EmulatorThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """`ocr scan.pdf` writes `<temp>/scan.ocr.json` and prints that absolute path."""
    monkeypatch.setenv("UPSTAGE_API_KEY", CLI_KEY)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    scan = tmp_path / "work" / "scan.pdf"
    scan.parent.mkdir()
    scan.write_bytes(make_pdf(2))
    assert await run_main(["ocr", scan, "--base-url", upstage_emulator.base_url]) == 0
    assert capfd.readouterr().out == f"{temp / 'scan.ocr.json'}\n"
    assert texts(temp / "scan.ocr.json") == pdf_texts(2)


async def test_emulator_flag_needs_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`--emulator` runs on the in-process emulator with no key set."""
    monkeypatch.delenv("UPSTAGE_API_KEY", raising=False)
    (tmp_path / "scan.png").write_bytes(make_image("png", seed=5))
    argv = ["ocr", tmp_path / "scan.png", "-o", tmp_path / "out", "--emulator", "--quiet"]
    assert await run_main(argv) == 0
    captured = capfd.readouterr()
    assert captured.out == f"{tmp_path / 'out' / 'scan.ocr.json'}\n"
    assert captured.err.strip().startswith("aioupstage-ocr: 1 ok, 0 failed, 0 skipped")


async def test_usage_errors_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """No key (with how to set it), conflicting or bad options: exit 2, nothing done."""
    monkeypatch.delenv("UPSTAGE_API_KEY", raising=False)
    (tmp_path / "a.png").write_bytes(make_image("png"))
    assert await run_main(["ocr", tmp_path / "a.png", "-o", tmp_path / "out"]) == 2
    err = capfd.readouterr().err
    assert "UPSTAGE_API_KEY" in err
    assert "--emulator" in err
    assert not (tmp_path / "out").exists()

    assert await run_main(["status", "some-id"]) == 2
    assert "UPSTAGE_API_KEY" in capfd.readouterr().err

    monkeypatch.setenv("UPSTAGE_API_KEY", CLI_KEY)
    argv = ["ocr", tmp_path / "a.png", "--emulator", "--base-url", "http://127.0.0.1:9/v1"]
    assert await run_main(argv) == 2
    assert "exclude" in capfd.readouterr().err
    for bad in (["ocr"], ["ocr", "x", "--concurrency", "0"], ["ocr", "x", "--rps", "-1"], []):
        with pytest.raises(SystemExit) as exited:
            await run_main(bad)
        assert exited.value.code == 2
    capfd.readouterr()


async def test_status_fetch_and_requests(
    upstage_emulator: EmulatorThread,
    client: AsyncUpstageOCR,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The async endpoints by hand: JSON on stdout, a result file with -o, exit 1 on a bad id."""
    monkeypatch.setenv("UPSTAGE_API_KEY", CLI_KEY)
    base = ["--base-url", upstage_emulator.base_url]
    request_id = await client.submit(make_pdf(25), filename="report.pdf")

    assert await run_main(["requests", *base]) == 0
    listed = orjson.loads(capfd.readouterr().out)
    assert [entry["id"] for entry in listed["requests"]] == [request_id]

    assert await run_main(["fetch", request_id, "-o", tmp_path / "r.json", *base]) == 0
    assert capfd.readouterr().out == f"{tmp_path / 'r.json'}\n"
    assert texts(tmp_path / "r.json") == pdf_texts(25)

    assert await run_main(["fetch", request_id, *base]) == 0
    fetched = orjson.loads(capfd.readouterr().out)
    assert [page["text"] for page in fetched["pages"]] == pdf_texts(25)

    assert await run_main(["status", request_id, *base]) == 0
    status = orjson.loads(capfd.readouterr().out)
    assert (status["id"], status["status"], status["total_pages"]) == (request_id, "completed", 25)

    assert await run_main(["status", "no-such-request", *base]) == 1
    err = capfd.readouterr().err
    assert "NotFoundError" in err
    assert "no-such-request" in err


async def test_demo_exits_0_with_its_outputs(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`demo`: every document but the deliberately bad one is OCRed, outputs where it says."""
    assert await run_main(["demo", "-o", tmp_path]) == 0
    captured = capfd.readouterr()
    outputs = [Path(line) for line in captured.out.splitlines()]
    assert len(outputs) == 11
    assert all(path.is_file() and path.is_relative_to(tmp_path / "outputs") for path in outputs)
    big = tmp_path / "outputs" / "reports" / "annual-report.ocr.json"
    assert texts(big) == pdf_texts(150)
    written = orjson.loads(big.read_bytes())  # the live service's shape, merged from 15 batches
    assert set(written) == {
        "apiVersion", "confidence", "metadata", "mimeType", "modelVersion", "numBilledPages",
        "pages", "stored", "text",
    }  # fmt: skip
    assert set(written["pages"][0]["words"][0]) == {"boundingBox", "confidence", "id", "text"}
    if (SAMPLES.parent / "real-ocr").is_dir():  # the replay of the real answers ran too
        assert captured.err.count("the saved sync and async-merged results are the recording") == 4
        assert (tmp_path / "replay" / "async" / "multi_page.ocr.json").is_file()
    rows = read_report(tmp_path / "report.jsonl")
    assert [Path(k).name for k, row in rows.items() if row["status"] == "failed"] == ["notes.pdf"]
    assert f"Outputs: {tmp_path / 'outputs'}" in captured.err


# --------------------------------------------------------------------------- the display


def _row(name: str, status: str, *, pages: int | None = 1) -> ReportRow:
    if status == "failed":
        return ReportRow.failed(f"/in/{name}", ValueError(f"/in/{name}: broken"))
    return ReportRow(f"/in/{name}", status, output=f"/out/{name}.ocr.json", pages=pages)  # type: ignore[arg-type]


def test_display_prints_paths_to_stdout_and_the_rest_to_stderr() -> None:
    """Paths of ok and skipped rows on stdout; failures and the summary table on stderr."""
    out, err = io.StringIO(), io.StringIO()
    with RunDisplay("log", stdout=out, stderr=err) as display:
        display.found(3)
        display.finished(_row("a", "ok", pages=4))
        display.finished(_row("b", "skipped"))
        display.finished(_row("c", "failed"))
        display.retried()
        display.paused()
        display.total_known(3)
    display.summary()
    assert out.getvalue() == "/out/a.ocr.json\n/out/b.ocr.json\n"
    text = err.getvalue()
    assert "failed: /in/c: broken (ValueError)" in text
    for header in ("ok", "failed", "skipped", "pages", "time", "retries", "429 pauses"):
        assert header in text
    assert "Failures (1):" in text
    assert (display.totals.ok, display.totals.pages, display.totals.retries) == (1, 4, 1)


def test_display_quiet_is_failures_and_one_line() -> None:
    """Quiet: each failure, then one summary line; paths still on stdout."""
    out, err = io.StringIO(), io.StringIO()
    with RunDisplay("quiet", stdout=out, stderr=err) as display:
        display.message("not shown")
        display.finished(_row("a", "ok"))
        display.finished(_row("c", "failed"))
    display.summary()
    assert out.getvalue() == "/out/a.ocr.json\n"
    lines = err.getvalue().splitlines()
    assert lines == [
        "aioupstage-ocr: failed: /in/c: broken (ValueError)",
        lines[1],
    ]
    assert lines[1].startswith("aioupstage-ocr: 1 ok, 1 failed, 0 skipped, 1 pages in ")


def test_display_lists_the_first_failures_and_points_to_the_report() -> None:
    """Many failures: the first `MAX_LISTED` by name, then how many more and where."""
    err = io.StringIO()
    with RunDisplay("log", stdout=io.StringIO(), stderr=err) as display:
        for n in range(MAX_LISTED + 5):
            display.finished(_row(f"f{n}", "failed"))
    display.summary(report=Path("/tmp/r.jsonl"))
    text = err.getvalue()
    assert text.count("  /in/f") == MAX_LISTED
    assert "... and 5 more (see /tmp/r.jsonl)" in text


def test_demo_finds_recordings_beside_the_checkout_it_runs_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-editable install (package in site-packages) still finds `shared/real-ocr`
    beside the folder the demo runs from, the nearest first; `--recordings` wins."""
    from aioupstage_ocr import _demo

    monkeypatch.setattr(_demo, "REAL_OCR", tmp_path / "site" / "pkg" / "shared" / "real-ocr")
    project = tmp_path / "work" / "project"
    (project / "sub").mkdir(parents=True)
    monkeypatch.chdir(project / "sub")
    if not any((up / "shared" / "real-ocr").is_dir() for up in tmp_path.parents):
        assert _demo.find_recordings() is None
    (tmp_path / "work" / "shared" / "real-ocr").mkdir(parents=True)
    assert _demo.find_recordings() == tmp_path / "work" / "shared" / "real-ocr"
    assert _demo.find_recordings(tmp_path / "mine") == tmp_path / "mine"
