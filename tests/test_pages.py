"""Page ranges and parts: only the pages wanted are sent, and any document comes back whole."""

from __future__ import annotations

import hashlib
import io
import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioupstage_ocr import (
    AsyncUpstageOCR,
    DocumentLimits,
    DocumentTooLargeError,
    OCRResult,
    PageBudgetError,
    PageRangeError,
    PartialResultError,
    format_pages,
    parse_pages,
)
from aioupstage_ocr._pages import select_pages
from aioupstage_ocr._preflight import prepare
from aioupstage_ocr.testing import EmulatorThread, make_pdf, make_tiff, page_text


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- parsing

_item = st.tuples(st.integers(1, 60), st.one_of(st.none(), st.integers(0, 30)), st.booleans())


def _spec(items: list[tuple[int, int | None, bool]]) -> str:
    """Items as text: `N`, `A-B` (B = A + extra) or `A-` (open)."""
    out = []
    for start, extra, open_end in items:
        if open_end:
            out.append(f"{start}-")
        elif extra is None:
            out.append(str(start))
        else:
            out.append(f" {start} - {start + extra} ")
    return ",".join(out)


def _naive(items: list[tuple[int, int | None, bool]], total: int) -> set[int]:
    pages: set[int] = set()
    for start, extra, open_end in items:
        end = total if open_end else start + (extra or 0)
        pages.update(range(start, end + 1))
    return pages


@given(st.lists(_item, min_size=1, max_size=8), st.integers(1, 120))
def test_ranges_normalise_and_select_like_sets(
    items: list[tuple[int, int | None, bool]], total: int
) -> None:
    """Any spelling of ranges: normalised, printed and read back the same, picks the set's pages."""
    ranges = parse_pages(_spec(items))
    assert parse_pages(format_pages(ranges)) == ranges
    starts = [start for start, _end in ranges]
    assert starts == sorted(starts)
    for (_s1, e1), (s2, _e2) in itertools.pairwise(ranges):
        assert e1 is not None  # an open range is only ever last
        assert s2 > e1 + 1  # disjoint, not adjacent
    wanted = sorted(p for p in _naive(items, total) if p <= total)
    outside = any(
        start > total or (not open_end and start + (extra or 0) > total)
        for start, extra, open_end in items
    )
    if not outside:
        assert list(select_pages(ranges, total, "doc.pdf")) == wanted
        return
    message = ""
    try:
        chosen = select_pages(ranges, total, "doc.pdf")
    except PageRangeError as exc:  # only ever for a page past the end
        message = str(exc)
    if message:
        assert re.match(r"doc\.pdf: pages [\d,-]+ are outside the document", message)
    else:  # the page past the end was inside an open range, which already takes it all
        assert list(chosen) == wanted


@pytest.mark.parametrize("spec", ["", " ", "0", "3-1", "a", "1-2-3", "1,,2", "-4", "1.5"])
def test_malformed_ranges(spec: str) -> None:
    """What is not `N`, `A-B` or `A-` is a ValueError that quotes it."""
    with pytest.raises(ValueError, match="page"):
        parse_pages(spec)


def test_ranges_from_numbers() -> None:
    assert parse_pages([5, 3, 4, 9]) == ((3, 5), (9, 9))
    assert format_pages([3, 4, 5, 9]) == "3-5,9"
    assert parse_pages("1-10,20,30-") == ((1, 10), (20, 20), (30, None))
    assert parse_pages("30-,1-10,5-12,13") == ((1, 13), (30, None))


# --------------------------------------------------------------------------- preflight


def test_range_outside_the_document_names_file_and_range(tmp_path: Path) -> None:
    path = tmp_path / "short.pdf"
    path.write_bytes(make_pdf(4))
    with pytest.raises(PageRangeError, match=r"short.pdf: pages 3-7 are outside .* 4 pages"):
        prepare(path, pages=parse_pages("1,3-7"))
    with pytest.raises(PageRangeError, match=r"short.pdf: pages 9- are outside"):
        prepare(path, pages=parse_pages("9-"))


def test_pages_of_a_tiff_are_its_frames() -> None:
    tiff = make_tiff(5, seed=2)
    doc = prepare(tiff, filename="scan.tiff", pages=parse_pages("2,4"))
    (part,) = doc.parts
    assert part.source_pages == (2, 4)
    from PIL import Image

    assert isinstance(part.source, bytes)
    with Image.open(io.BytesIO(part.source)) as cut, Image.open(io.BytesIO(tiff)) as whole:
        assert cut.n_frames == 2
        for k, frame in enumerate((1, 3)):
            cut.seek(k)
            whole.seek(frame)
            assert cut.convert("RGB").tobytes() == whole.convert("RGB").tobytes()


def test_all_pages_asked_for_go_as_they_are() -> None:
    data = make_pdf(3)
    doc = prepare(data, filename="a.pdf", pages=parse_pages("1-"))
    (part,) = doc.parts
    assert part.source is data
    assert part.source_pages == (1, 2, 3)


