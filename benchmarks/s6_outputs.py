"""Scenario 6: the outputs: pages per second written for each format.

Documents are OCRed once against the emulator (in the child, through the
client); then each output is made from every result, timed alone, in one
process on one core: JSON (`to_json`, the baseline every run already pays),
plain text, hOCR, ALTO, and the searchable PDF of PDF inputs (text pages,
incremental update) and of PNG inputs (A4 scans at 150 dpi, whose pixels are
Flate compressed: the heavy case). Where `../shared/real-ocr` is present, its
recorded answers are timed too (the live service's word density). The bar: each
output keeps ahead of the pace a bulk run reaches against the service (tens of
pages per second), so writing outputs never becomes the slow stage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._common import Context, Target, fmt, md_table, new_record, run_variant, say, target_row
from ._harness import API_KEY, EmulatorProcess

NUMBER = 6
NAME = "s6_outputs"
TITLE = "Outputs: pages per second per format"

FULL: dict[str, Any] = {"pdfs": 10, "pdf_pages": 10, "pngs": 10, "repeats": 3}
QUICK: dict[str, Any] = {"pdfs": 2, "pdf_pages": 2, "pngs": 1, "repeats": 1}

LABEL = "outputs made from emulated results"
FORMATS = ("json", "txt", "hocr", "alto", "pdf")
#: The pace a bulk run reaches against the service, the bar each output must keep ahead of.
BAR_PAGES_PER_S = 20.0
_REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "real-ocr"


def run(ctx: Context) -> dict[str, Any]:
    """One child run against one emulator: OCR the documents, then time each output."""
    p = dict(QUICK if ctx.quick else FULL)
    record = new_record(NUMBER, NAME, TITLE, ctx.quick, {**p, "emulator": {}})
    with EmulatorProcess(sync_latency=0.0) as emulator:
        variant = run_variant(
            LABEL, "s6_outputs:measure", p, emulator=emulator, timeout=900.0, extra={}
        )
    record["variants"].append(variant)
    record["notes"].append(
        "Each figure is pages / the best of the repeats' wall time to make that output for "
        "every result (bytes in memory; writing the files is the same atomic write for all)."
    )
    return record


# --------------------------------------------------------------------------- the child


def _documents(p: dict[str, Any]) -> dict[str, list[tuple[str, bytes]]]:
    from aioupstage_ocr.testing import make_image, make_pdf

    pdfs = [
        (f"doc-{n}.pdf", make_pdf([f"document {n} page {k} " * 8 for k in range(p["pdf_pages"])]))
        for n in range(p["pdfs"])
    ]
    pngs = [
        (f"scan-{n}.png", make_image("png", seed=n, width=1240, height=1754))
        for n in range(p["pngs"])
    ]
    return {"pdf": pdfs, "png": pngs}


def _time(make: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        make()
        best = min(best, time.perf_counter() - started)
    return best


def _rates(pairs: list[tuple[bytes, Any]], repeats: int) -> dict[str, float]:
    """Pages per second of each format over `pairs` of (document, result)."""
    from aioupstage_ocr import searchable_pdf

    pages = sum(result.num_pages for _, result in pairs)
    makers: dict[str, Callable[[], object]] = {
        "json": lambda: [r.to_json() for _, r in pairs],
        "txt": lambda: [r.to_text() for _, r in pairs],
        "hocr": lambda: [r.to_hocr() for _, r in pairs],
        "alto": lambda: [r.to_alto() for _, r in pairs],
        "pdf": lambda: [searchable_pdf(d, r) for d, r in pairs],
    }
    return {name: pages / _time(make, repeats) for name, make in makers.items()}


def _recorded() -> list[tuple[Path, Path]]:
    """Each recorded answer in `../shared/real-ocr` beside its document (none if absent)."""
    pairs = []
    for answer in sorted(_REAL.glob("*.response.json")):
        stem = answer.name.removesuffix(".response.json")
        documents = [p for p in _REAL.glob(f"{stem}.*") if not p.name.endswith(".json")]
        if documents:
            pairs.append((documents[0], answer))
    return pairs


def measure(params: dict[str, Any]) -> dict[str, Any]:
    """OCR the documents through the client, then time every output (child target)."""
    from aioupstage_ocr import AsyncUpstageOCR, OCRResult

    docs = _documents(params)

    async def ocr_all() -> dict[str, list[tuple[bytes, Any]]]:
        async with AsyncUpstageOCR(API_KEY, base_url=params["base_url"]) as client:
            out: dict[str, list[tuple[bytes, Any]]] = {}
            for kind, items in docs.items():
                results = await asyncio.gather(
                    *(client.ocr(data, filename=name) for name, data in items)
                )
                out[kind] = [(data, r) for (_, data), r in zip(items, results, strict=True)]
            return out

    ocred = asyncio.run(ocr_all())
    repeats = int(params["repeats"])
    figures: dict[str, Any] = {"ok": sum(len(v) for v in ocred.values()), "failed": 0}
    for kind, pairs in ocred.items():
        figures[kind] = {
            "documents": len(pairs),
            "pages": sum(r.num_pages for _, r in pairs),
            "words": sum(len(page.words) for _, r in pairs for page in r.pages),
            "pages_per_s": _rates(pairs, repeats),
        }
    recorded = [(document.read_bytes(), OCRResult.load(answer)) for document, answer in _recorded()]
    if recorded:
        figures["recorded"] = {
            "documents": len(recorded),
            "pages": sum(r.num_pages for _, r in recorded),
            "words": sum(len(page.words) for _, r in recorded for page in r.pages),
            "pages_per_s": _rates(recorded, repeats),
        }
    say(f"scenario 6: {figures['ok']} documents OCRed and written in every format")
    return figures


# --------------------------------------------------------------------------- report

_KINDS = {
    "pdf": "text PDFs (emulated answers)",
    "png": "A4 PNG scans, 150 dpi (emulated answers)",
    "recorded": "the four real documents (recorded answers)",
}


def _kinds(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    figures = next((v["figures"] for v in data["variants"] if "figures" in v), {})
    return [(kind, figures[kind]) for kind in _KINDS if kind in figures]


def targets(data: dict[str, Any]) -> list[Target]:
    """Each format's slowest input kind against the bar."""
    rows = []
    for name in FORMATS:
        rates = [f["pages_per_s"][name] for _, f in _kinds(data)]
        slowest = min(rates) if rates else None
        rows.append(
            target_row(
                f"{name} pages/s (slowest input kind)",
                f">= {BAR_PAGES_PER_S:g}",
                slowest,
                lambda v: v >= BAR_PAGES_PER_S,
                lambda v: f"{v:,.0f}",
            )
        )
    return rows


