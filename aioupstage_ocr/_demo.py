"""`aioupstage-ocr demo`: the whole pipeline on the bundled emulator, in seconds.

Makes a few documents in a folder (images of four formats, a multi-page
TIFF, PDFs of 4 to 30 pages, one of 150 pages that goes through the async
endpoint, an identical copy that is OCRed once, and a text file named `.pdf`
that preflight refuses), starts the emulator in-process with some latency, a
few server errors and a rate limit, and runs `ocr` over the folder with the
progress bar, the summary, a report and the journal, as a user would.
Every output is in the live service's own shape.

Where the project sits beside `shared/real-ocr` (documents with the live
service's recorded answers), it then replays them: an emulator with
`EmulatorConfig(recordings=...)` answers those documents with the service's
real answers, sync and as async batches merged back, and the demo checks that
what the client saved is the recorded answer. Elsewhere that part is skipped.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

from ._atomic import atomic_write_bytes
from ._cli._ocr import OcrOptions, run_command
from ._client import AsyncUpstageOCR
from .testing._config import EmulatorConfig
from .testing._documents import make_image, make_pdf, make_tiff
from .testing._emulator import UpstageEmulator
from .testing._recordings import load_recordings

__all__ = [
    "DEMO_EMULATOR",
    "REAL_OCR",
    "find_recordings",
    "make_documents",
    "replay_recordings",
    "run_demo",
]

#: The emulator of the demo: some latency, a few 5xx, a rate limit to find.
DEMO_EMULATOR = EmulatorConfig(
    seed=7,
    sync_latency=0.25,
    batch_latency=0.4,
    latency_jitter=0.5,
    workers=4,
    rps=5.0,
    error_rate=0.08,
)

#: The file preflight refuses, on purpose.
BAD_NAME = "notes.pdf"
#: The document over 100 pages: the async endpoint, 15 batches.
BIG_NAME = "annual-report.pdf"
BIG_PAGES = 150
#: The live service's recorded answers, beside the project in a checkout (never copied in).
REAL_OCR = Path(__file__).resolve().parents[2] / "shared" / "real-ocr"


def find_recordings(given: str | os.PathLike[str] | None = None) -> Path | None:
    """The folder of recorded answers the demo replays, or None when there is none.

    `given` (the `--recordings` option) wins; then beside the package (an editable
    install in a checkout), then `shared/real-ocr` beside the current directory or
    any folder above it (a `pip install .` run from the checkout, whose package
    sits in site-packages).
    """
    if given is not None:
        return Path(given)
    here = Path.cwd().resolve()
    for base in (REAL_OCR.parents[1], here, *here.parents):
        candidate = base / "shared" / "real-ocr"
        if candidate.is_dir():
            return candidate
    return None


def make_documents(folder: Path) -> list[Path]:
    """Write the demo's documents under `folder`; their paths."""
    files: dict[str, bytes] = {
        "invoices/invoice-001.png": make_image("png", seed=1),
        "invoices/invoice-001-copy.png": make_image("png", seed=1),
        "invoices/invoice-002.jpg": make_image("jpeg", seed=2),
        "invoices/invoice-003.bmp": make_image("bmp", seed=3),
        "receipts/receipt-a.png": make_image("png", seed=4),
        "receipts/receipt-b.jpg": make_image("jpeg", seed=5),
        "scans/contract-scan.tiff": make_tiff(3, seed=6),
        "reports/brief.pdf": make_pdf(4),
        "reports/quarterly-report.pdf": make_pdf(12),
        "reports/manual.pdf": make_pdf(30),
        f"reports/{BIG_NAME}": make_pdf(BIG_PAGES),
        BAD_NAME: b"Meeting notes, typed in a text editor and saved as .pdf by mistake.\n",
    }
    paths = []
    for name, data in files.items():
        paths.append(atomic_write_bytes(folder / name, data))
    return paths