def test_an_image_cannot_be_cut_and_has_one_page() -> None:
    from aioupstage_ocr.testing import make_image

    png = make_image("png")
    assert prepare(png, filename="a.png", pages=parse_pages("1")).parts[0].source_pages == (1,)
    with pytest.raises(PageRangeError, match=r"a\.png: pages 2 are outside"):
        prepare(png, filename="a.png", pages=parse_pages("2"))


def test_split_by_size_and_a_page_too_big_alone() -> None:
    """Over max_bytes: halved until each part fits; one page over the limit names the page."""
    data = make_pdf(8, image_bytes=20_000)
    limits = DocumentLimits(max_bytes=60_000)
    doc = prepare(data, filename="scan.pdf", limits=limits)
    assert len(doc.parts) > 1
    assert all(part.size <= 60_000 for part in doc.parts)
    assert [p for part in doc.parts for p in part.source_pages or ()] == list(range(1, 9))
    with pytest.raises(DocumentTooLargeError, match=r"scan.pdf: page 1 alone is"):
        prepare(data, filename="scan.pdf", limits=DocumentLimits(max_bytes=15_000))


# --------------------------------------------------------------------------- end to end


@pytest.mark.upstage_emulator(batch_latency=0.0)
async def test_pages_3_to_5_of_40(
    upstage_emulator: EmulatorThread, client: AsyncUpstageOCR
) -> None:
    """Only pages 3-5 are uploaded and billed; the result says which pages they are."""
    result = await client.ocr(make_pdf(40), filename="forty.pdf", pages="3-5")
    assert result.source_pages == (3, 4, 5)
    assert [page.text.split(" \n")[0] for page in result.pages] == [page_text(n) for n in (3, 4, 5)]
    assert result.billed_pages == 3
    stats = upstage_emulator.stats
    assert stats.pages_billed == 3
    assert stats.uploads == 1
    again = OCRResult.from_json(result.to_json())
    assert again.source_pages == (3, 4, 5)


def _check_whole(result: OCRResult, pages: int) -> None:
    assert result.num_pages == pages
    assert [page.index for page in result.pages] == list(range(pages))
    for n in (1, 2, pages // 2, pages - 1, pages):
        assert result.pages[n - 1].text.split(" \n")[0] == page_text(n)
    assert all(page.text.startswith(f"page {k + 1} ") for k, page in enumerate(result.pages))
    word_ids = [word.id for page in result.pages for word in page.words]
    assert word_ids == list(range(len(word_ids)))
    assert [entry["page"] for entry in result.raw["metadata"]["pages"]] == list(range(1, pages + 1))
    assert result.billed_pages == pages
    assert result.source_pages == tuple(range(1, pages + 1))


@pytest.mark.parametrize(
    ("pages", "parts"), [(1050, 2), pytest.param(2500, 3, marks=pytest.mark.slow)]
)
@pytest.mark.upstage_emulator(batch_latency=0.0, workers=8)
async def test_long_documents_come_back_whole(
    upstage_emulator: EmulatorThread, client: AsyncUpstageOCR, pages: int, parts: int
) -> None:
    """Over async_max_pages: even parts, each its own request, merged in order, billed once."""
    data = make_pdf(pages)
    result = await client.ocr(data, filename="long.pdf")
    _check_whole(result, pages)
    stats = upstage_emulator.stats
    assert stats.pages_billed == pages
    assert sum(stats.async_submissions.values()) == parts
    assert stats.submissions(sha(data)) == 0  # the whole was never uploaded


async def test_a_scan_over_the_size_limit(
    upstage_emulator: EmulatorThread, api_key: str, tmp_path: Path
) -> None:
    """A PDF over max_bytes (a small limit, to keep it quick) is cut by size and merged."""
    limits = DocumentLimits(max_bytes=300_000)
    upstage_emulator.configure(max_bytes=300_000, batch_latency=0.0)
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf(30, image_bytes=40_000))  # about 1.2 MB
    async with AsyncUpstageOCR(
        api_key, base_url=upstage_emulator.base_url, document_limits=limits
    ) as client:
        result = await client.ocr(path)
    _check_whole(result, 30)
    assert upstage_emulator.stats.pages_billed == 30
    assert upstage_emulator.stats.uploads >= 4


@pytest.mark.upstage_emulator(batch_latency=0.0)
async def test_ocr_many_with_pages_and_parts(
    upstage_emulator: EmulatorThread, api_key: str
) -> None:
    limits = DocumentLimits(sync_max_pages=5, async_max_pages=20)
    docs = [make_pdf(50), make_pdf(8), make_pdf(3)]
    async with AsyncUpstageOCR(
        api_key, base_url=upstage_emulator.base_url, document_limits=limits
    ) as client:
        items = [
            item
            async for item in client.ocr_many(
                [io.BytesIO(doc) for doc in docs], pages="2-", ordered=True
            )
        ]
    assert [item.error for item in items] == [None, None, None]
    results = [item.result for item in items]
    assert [r.source_pages for r in results if r] == [
        tuple(range(2, 51)),
        tuple(range(2, 9)),
        (2, 3),
    ]
    assert upstage_emulator.stats.pages_billed == 49 + 7 + 2


