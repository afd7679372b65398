"""`ocr --format` (outputs beside each other, in the report, kept and skipped together) and
`convert` (outputs from saved results, no service call)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from aioupstage_ocr import OCRResult
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf
from tests.test_cli import CLI_KEY, read_report, run_main

ALL = "json,txt,hocr,alto,pdf"
SUFFIXES = (".ocr.json", ".txt", ".hocr", ".alto.xml", ".ocr.pdf")
FORMATS = ("json", "txt", "hocr", "alto", "pdf")


def outputs_of(out: Path, stem: str) -> list[Path]:
    return [out / f"{stem}{suffix}" for suffix in SUFFIXES]


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """The test key set; a `docs` folder made; where outputs and the report go."""
    monkeypatch.setenv("UPSTAGE_API_KEY", CLI_KEY)
    docs = tmp_path / "docs"
    docs.mkdir()
    return docs, tmp_path / "out", tmp_path / "report.jsonl"


def mtimes_of(paths: Iterable[str | Path]) -> dict[str, int]:
    return {str(p): Path(p).stat().st_mtime_ns for p in paths}


def check_first_run(docs: Path, out: Path, report: Path) -> dict[str, int]:
    rows = read_report(report)
    mtimes: dict[str, int] = {}
    for name, stem in (("a.pdf", "a"), ("b.png", "b")):
        row = rows[str(docs / name)]
        expected = dict(zip(FORMATS, outputs_of(out, stem), strict=True))
        assert row["status"] == "ok", row
        assert row["output"] == str(out / f"{stem}.ocr.json")
        assert row["outputs"] == {fmt: str(path) for fmt, path in expected.items()}
        result = OCRResult.load(expected["json"])
        assert expected["txt"].read_text() == result.to_text()
        assert expected["hocr"].read_text() == result.to_hocr(image=str(docs / name))
        assert expected["alto"].read_text() == result.to_alto(image=str(docs / name))
        assert expected["pdf"].read_bytes().startswith(b"%PDF")
        mtimes.update(mtimes_of(expected.values()))
    assert (out / "a.ocr.pdf").read_bytes().startswith((docs / "a.pdf").read_bytes())
    assert not list(out.glob("**/*.tmp"))
    return mtimes


async def test_formats_are_written_reported_and_resumed_together(
    upstage_emulator: EmulatorThread,
    dirs: tuple[Path, Path, Path],
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Every format beside the JSON; a rerun skips them all; a lost one is made again locally."""
    docs, out, report = dirs
    (docs / "a.pdf").write_bytes(make_pdf(2))
    (docs / "b.png").write_bytes(make_image("png", seed=2))
    argv = ["ocr", docs, "-o", out, "--report", report, "--format", ALL]
    argv += ["--base-url", upstage_emulator.base_url]
    assert await run_main(argv) == 0
    printed = capfd.readouterr().out.split()
    mtimes = check_first_run(docs, out, report)
    assert sorted(printed) == sorted(mtimes)  # every output's path, once
    uploads = upstage_emulator.stats.uploads
    assert uploads == 2

    assert await run_main(argv) == 0  # all there: skipped, untouched
    rows = read_report(report)
    assert {row["status"] for row in rows.values()} == {"skipped"}
    assert all(row["outputs"] for row in rows.values())
    assert mtimes_of(mtimes) == mtimes

    (out / "a.hocr").unlink()
    (out / "b.ocr.pdf").unlink()
    assert await run_main(argv) == 0  # made again from the saved JSON
    rows = read_report(report)
    assert rows[str(docs / "a.pdf")]["status"] == "ok"
    assert rows[str(docs / "b.png")]["status"] == "ok"
    assert (out / "a.hocr").is_file()
    assert (out / "b.ocr.pdf").is_file()
    assert (out / "a.txt").stat().st_mtime_ns == mtimes[str(out / "a.txt")]
    assert upstage_emulator.stats.uploads == uploads  # never the service again


