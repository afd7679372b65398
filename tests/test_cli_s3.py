"""`aioupstage-ocr ocr s3://... -o s3://...`: object storage on the command line (moto S3).

The command runs in its own process with the moto endpoint and fake
credentials in its environment (`s3_server` sets them for the session, and
`cli_env` copies the environment).
"""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest
from _s3 import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, S3Server, seed_objects
from test_cli import cli_env, pdf_texts, read_report, run_cli, start_cli
from test_cli_resume import wait_for

from aioupstage_ocr import OCRResult
from aioupstage_ocr._cli._remote import default_journal
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf


def seed(bucket: str, *, pdfs: tuple[int, ...], images: int) -> dict[str, bytes]:
    """Async-sized PDFs and small images under `in/` (one in a sub-prefix), plus a stray file."""
    objects: dict[str, bytes] = {}
    for n, pages in enumerate(pdfs):
        objects[f"in/a{n}-book.pdf"] = make_pdf(pages)
    for n in range(images):
        objects[f"in/sub/b{n:03d}-scan.png"] = make_image("png", seed=500 + n, width=48, height=32)
    seed_objects(bucket, {**objects, "in/notes.txt": b"not a document"})
    return objects


def outputs(bucket: str) -> dict[str, bytes]:
    """Every object under `out/`, by key relative to it."""
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    root = bucket.removeprefix("s3://") + "/out/"
    return {key[len(root) :]: fs.cat_file(key) for key in fs.find(root)}


def check(objects: dict[str, bytes], pdfs: tuple[int, ...], got: dict[str, bytes]) -> None:
    """An output for each document, mirrored with its full name, each whole and right."""
    assert set(got) == {key.removeprefix("in/") + ".ocr.json" for key in objects}
    for n, pages in enumerate(pdfs):
        result = OCRResult.from_json(got[f"a{n}-book.pdf.ocr.json"])
        assert [page.text for page in result.pages] == pdf_texts(pages)
    for key, data in got.items():
        if key.startswith("sub/"):
            assert OCRResult.from_json(data).num_pages == 1


def s3_args(bucket: str, journal: Path, report: Path, base_url: str) -> tuple[str | Path, ...]:
    """`ocr BUCKET/in -o BUCKET/out` with a journal, a report and the emulator's URL."""
    return (
        "ocr",
        f"{bucket}/in",
        "-o",
        f"{bucket}/out",
        "--journal",
        journal,
        "--report",
        report,
        "--base-url",
        base_url,
    )


def no_secrets(*texts: str) -> None:
    for text in texts:
        assert FAKE_SECRET_KEY not in text
        assert FAKE_ACCESS_KEY not in text


