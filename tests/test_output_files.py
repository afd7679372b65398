"""Output files of one document: format choice, names beside each other, all or each written."""

from __future__ import annotations

from pathlib import Path

import pytest

from aioupstage_ocr import AsyncUpstageOCR, OCRResult, ResultMismatchError
from aioupstage_ocr._outputs._files import output_paths, parse_formats, write_outputs
from aioupstage_ocr.testing import make_pdf


def test_formats_parse_in_a_fixed_order_each_once() -> None:
    assert parse_formats("pdf,json, TXT,pdf") == ("json", "txt", "pdf")
    assert parse_formats(["alto", "hocr,json"]) == ("json", "hocr", "alto")
    with pytest.raises(ValueError, match=r"unknown output format docx, xml \(choose from json"):
        parse_formats("json,xml,docx")
    with pytest.raises(ValueError, match="no output format given"):
        parse_formats(" , ")


def test_outputs_are_named_beside_the_json(tmp_path: Path) -> None:
    paths = output_paths(
        tmp_path / "a" / "scan.v2.ocr.json", ("json", "txt", "hocr", "alto", "pdf")
    )
    assert {k: p.name for k, p in paths.items()} == {
        "json": "scan.v2.ocr.json",
        "txt": "scan.v2.txt",
        "hocr": "scan.v2.hocr",
        "alto": "scan.v2.alto.xml",
        "pdf": "scan.v2.ocr.pdf",
    }
    assert {p.parent for p in paths.values()} == {tmp_path / "a"}


async def test_every_format_is_written_and_a_failing_one_spares_the_others(
    client: AsyncUpstageOCR, tmp_path: Path
) -> None:
    document = make_pdf(2)
    check_writes(await client.ocr(document, filename="two.pdf"), document, tmp_path)


def check_writes(result: OCRResult, document: bytes, tmp_path: Path) -> None:
    written = write_outputs(
        result, parse_formats("json,txt,hocr,alto,pdf"), tmp_path / "two.ocr.json",
        document=document, name="two.pdf",
    )  # fmt: skip
    assert written.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "two.alto.xml", "two.hocr", "two.ocr.json", "two.ocr.pdf", "two.txt"
    ]  # fmt: skip
    assert OCRResult.load(written.paths["json"]).text == result.text
    assert written.paths["txt"].read_text() == result.to_text()
    assert "image &quot;two.pdf&quot;" in written.paths["hocr"].read_text()
    assert written.paths["pdf"].read_bytes().startswith(document)

    again = write_outputs(
        result, ("txt", "pdf", "alto"), tmp_path / "three.ocr.json",
        document=make_pdf(3), name="three.pdf",
    )  # fmt: skip
    assert not again.ok
    assert isinstance(again.errors["pdf"], ResultMismatchError)
    assert str(again.first_error()).startswith("three.pdf: the result has 2 pages")
    assert set(again.paths) == {"txt", "alto"}
    assert not (tmp_path / "three.ocr.pdf").exists()
    missing = write_outputs(result, ("pdf",), tmp_path / "four.ocr.json", name="four.pdf")
    assert "needs the original document" in str(missing.errors["pdf"])
