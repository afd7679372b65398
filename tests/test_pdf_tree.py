"""The page count of a plain PDF, read from its page tree without pypdf (`page_tree_count`).

It must agree with pypdf wherever it answers, and leave to pypdf (None)
whatever it does not read: cross-reference streams, updates, encryption,
damage.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from aioupstage_ocr import Format
from aioupstage_ocr._formats import inspect_document, page_tree_count
from aioupstage_ocr.testing._documents import make_pdf

# A page tree: a leaf (a page) or a list of subtrees (a /Pages node).
Tree = list["Tree"] | None

_trees: st.SearchStrategy[Tree] = st.recursive(
    st.none(), lambda kids: st.lists(kids, min_size=1, max_size=4), max_leaves=24
)
_extras = st.sampled_from(
    [
        b"",
        b" /Resources << /Font << /F1 << /Type /Font /Subtype /Type1 >> >> >>",
        b" /Annots [ << /Type /Annot /Contents (a (nested) \\) string) >> ]",
        b" /Title <48656C6C6F> /Rotate 90 /UserUnit 1.5 /Flag true /None null",
        b" /MediaBox [0 0 612.0 792] /Dur -.5",
    ]
)


def _write(tree: Tree, extras: list[bytes], eol: bytes, count_lies: bool) -> tuple[bytes, int]:
    """A PDF whose page tree is `tree` (a root that is one page gets a /Pages node), and its
    page count."""
    root: list[Tree] = tree if isinstance(tree, list) else [tree]
    objects: dict[int, bytes] = {1: b"<< /Type /Catalog /Pages 2 0 R >>"}
    pages = 0

    def node(subtree: list[Tree], number: int, parent: int | None) -> int:
        nonlocal pages
        kids = []
        leaves = 0
        for kid in subtree:
            kid_number = max(objects) + 1
            objects[kid_number] = b""  # reserved
            kids.append(b"%d 0 R" % kid_number)
            if isinstance(kid, list):
                leaves += node(kid, kid_number, number)
            else:
                pages += 1
                leaves += 1
                extra = extras[pages % len(extras)]
                objects[kid_number] = b"<< /Type /Page /Parent %d 0 R%s >>" % (number, extra)
        shown = leaves + 7 if count_lies else leaves
        parent_entry = b" /Parent %d 0 R" % parent if parent else b""
        objects[number] = b"<< /Type /Pages%s /Kids [%s] /Count %d >>" % (
            parent_entry,
            b" ".join(kids),
            shown,
        )
        return leaves

    objects[2] = b""
    node(root, 2, None)
    out = bytearray(b"%PDF-1.4" + eol)
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj" % number + eol + objects[number] + eol + b"endobj" + eol
    xref = len(out)
    size = max(objects) + 1
    out += b"xref" + eol + b"0 %d" % size + eol + b"0000000000 65535 f\r\n"
    for number in range(1, size):
        out += b"%010d 00000 n\r\n" % offsets[number]
    out += b"trailer" + eol + b"<< /Size %d /Root 1 0 R >>" % size + eol
    out += b"startxref" + eol + b"%d" % xref + eol + b"%%EOF" + eol
    return bytes(out), pages


def _pypdf_pages(data: bytes) -> int:
    return len(PdfReader(io.BytesIO(data), strict=False).pages)


@settings(max_examples=150, deadline=None)
@given(
    tree=_trees,
    extras=st.lists(_extras, min_size=1, max_size=3),
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    count_lies=st.booleans(),
)
def test_plain_pdfs_are_counted_as_pypdf_counts_them(
    tree: Tree, extras: list[bytes], eol: bytes, count_lies: bool
) -> None:
    """Any page tree shape: the leaves are counted (not /Count, which may lie), as pypdf does."""
    data, pages = _write(tree, extras, eol, count_lies)
    assert page_tree_count(data) == pages
    assert _pypdf_pages(data) == pages


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_trees, data=st.data())
def test_damage_is_left_to_pypdf_or_read_alike(tree: Tree, data: st.DataObject) -> None:
    """Bytes cut, changed or added anywhere: an answer is pypdf's answer, or there is none."""
    pdf, _ = _write(tree, [b""], b"\n", False)
    at = data.draw(st.integers(0, len(pdf) - 1))
    how = data.draw(st.sampled_from(["cut", "change", "insert"]))
    byte = bytes([data.draw(st.integers(0, 255))])
    damaged = {
        "cut": pdf[:at] + pdf[at + 1 :],
        "change": pdf[:at] + byte + pdf[at + 1 :],
        "insert": pdf[:at] + byte + pdf[at:],
    }[how]
    count = page_tree_count(damaged)
    if count is not None:
        assert _pypdf_pages(damaged) == count


def test_what_it_does_not_read_goes_to_pypdf() -> None:
    """Encrypted, updated, a loop in the tree, not a PDF: None, and pypdf decides."""
    plain, _ = _write([None, None], [b""], b"\n", False)
    assert page_tree_count(plain) == 2
    assert page_tree_count(plain.replace(b"/Root 1 0 R", b"/Root 1 0 R /Encrypt 9 0 R")) is None
    assert page_tree_count(plain.replace(b"/Root 1 0 R", b"/Root 1 0 R /Prev 10")) is None
    assert page_tree_count(plain.replace(b"/Kids [3 0 R", b"/Kids [2 0 R")) is None  # a loop
    assert page_tree_count(b"GIF89a" + plain[8:]) is None
    assert page_tree_count(b"%PDF-1.4\ngarbage") is None


def test_inspection_counts_the_leaves_when_count_lies() -> None:
    """Through `inspect_document`: the tree's pages, whatever /Count says."""
    data, pages = _write([[None, None], None, [None]], [b""], b"\n", True)
    assert pages == 4
    assert inspect_document(io.BytesIO(data), Format.PDF, "x.pdf").pages == 4
    assert page_tree_count(make_pdf(12)) == 12


@pytest.mark.parametrize(
    "name", ["pdflatex-4-pages.pdf", "multicolumn.pdf", "libreoffice-writer-password.pdf"]
)
def test_real_pdfs_are_read_alike_or_left_to_pypdf(samples: Path, name: str) -> None:
    """The shared real PDFs (cross-reference streams, encryption): never a different count."""
    data = (samples / name).read_bytes()
    count = page_tree_count(data)
    if count is not None:
        assert count == _pypdf_pages(data)
