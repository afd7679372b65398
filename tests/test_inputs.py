"""Discovery of a bulk run's inputs, and the mapping of each to its output path."""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioupstage_ocr._exceptions import ConfigurationError, DocumentNotFoundError
from aioupstage_ocr._inputs import (
    OUTSIDE_FOLDER,
    InputItem,
    OutputMapper,
    common_folder,
    is_supported_name,
    iter_inputs,
)


def touch(path: Path, data: bytes = b"%PDF-1.4\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def paths(items: Iterator[InputItem] | list[InputItem]) -> list[Path]:
    return [item.path for item in items]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working folder is tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# Discovery.


def test_explicit_files_are_absolute(in_tmp: Path) -> None:
    """Relative arguments come back absolute, in argument order."""
    touch(in_tmp / "b.pdf")
    touch(in_tmp / "a.png")
    items = list(iter_inputs(["b.pdf", "./a.png"]))
    assert paths(items) == [in_tmp / "b.pdf", in_tmp / "a.png"]
    assert all(item.explicit and item.error is None for item in items)


def test_folder_walk_is_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    """A folder yields supported files only (any case), depth first, sorted by name."""
    docs = tmp_path / "docs"
    for name in ["b.pdf", "a.JPG", "notes.txt", "sub/z.tiff", "sub/deeper/y.PDF", "c.docx"]:
        touch(docs / name)
    touch(docs / "sub" / "readme.md")
    items = list(iter_inputs([str(docs)]))
    assert paths(items) == [
        docs / "a.JPG",
        docs / "b.pdf",
        docs / "c.docx",
        docs / "sub" / "deeper" / "y.PDF",
        docs / "sub" / "z.tiff",
    ]
    assert not any(item.explicit for item in items)


def test_explicit_unsupported_file_is_kept(tmp_path: Path) -> None:
    """A file named directly is yielded whatever its extension; preflight judges it."""
    notes = touch(tmp_path / "notes.txt", b"hello")
    [item] = iter_inputs([str(notes)])
    assert item.path == notes
    assert item.error is None


def test_missing_paths_are_yielded_with_an_error(tmp_path: Path) -> None:
    """A missing argument or stdin line is not dropped: it carries a clear error."""
    missing = tmp_path / "gone.pdf"
    items = list(iter_inputs([str(missing), "-"], io.StringIO(f"{tmp_path / 'nope.png'}\n")))
    assert paths(items) == [missing, tmp_path / "nope.png"]
    for item in items:
        assert isinstance(item.error, DocumentNotFoundError)
        assert str(item.path) in str(item.error)
        assert "no such file" in str(item.error)


def test_not_a_file_nor_folder_is_yielded_with_an_error(tmp_path: Path) -> None:
    """A FIFO is refused up front (opening it would block)."""
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)
    [item] = iter_inputs([str(fifo)])
    assert isinstance(item.error, DocumentNotFoundError)
    assert "regular file" in str(item.error)


def test_broken_link_in_folder_is_reported(tmp_path: Path) -> None:
    """A dangling link with a supported name inside a folder is not dropped silently."""
    (tmp_path / "x.pdf").symlink_to(tmp_path / "missing.pdf")
    [item] = iter_inputs([str(tmp_path)])
    assert item.path == tmp_path / "x.pdf"
    assert isinstance(item.error, DocumentNotFoundError)
    assert "broken link" in str(item.error)


