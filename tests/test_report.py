"""The `--report` file: one whole JSON line per input, whatever happens to the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from aioupstage_ocr._exceptions import DocumentNotFoundError, RequestFailedError
from aioupstage_ocr._report import PARTIAL_SUFFIX, ReportRow, ReportWriter, error_of

FIELDS = ["input", "status", "output", "pages", "mode", "request_id", "error", "reason", "outputs"]


def read_rows(path: Path) -> list[dict[str, object]]:
    data = path.read_bytes()
    assert data.endswith(b"\n") or not data
    return [orjson.loads(line) for line in data.splitlines()]


def test_rows_are_json_lines_with_exact_fields(tmp_path: Path) -> None:
    """Each row is one line with the documented fields, in order; the folder is created."""
    report = tmp_path / "reports" / "run.jsonl"
    outputs = {"json": "/out/a.ocr.json", "pdf": "/out/a.ocr.pdf"}
    ok = ReportRow("/in/a.pdf", "ok", "/out/a.ocr.json", 3, "async", "req-1", outputs=outputs)
    skipped = ReportRow("/in/b.pdf", "skipped", reason="another run holds it")
    failed = ReportRow.failed(Path("/in/c.pdf"), DocumentNotFoundError("/in/c.pdf", "no such file"))
    with ReportWriter(report) as writer:
        for row in (ok, skipped, failed):
            writer.write(row)
        assert writer.rows == 3
    lines = report.read_bytes().splitlines()
    assert len(lines) == 3
    rows = [orjson.loads(line) for line in lines]
    assert all(list(row) == FIELDS for row in rows)
    assert rows[0] == {
        "input": "/in/a.pdf",
        "status": "ok",
        "output": "/out/a.ocr.json",
        "pages": 3,
        "mode": "async",
        "request_id": "req-1",
        "error": None,
        "reason": None,
        "outputs": {"json": "/out/a.ocr.json", "pdf": "/out/a.ocr.pdf"},
    }
    assert (rows[1]["output"], rows[1]["reason"]) == (None, "another run holds it")
    assert rows[2] == {
        "input": "/in/c.pdf",
        "status": "failed",
        "output": None,
        "pages": None,
        "mode": None,
        "request_id": None,
        "error": {"type": "DocumentNotFoundError", "message": "/in/c.pdf: no such file"},
        "reason": None,
        "outputs": None,
    }
    assert not Path(f"{report}{PARTIAL_SUFFIX}").exists()


def test_error_of_an_exception() -> None:
    """`error` is the exception's class name and message."""
    exc = RequestFailedError("req-7", "page 3 unreadable")
    assert error_of(exc) == {"type": "RequestFailedError", "message": str(exc)}
    row = ReportRow.failed("x.pdf", exc, mode="async", request_id="req-7")
    assert (row.status, row.mode, row.request_id) == ("failed", "async", "req-7")


def test_status_is_checked() -> None:
    """Only ok, failed and skipped are statuses."""
    with pytest.raises(ValueError, match="'done'"):
        ReportRow("a.pdf", "done")  # type: ignore[arg-type]


def test_awkward_text_stays_on_one_line(tmp_path: Path) -> None:
    """Newlines in a message and undecodable file names cannot break the line format."""
    odd = os.fsdecode(b"/in/caf\xe9.pdf")
    report = tmp_path / "r.jsonl"
    with ReportWriter(report) as writer:
        writer.write(ReportRow.failed(odd, ValueError("two\nlines")))
    [row] = read_rows(report)
    assert row["input"] == "/in/caf\\xe9.pdf"
    assert row["error"] == {"type": "ValueError", "message": "two\nlines"}


def test_rows_stream_to_the_partial_file(tmp_path: Path) -> None:
    """During the run, rows are on disk at once (no buffering in memory)."""
    report = tmp_path / "r.jsonl"
    with ReportWriter(report) as writer:
        writer.write(ReportRow("a.pdf", "ok"))
        assert read_rows(writer.partial_path) == [
            {"input": "a.pdf", "status": "ok"} | dict.fromkeys(FIELDS[2:])
        ]
        assert not report.exists()
    assert read_rows(report)[0]["input"] == "a.pdf"


def test_an_error_in_the_run_still_leaves_a_whole_report(tmp_path: Path) -> None:
    """Leaving the block by an exception (or Ctrl-C) keeps the rows written so far."""
    report = tmp_path / "r.jsonl"
    interrupted = False
    try:
        with ReportWriter(report) as writer:
            writer.write(ReportRow("a.pdf", "ok"))
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupted = True
    assert interrupted
    assert [row["input"] for row in read_rows(report)] == ["a.pdf"]


def test_a_new_run_replaces_the_old_report(tmp_path: Path) -> None:
    """The report is this run's rows only."""
    report = tmp_path / "r.jsonl"
    for name in ["first.pdf", "second.pdf"]:
        with ReportWriter(report) as writer:
            writer.write(ReportRow(name, "ok"))
    assert [row["input"] for row in read_rows(report)] == ["second.pdf"]


def test_writer_refuses_misuse(tmp_path: Path) -> None:
    """Writing before open or after close is an error, closing twice is not."""
    writer = ReportWriter(tmp_path / "r.jsonl")
    with pytest.raises(RuntimeError, match="not open"):
        writer.write(ReportRow("a.pdf", "ok"))
    writer.open()
    writer.close()
    writer.close()


WRITER = textwrap.dedent(
    """
    import sys
    from aioupstage_ocr._report import ReportRow, ReportWriter

    writer = ReportWriter(sys.argv[1]).open()
    n = 0
    while True:
        # Long rows, so a kill is likely to land mid-way through writing one.
        error = {"type": "E", "message": "x" * 5000}
        writer.write(ReportRow(f"/in/{n}.pdf", "failed", error=error))
        n += 1
        if n == 200:
            print("ready", flush=True)
    """
)


def test_a_killed_run_never_leaves_a_half_line(tmp_path: Path) -> None:
    """Killed mid-write: the report path keeps the previous whole report."""
    report = tmp_path / "r.jsonl"
    with ReportWriter(report) as writer:
        writer.write(ReportRow("previous.pdf", "ok"))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(report)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [row["input"] for row in read_rows(report)] == ["previous.pdf"]
    partial = Path(f"{report}{PARTIAL_SUFFIX}").read_bytes()
    assert partial.count(b"\n") >= 200  # the killed run's rows, there to inspect