def make_docx() -> bytes:
    """A minimal Word document (the service takes it; a searchable PDF cannot be made of it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<document/>")
        archive.writestr("docProps/app.xml", "<Properties><Pages>1</Pages></Properties>")
    return buffer.getvalue()


async def test_a_format_that_cannot_be_made_fails_the_row_not_the_others(
    upstage_emulator: EmulatorThread, dirs: tuple[Path, Path, Path]
) -> None:
    """A DOCX has no searchable PDF: its row fails naming it; its other outputs are written."""
    docs, out, report = dirs
    (docs / "memo.docx").write_bytes(make_docx())
    (docs / "scan.png").write_bytes(make_image("png", seed=4))
    argv = ["ocr", docs, "-o", out, "--report", report, "--format", "txt,pdf"]
    argv += ["--base-url", upstage_emulator.base_url]
    assert await run_main(argv) == 1
    rows = read_report(report)
    memo = rows[str(docs / "memo.docx")]
    assert memo["status"] == "failed"
    assert memo["outputs"] == {"json": str(out / "memo.ocr.json"), "txt": str(out / "memo.txt")}
    error = memo["error"]
    assert isinstance(error, dict)
    assert error["type"] == "UnsupportedFormatError"
    assert error["message"].startswith(f"{docs / 'memo.docx'}: a searchable PDF is made from")
    assert (out / "memo.txt").is_file()
    assert not (out / "memo.ocr.pdf").exists()
    assert rows[str(docs / "scan.png")]["status"] == "ok"
    uploads = upstage_emulator.stats.uploads

    assert await run_main(argv) == 1  # the result is kept: tried again locally, not paid again
    assert read_report(report)[str(docs / "memo.docx")]["status"] == "failed"
    assert read_report(report)[str(docs / "scan.png")]["status"] == "skipped"
    assert upstage_emulator.stats.uploads == uploads


async def test_convert_makes_outputs_from_a_saved_result(
    upstage_emulator: EmulatorThread,
    dirs: tuple[Path, Path, Path],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """`convert` writes beside the result or into DIR, never calls the service."""
    docs, out, _ = dirs
    (docs / "scan.pdf").write_bytes(make_pdf(2))
    argv = ["ocr", docs / "scan.pdf", "-o", out, "--base-url", upstage_emulator.base_url]
    assert await run_main(argv) == 0
    capfd.readouterr()
    uploads = upstage_emulator.stats.uploads
    saved = out / "scan.ocr.json"

    code = await run_main(
        ["convert", saved, "--format", "txt,hocr,alto,pdf", "--document", docs / "scan.pdf"]
    )
    assert code == 0
    printed = capfd.readouterr().out.split()
    assert printed == [str(p) for p in outputs_of(out, "scan")[1:]]
    result = OCRResult.load(saved)
    assert (out / "scan.txt").read_text() == result.to_text()
    assert (out / "scan.ocr.pdf").read_bytes().startswith((docs / "scan.pdf").read_bytes())

    elsewhere = tmp_path / "elsewhere"
    assert await run_main(["convert", saved, "--format", "json,alto", "-o", elsewhere]) == 0
    assert sorted(p.name for p in elsewhere.iterdir()) == ["scan.alto.xml", "scan.ocr.json"]
    assert upstage_emulator.stats.uploads == uploads


async def test_convert_refuses_what_it_cannot_do(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """pdf without the document, a bad format, a missing or broken result: clear errors."""
    saved = tmp_path / "a.ocr.json"
    saved.write_bytes(b'{"apiVersion": "1.1", "pages": [{"id": 0, "text": "", "words": []}]}')
    assert await run_main(["convert", saved, "--format", "pdf"]) == 2
    assert "needs the original: add --document ORIGINAL" in capfd.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        await run_main(["convert", saved, "--format", "txt,docx"])
    assert exit_info.value.code == 2
    assert "unknown output format docx" in capfd.readouterr().err
    (tmp_path / "broken.ocr.json").write_text("{not json")
    code = await run_main(["convert", tmp_path / "broken.ocr.json", tmp_path / "none.ocr.json",
                           saved, "--format", "txt"])  # fmt: skip
    err = capfd.readouterr().err
    assert code == 1
    assert "broken.ocr.json" in err
    assert "none.ocr.json" in err
    assert (tmp_path / "a.txt").read_text() == "\n"  # the good one is still converted
    doc = tmp_path / "three.pdf"
    doc.write_bytes(make_pdf(3))
    assert await run_main(["convert", saved, "--format", "txt,pdf", "--document", doc]) == 1
    assert "three.pdf: the result has 1 pages, the document 3" in capfd.readouterr().err