def test_links_to_folders_are_not_followed_inside_a_walk(tmp_path: Path) -> None:
    """A walk does not enter a linked folder (no loops); a linked folder argument is walked."""
    real = tmp_path / "real"
    touch(real / "a.pdf")
    top = tmp_path / "top"
    top.mkdir()
    (top / "loop").symlink_to(top)
    (top / "link").symlink_to(real)
    touch(top / "b.pdf")
    assert paths(iter_inputs([str(top)])) == [top / "b.pdf"]
    assert paths(iter_inputs([str(top / "link")])) == [top / "link" / "a.pdf"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_unreadable_folder_is_reported(tmp_path: Path) -> None:
    """A folder that cannot be listed yields an error row, and the walk goes on."""
    touch(tmp_path / "a" / "x.pdf")
    locked = tmp_path / "b"
    touch(locked / "y.pdf")
    touch(tmp_path / "c.pdf")
    locked.chmod(0)
    try:
        items = list(iter_inputs([str(tmp_path)]))
    finally:
        locked.chmod(0o755)
    assert paths(items) == [tmp_path / "a" / "x.pdf", locked, tmp_path / "c.pdf"]
    assert "permission denied" in str(items[1].error)


def test_overlapping_arguments_yield_each_file_once(tmp_path: Path) -> None:
    """A file or folder inside a folder argument, or named twice, comes once."""
    docs = tmp_path / "docs"
    for name in ["a.pdf", "b.pdf", "sub/c.pdf"]:
        touch(docs / name)
    args = [str(docs), str(docs / "a.pdf"), str(docs / "sub"), str(docs / "sub" / ".." / "b.pdf")]
    found = paths(iter_inputs(args))
    assert sorted(found) == [docs / "a.pdf", docs / "b.pdf", docs / "sub" / "c.pdf"]
    assert len(found) == 3


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`~` in arguments and stdin lines means the home folder."""
    monkeypatch.setenv("HOME", str(tmp_path))
    touch(tmp_path / "scan.pdf")
    items = list(iter_inputs(["~/scan.pdf", "-"], io.StringIO("~/scan.pdf\n")))
    assert paths(items) == [tmp_path / "scan.pdf"] * 2


def test_stdin_lines(in_tmp: Path) -> None:
    """Blank lines are ignored; only the line ending is removed; folders are walked."""
    touch(in_tmp / " spaced .pdf")
    touch(in_tmp / "#hash.pdf")
    touch(in_tmp / "folder" / "in.png")
    text = "\n \n./ spaced .pdf\r\n#hash.pdf\n\nfolder\n"
    found = paths(iter_inputs(["-"], io.StringIO(text)))
    assert found == [in_tmp / " spaced .pdf", in_tmp / "#hash.pdf", in_tmp / "folder" / "in.png"]


def test_stdin_bytes_keep_undecodable_names(tmp_path: Path) -> None:
    """Lines given as bytes are decoded like file names, so any name round-trips."""
    name = os.fsencode(tmp_path) + b"/caf\xe9.pdf"
    touch(Path(os.fsdecode(name)))
    [item] = iter_inputs(["-"], [name + b"\n"])
    assert os.fsencode(item.path) == name
    assert item.error is None


def test_stdin_is_read_only_where_named(tmp_path: Path) -> None:
    """Without `-`, stdin is never touched; with `-` twice it is read once."""

    class Untouchable:
        def __iter__(self) -> Iterator[str]:
            raise AssertionError("stdin read")

    touch(tmp_path / "a.pdf")
    assert paths(iter_inputs([str(tmp_path / "a.pdf")], Untouchable())) == [tmp_path / "a.pdf"]
    lines = io.StringIO(f"{tmp_path / 'a.pdf'}\n")
    assert len(list(iter_inputs(["-", "-"], lines))) == 1


def test_stdin_streams_lazily(tmp_path: Path) -> None:
    """10^5 stdin lines are pulled one at a time, as the consumer asks."""
    total = 100_000
    pulled = 0

    def lines() -> Iterator[str]:
        nonlocal pulled
        for number in range(total):
            pulled += 1
            yield f"{tmp_path}/doc{number}.pdf\n"

    items = iter_inputs(["-"], lines())
    for expected, _item in enumerate(items, start=1):
        # Never more than one line ahead of what was handed out.
        assert pulled == expected
        if expected == 10:
            break
    assert pulled == 10
    rest = sum(1 for _ in items)
    assert rest == total - 10
    assert pulled == total


def test_stdin_laziness_survives_a_source_that_refuses_to_go_far(tmp_path: Path) -> None:
    """A source that raises past line 3 is never pulled that far by taking 3 items."""

    def guarded() -> Iterator[str]:
        for number in range(3):
            yield f"{tmp_path}/{number}.pdf\n"
        raise AssertionError("pulled too far")

    items = iter_inputs(["-"], guarded())
    assert [next(items).path.name for _ in range(3)] == ["0.pdf", "1.pdf", "2.pdf"]


def test_supported_names() -> None:
    """Extensions are compared in any case; no suffix, or a bare suffix, is not supported."""
    assert is_supported_name("a.PDF")
    assert is_supported_name("b.Tif")
    assert not is_supported_name("c.txt")
    assert not is_supported_name("pdf")
    assert not is_supported_name(".pdf")


# Output paths.


def test_single_file_lands_in_temp(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One `scan.pdf`, no -o: `<temp>/scan.ocr.json`, absolute."""
    temp = in_tmp / "systemp"
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    touch(in_tmp / "scan.pdf")
    mapper = OutputMapper.from_args(["scan.pdf"])
    assert mapper.output_for("scan.pdf") == temp / "scan.ocr.json"
    assert mapper.output_for("scan.pdf").is_absolute()


def test_default_folder_is_the_system_temp_folder() -> None:
    """Without -o the outputs go to `tempfile.gettempdir()`."""
    assert OutputMapper().out_dir == Path(tempfile.gettempdir()).absolute()


def test_same_name_in_two_folders(tmp_path: Path) -> None:
    """`x/a.pdf` and `y/a.pdf` get two outputs, mirrored from their common folder."""
    x, y = touch(tmp_path / "x" / "a.pdf"), touch(tmp_path / "y" / "a.pdf")
    out = tmp_path / "out"
    mapper = OutputMapper.from_args([str(x), str(y)], out)
    assert mapper.base == tmp_path
    assert mapper.output_for(x) == out / "x" / "a.ocr.json"
    assert mapper.output_for(y) == out / "y" / "a.ocr.json"


def test_folder_argument_mirrors_from_itself(tmp_path: Path) -> None:
    """A folder argument's own path is the common folder; nesting is kept below it."""
    docs = tmp_path / "docs"
    deep = touch(docs / "2024" / "q1" / "scan.pdf")
    mapper = OutputMapper.from_args([str(docs)], tmp_path / "out")
    assert mapper.output_for(deep) == tmp_path / "out" / "2024" / "q1" / "scan.ocr.json"


def test_same_stem_keeps_the_suffix(tmp_path: Path) -> None:
    """`a.pdf` beside `a.png`: both keep their suffix; a lone `b.pdf` does not."""
    for name in ["a.pdf", "a.png", "b.pdf"]:
        touch(tmp_path / name)
    mapper = OutputMapper(tmp_path / "out", tmp_path)
    assert mapper.output_for(tmp_path / "a.pdf").name == "a.pdf.ocr.json"
    assert mapper.output_for(tmp_path / "a.png").name == "a.png.ocr.json"
    assert mapper.output_for(tmp_path / "b.pdf").name == "b.ocr.json"


def test_same_stem_rule_ignores_case_and_input_order(tmp_path: Path) -> None:
    """Stems match in any case, and naming one file alone maps it the same way."""
    touch(tmp_path / "Scan.PDF")
    touch(tmp_path / "scan.jpg")
    alone = OutputMapper(tmp_path, tmp_path).output_for(tmp_path / "Scan.PDF")
    assert alone.name == "Scan.PDF.ocr.json"
    second = OutputMapper(tmp_path, tmp_path)
    second.output_for(tmp_path / "scan.jpg")
    assert second.output_for(tmp_path / "Scan.PDF") == alone


def test_name_equal_to_a_stem_keeps_the_suffix(tmp_path: Path) -> None:
    """`scan` beside `scan.pdf`, and `a.pdf` beside `a.pdf.png`, never share an output."""
    for name in ["scan", "scan.pdf", "a.pdf", "a.pdf.png"]:
        touch(tmp_path / name)
    mapper = OutputMapper(tmp_path / "out", tmp_path)
    names = [mapper.output_for(tmp_path / name).name for name in ["scan", "scan.pdf"]]
    assert names == ["scan.ocr.json", "scan.pdf.ocr.json"]
    names = [mapper.output_for(tmp_path / name).name for name in ["a.pdf", "a.pdf.png"]]
    assert names == ["a.ocr.json", "a.pdf.png.ocr.json"]


def test_unsupported_name_keeps_its_suffix(tmp_path: Path) -> None:
    """An explicitly named `a.txt` maps to `a.txt.ocr.json`, clear of `a.pdf`'s output."""
    touch(tmp_path / "a.txt")
    touch(tmp_path / "a.pdf")
    mapper = OutputMapper(tmp_path, tmp_path)
    assert mapper.output_for(tmp_path / "a.txt").name == "a.txt.ocr.json"
    assert mapper.output_for(tmp_path / "a.pdf").name == "a.ocr.json"


_NAME = st.builds(
    lambda stem, ext: stem + ext,
    st.sampled_from(["a", "A", "b", "a.pdf", "A.PDF", "b.png", "x y", "a.pdf.png"]),
    st.sampled_from(["", ".pdf", ".PDF", ".png", ".txt", ".pdf.png", ".tif"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(names=st.sets(_NAME, min_size=1, max_size=12))
def test_no_two_files_of_a_folder_share_an_output(tmp_path: Path, names: set[str]) -> None:
    """Whatever the names in a folder, their outputs differ, even ignoring case."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    made = set()
    for name in names:
        if name.casefold() in made:
            continue  # keep the property meaningful on case-insensitive file systems too
        made.add(name.casefold())
        touch(folder / name)
    files = [folder / name for name in os.listdir(folder)]
    mapper = OutputMapper(tmp_path / "out", folder)
    outputs = {os.fspath(mapper.output_for(path)).casefold() for path in files}
    assert len(outputs) == len(files)


def test_stdin_paths_under_the_working_folder(in_tmp: Path) -> None:
    """With `-`, paths are mirrored from the working folder."""
    inner = touch(in_tmp / "batch" / "a.pdf")
    mapper = OutputMapper.from_args(["-"], in_tmp / "out")
    assert mapper.base == in_tmp
    assert mapper.output_for(inner) == in_tmp / "out" / "batch" / "a.ocr.json"


def test_stdin_paths_outside_mirror_their_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stdin path outside the common folder lands under `DIR/_root/<absolute path>`."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    outside = touch(tmp_path / "data" / "a.pdf")
    inside = touch(work / "data" / "a.pdf")
    out = tmp_path / "out"
    mapper = OutputMapper.from_args(["-"], out)
    expected = out.joinpath(OUTSIDE_FOLDER, *outside.parent.parts[1:], "a.ocr.json")
    assert mapper.output_for(outside) == expected
    assert mapper.output_for(inside) == out / "data" / "a.ocr.json"
    assert mapper.output_for(outside) != mapper.output_for(inside)


def test_outside_mirror_refuses_a_clash(in_tmp: Path) -> None:
    """If the common folder holds `_root`, an outside path is refused, naming it."""
    touch(in_tmp / OUTSIDE_FOLDER / "x.pdf")
    mapper = OutputMapper.from_args(["-"], in_tmp / "out")
    outside = "/elsewhere/doc.pdf"
    with pytest.raises(ConfigurationError, match=re.escape(outside)):
        mapper.output_for(outside)
    assert mapper.output_for(in_tmp / OUTSIDE_FOLDER / "x.pdf").parent.name == OUTSIDE_FOLDER


def test_stdin_with_arguments_widens_the_common_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-` plus arguments: the working folder is one more anchor."""
    monkeypatch.chdir(touch(tmp_path / "w" / "x").parent)
    arg = touch(tmp_path / "d" / "e" / "a.pdf")
    assert common_folder(["-", str(arg)]) == tmp_path
    assert common_folder([str(arg)]) == arg.parent
    assert common_folder([]) is None


def test_mapping_is_deterministic(tmp_path: Path) -> None:
    """The same command over the same files maps to the same outputs, run after run."""
    docs = tmp_path / "docs"
    for name in ["a.pdf", "a.png", "b/c.pdf", "b/c.tif", "d.docx"]:
        touch(docs / name)

    def run() -> list[Path]:
        mapper = OutputMapper.from_args([str(docs)], tmp_path / "out")
        return [mapper.output_for(item.path) for item in iter_inputs([str(docs)])]

    first = run()
    assert first == run()
    assert len(set(first)) == len(first) == 5