def run_demo(
    output_dir: str | None = None, recordings: str | os.PathLike[str] | None = None
) -> int:
    """Run the demo; 0 when everything but the deliberately bad file succeeded.

    And, where the recordings are there (`recordings`, else `find_recordings()`),
    every replayed result is its recording.
    """
    root = Path(output_dir or tempfile.mkdtemp(prefix="aioupstage-ocr-demo-")).resolve()
    documents, outputs, report = root / "documents", root / "outputs", root / "report.jsonl"
    started = time.monotonic()
    paths = make_documents(documents)
    _say(
        f"Made {len(paths)} documents in {documents}: images, a 3-page TIFF, PDFs of 4 to "
        f"{BIG_PAGES} pages ({BIG_NAME} goes through the async endpoint), an identical copy, "
        f"and {BAD_NAME}, a text file preflight refuses."
    )
    _say(
        "Starting the emulator of the service in-process: latency, 8% server errors, "
        "5 requests/s before 429s. No key, no network."
    )
    options = OcrOptions(
        inputs=(os.fspath(documents),),
        output_dir=os.fspath(outputs),
        report=os.fspath(report),
        emulator=True,
        resume=False,
    )
    code = run_command(options, emulator_config=DEMO_EMULATOR)
    if code not in (0, 1):
        return code
    rows = [orjson.loads(line) for line in report.read_bytes().splitlines() if line.strip()]
    unexpected = [
        row for row in rows if row["status"] == "failed" and Path(row["input"]).name != BAD_NAME
    ]
    big = next((row for row in rows if Path(row["input"]).name == BIG_NAME), None)
    _say(f"Outputs: {outputs} ({sum(row['status'] == 'ok' for row in rows)} files)")
    if big is not None and big["status"] == "ok":
        page = orjson.loads(Path(big["output"]).read_bytes())["pages"][122]
        _say(
            f"  {big['output']}: {big['pages']} pages through the async endpoint "
            f"(request {big['request_id']}); page 123 reads {page['text'][:40]!r}..."
        )
    _say(
        f"The failure of {BAD_NAME} is on purpose: it is refused before upload, by content. "
        "Run the demo's command again and every finished document is skipped:"
    )
    _say(f"  aioupstage-ocr ocr {documents} -o {outputs} --emulator")
    mismatched: list[str] = []
    folder = find_recordings(recordings)
    if folder is not None and folder.is_dir():
        mismatched = replay_recordings(folder, root / "replay")
    elif folder is not None:
        _say(f"No recorded answers at {folder}: not a folder.")
        return 2
    else:
        _say(
            "(No shared/real-ocr beside this folder or above it: the replay of real "
            "answers is skipped; --recordings DIR names one.)"
        )
    _say("On your own files: set UPSTAGE_API_KEY and run `aioupstage-ocr ocr FILES... -o DIR`.")
    _say(f"Demo done in {time.monotonic() - started:.1f} s.")
    if unexpected:
        _say(f"Unexpected failures: {len(unexpected)} (see the report)")
    if mismatched:
        _say(f"Replayed results that are not the recorded answer: {', '.join(mismatched)}")
    if unexpected or mismatched:
        return 1
    return 0


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def replay_recordings(folder: Path, outputs: Path) -> list[str]:
    """OCR each recorded document in `folder` on an emulator replaying its answers.

    Each goes through both endpoints (async in one-page batches); the saved
    results land in `outputs`. Returns the names whose saved result is not
    the recorded answer (none, when all is well).
    """
    _say(
        f"Replaying the live service's recorded answers from {folder}: "
        f"aioupstage-ocr emulator --recordings {folder}"
    )
    return asyncio.run(_replay(folder, outputs))


async def _replay(folder: Path, outputs: Path) -> list[str]:
    config = EmulatorConfig(recordings=folder, batch_size=1, batch_latency=0.05)
    mismatched: list[str] = []
    async with (
        UpstageEmulator(config) as emulator,
        AsyncUpstageOCR("demo-key", base_url=emulator.base_url) as client,
    ):
        for recording in load_recordings(os.fspath(folder)).values():
            recorded = recording.json()
            name = recording.document.name
            differs = []
            for mode in ("sync", "async"):
                result = await client.ocr(recording.document, mode=mode)
                saved = result.save(outputs / mode / f"{recording.document.stem}.ocr.json")
                if orjson.loads(saved.read_bytes()) != recorded:
                    differs.append(mode)
            mismatched += [f"{name} ({mode})" for mode in differs]
            verdict = f"NOT the recording ({', '.join(differs)})" if differs else "the recording"
            words = sum(len(page.words) for page in result.pages)
            _say(
                f"  {name}: {result.num_pages} page(s), {words} words, model {result.model}; "
                f"the saved sync and async-merged results are {verdict}"
            )
    _say(f"  Saved under {outputs}")
    return mismatched