@pytest.mark.upstage_emulator(batch_latency=0.02, workers=2)
async def test_s3_to_s3_mirrors_outputs_and_a_rerun_skips_them(
    upstage_emulator: EmulatorThread, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    """Outputs under the output prefix, URLs on stdout; the same command again: all skipped."""
    pdfs = (101,)
    objects = seed(s3_bucket, pdfs=pdfs, images=4)
    journal, report = tmp_path / "journal.sqlite3", tmp_path / "report.jsonl"
    args = s3_args(s3_bucket, journal, report, upstage_emulator.base_url)
    ran = await run_cli(*args)
    assert ran.code == 0, ran.stderr
    got = outputs(s3_bucket)
    check(objects, pdfs, got)
    assert sorted(ran.paths) == sorted(f"{s3_bucket}/out/{key}" for key in got)
    rows = read_report(report)
    assert set(rows) == {f"{s3_bucket}/{key}" for key in objects}
    assert {row["status"] for row in rows.values()} == {"ok"}
    assert journal.is_file()
    no_secrets(ran.stdout, ran.stderr, report.read_text())

    again = await run_cli(*args)
    assert again.code == 0, again.stderr
    assert {row["status"] for row in read_report(report).values()} == {"skipped"}
    assert sorted(again.paths) == sorted(ran.paths)
    assert len(upstage_emulator.stats.async_submissions) == 1

    # An object put again with other content (within the same second, same size) is done again.
    changed = "in/sub/b000-scan.png"
    other = make_image("png", seed=999, width=48, height=32)
    assert len(other) == len(objects[changed])
    assert other != objects[changed]
    seed_objects(s3_bucket, {changed: other})
    third = await run_cli(*args)
    assert third.code == 0, third.stderr
    statuses = {key: row["status"] for key, row in read_report(report).items()}
    assert statuses.pop(f"{s3_bucket}/{changed}") == "ok"
    assert set(statuses.values()) == {"skipped"}


async def test_local_inputs_to_s3_and_one_object_to_a_local_folder(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    """A mix: local files put under an s3 prefix; one object's output in a local folder.

    The journal of the s3 output goes to the user's cache folder by default.
    """
    env = cli_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    docs = tmp_path / "docs"
    (docs / "x").mkdir(parents=True)
    (docs / "x" / "one.png").write_bytes(make_image("png", seed=1, width=40, height=30))
    ran = await run_cli("ocr", docs, "-o", f"{s3_bucket}/out", "--emulator", env=env)
    assert ran.code == 0, ran.stderr
    assert ran.paths == [f"{s3_bucket}/out/x/one.png.ocr.json"]
    assert OCRResult.from_json(outputs(s3_bucket)["x/one.png.ocr.json"]).num_pages == 1
    (journal,) = (tmp_path / "cache" / "aioupstage-ocr" / "journals").iterdir()
    assert journal.suffix == ".sqlite3"
    assert default_journal(f"{s3_bucket}/out/").name == journal.name

    seed_objects(s3_bucket, {"in/deep/two.png": make_image("png", seed=2, width=40, height=30)})
    local = tmp_path / "local"
    ran = await run_cli("ocr", f"{s3_bucket}/in/deep/two.png", "-o", local, "--emulator", env=env)
    assert ran.code == 0, ran.stderr
    assert ran.paths == [str(local / "two.png.ocr.json")]
    assert OCRResult.load(local / "two.png.ocr.json").num_pages == 1


async def test_a_missing_bucket_fails_naming_it(s3_server: S3Server, tmp_path: Path) -> None:
    ran = await run_cli("ocr", "s3://no-such-bucket-x1/in", "-o", tmp_path / "o", "--emulator")
    assert ran.code == 1
    assert "s3://no-such-bucket-x1/in" in ran.stderr
    no_secrets(ran.stdout, ran.stderr)


@pytest.mark.slow
@pytest.mark.upstage_emulator(batch_latency=0.05, workers=2)
async def test_killed_s3_run_resumes_and_submits_each_async_document_once(
    upstage_emulator: EmulatorThread, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    """SIGKILL with async documents open; the rerun: exit 0, outputs right, each sent once."""
    pdfs = (101, 102, 103, 104)
    objects = seed(s3_bucket, pdfs=pdfs, images=10)
    journal, report = tmp_path / "journal.sqlite3", tmp_path / "report.jsonl"
    args = s3_args(s3_bucket, journal, report, upstage_emulator.base_url)
    stats = upstage_emulator.stats
    proc = await start_cli(*args)
    await wait_for(lambda: len(stats.async_submissions) >= 2)
    proc.kill()
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(outputs(s3_bucket)) < len(objects)  # it really stopped part-way

    ran = await run_cli(*args, limit=120)
    assert ran.code == 0, ran.stderr
    got = outputs(s3_bucket)
    check(objects, pdfs, got)
    sent = {hashlib.sha256(objects[f"in/a{n}-book.pdf"]).hexdigest(): 1 for n in range(len(pdfs))}
    assert dict(stats.async_submissions) == sent
    rows = read_report(report)
    assert set(rows) == {f"{s3_bucket}/{key}" for key in objects}
    assert {row["status"] for row in rows.values()} <= {"ok", "skipped"}
    no_secrets(ran.stdout, ran.stderr, report.read_text())


async def test_other_formats_are_put_beside_the_json_and_added_later_from_it(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    """`--format txt,pdf` on S3: each file put; a format added later is made from the JSON."""
    seed_objects(s3_bucket, {"in/a.pdf": make_pdf(2)})
    journal = tmp_path / "journal.sqlite3"
    args = ("ocr", f"{s3_bucket}/in", "-o", f"{s3_bucket}/out", "--journal", journal, "--emulator")
    ran = await run_cli(*args, "--format", "json,txt,pdf")
    assert ran.code == 0, ran.stderr
    got = outputs(s3_bucket)
    assert set(got) == {"a.pdf.ocr.json", "a.pdf.txt", "a.pdf.ocr.pdf"}
    assert got["a.pdf.ocr.pdf"].startswith(b"%PDF")
    assert got["a.pdf.txt"].decode() == OCRResult.from_json(got["a.pdf.ocr.json"]).to_text()

    again = await run_cli(*args, "--format", "json,hocr")
    assert again.code == 0, again.stderr
    assert sorted(again.paths) == [f"{s3_bucket}/out/a.pdf.hocr", f"{s3_bucket}/out/a.pdf.ocr.json"]
    assert "a.pdf.hocr" in outputs(s3_bucket)


async def test_dry_run_plans_objects_by_url(s3_server: S3Server, s3_bucket: str) -> None:
    """`--dry-run` on a prefix: one line per object, named by URL; nothing written."""
    seed_objects(s3_bucket, {"in/a.pdf": make_pdf(3), "in/skip.txt": b"x"})
    ran = await run_cli("ocr", f"{s3_bucket}/in", "-o", f"{s3_bucket}/out", "--dry-run")
    assert ran.code == 0, ran.stderr
    first, total = ran.paths[0], ran.paths[-2]
    assert first.startswith(f"{s3_bucket}/in/a.pdf\t3 pages")
    assert total.startswith("total: 1 input, 3 pages")
    assert outputs(s3_bucket) == {}