def details(data: dict[str, Any]) -> str:
    """Pages per second, one row per input kind, one column per format."""
    rows = [
        [
            f"{_KINDS[kind]}: {f['documents']} docs, {f['pages']} pages, {f['words']:,} words",
            *(fmt(f["pages_per_s"][name], 0) for name in FORMATS),
        ]
        for kind, f in _kinds(data)
    ]
    repeats = data["params"]["repeats"]
    intro = (
        f"Pages per second, one process, one core (best of {repeats}); "
        "`pdf` is `searchable_pdf(document, result)`."
    )
    return "\n".join([intro, "", md_table(["input", *FORMATS], rows)])


def plot(data: dict[str, Any], path: Path) -> None:
    """Bars: pages per second for each format and input kind (log scale)."""
    import matplotlib.pyplot as plt

    kinds = _kinds(data)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(1, len(kinds))
    for i, (kind, f) in enumerate(kinds):
        xs = [k + i * width for k in range(len(FORMATS))]
        ax.bar(xs, [f["pages_per_s"][name] for name in FORMATS], width, label=_KINDS[kind])
    ax.axhline(BAR_PAGES_PER_S, linestyle="--", color="#c53030", label="bar")
    ax.set_xticks([k + width * (len(kinds) - 1) / 2 for k in range(len(FORMATS))], FORMATS)
    ax.set_yscale("log")
    ax.set_ylabel("pages per second")
    ax.set_title("Scenario 6: outputs written per second")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