# --------------------------------------------------------------------------- failed batches


@pytest.mark.parametrize("partial_status", ["failed", "completed"])
async def test_a_failed_batch_costs_only_its_pages(
    upstage_emulator: EmulatorThread, client: AsyncUpstageOCR, partial_status: str
) -> None:
    """Batch 21-30 fails once: only those ten pages go again; the result is whole."""
    upstage_emulator.configure(
        batch_latency=0.0, fail_pages=(25,), fail_times=1, partial_status=partial_status
    )
    data = make_pdf(45)
    result = await client.ocr(data, filename="book.pdf", mode="async")
    assert result.num_pages == 45
    assert [page.text.split(" \n")[0] for page in result.pages] == [
        page_text(n) for n in range(1, 46)
    ]
    assert result.source_pages is None  # sent whole: its pages are the document's
    stats = upstage_emulator.stats
    assert stats.batches_failed == 1
    assert stats.pages_billed == 45  # the failed batch was not billed; its repair was
    repair = prepare(data, filename="book.pdf", pages=parse_pages("21-30")).parts[0]
    assert dict(stats.async_submissions) == {sha(data): 1, repair.sha256: 1}


async def test_a_batch_that_always_fails_names_its_pages(
    upstage_emulator: EmulatorThread, client: AsyncUpstageOCR
) -> None:
    """Every try fails: PartialResultError names pages 11-20; `partial` holds the rest."""
    upstage_emulator.configure(batch_latency=0.0, fail_pages=(15,))
    with pytest.raises(
        PartialResultError, match=r"book.pdf: pages 11-20 did not come back"
    ) as info:
        await client.ocr(make_pdf(25), filename="book.pdf", mode="async")
    error = info.value
    assert error.missing_pages == tuple(range(11, 21))
    partial = error.partial
    assert isinstance(partial, OCRResult)
    assert partial.source_pages == (*range(1, 11), *range(21, 26))
    assert partial.raw["missingPages"] == list(range(11, 21))
    assert [page.text.split(" \n")[0] for page in partial.pages] == [
        page_text(n) for n in partial.source_pages
    ]
    stats = upstage_emulator.stats
    assert stats.batches_failed == 1 + 3  # the first, then each of the three tries
    assert sum(stats.async_submissions.values()) == 1 + 3


async def test_a_part_with_a_failed_batch_is_repaired_in_original_pages(
    upstage_emulator: EmulatorThread, api_key: str
) -> None:
    """A document in parts: a failed batch of the second part names the original's pages."""
    upstage_emulator.configure(batch_latency=0.0, fail_pages=(3,))
    limits = DocumentLimits(sync_max_pages=2, async_max_pages=12)
    async with AsyncUpstageOCR(
        api_key, base_url=upstage_emulator.base_url, document_limits=limits
    ) as client:
        with pytest.raises(PartialResultError) as info:
            await client.ocr(make_pdf(24), filename="two.pdf")
    # Page 3 of each part (pages 3 and 15 of the original) is in a failing batch.
    assert info.value.missing_pages == (*range(1, 11), *range(13, 23))
    assert info.value.partial.source_pages == (11, 12, 23, 24)


async def test_plan_uploads_nothing(
    upstage_emulator: EmulatorThread, client: AsyncUpstageOCR
) -> None:
    """`plan` tells pages, route and parts as `ocr` would send them; errors are returned."""
    long = await client.plan(make_pdf(1050), filename="long.pdf")
    assert (long.pages, long.route, long.requests) == (1050, "parts", 2)
    assert [pages[0] for pages, _route in long.parts] == [1, 526]
    some = await client.plan(make_pdf(40), filename="forty.pdf", pages="3-5")
    assert (some.pages, some.document_pages, some.route) == (3, 40, "sync")
    assert some.describe == "3 pages of 40, sync"
    bad = await client.plan(make_pdf(4), filename="four.pdf", pages="9")
    assert isinstance(bad.error, PageRangeError)
    assert bad.requests == 0
    assert sum(upstage_emulator.stats.requests.values()) == 0


# --------------------------------------------------------------------------- budget


@pytest.mark.upstage_emulator(batch_latency=0.0)
async def test_max_pages_never_passed(
    upstage_emulator: EmulatorThread, client: AsyncUpstageOCR
) -> None:
    """max_pages=70 over five 30-page documents: two sent, the rest never uploaded."""
    docs = [make_pdf([f"doc {k} page {n}" for n in range(30)]) for k in range(5)]
    items = [item async for item in client.ocr_many(docs, max_pages=70)]
    sent = [item for item in items if item.ok]
    skipped = [item for item in items if isinstance(item.error, PageBudgetError)]
    assert (len(sent), len(skipped)) == (2, 3)
    assert all("max_pages" in str(item.error) for item in skipped)
    assert upstage_emulator.stats.pages_billed == 60
    assert upstage_emulator.stats.uploads == 2
    with pytest.raises(ValueError, match="max_pages"):
        client.ocr_many(docs, max_pages=-1)
