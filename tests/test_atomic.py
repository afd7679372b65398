"""Atomic writes: the whole new file or the old one, and never a temp file left behind."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from aioupstage_ocr._atomic import atomic_write_bytes, atomic_write_text


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_and_returns_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative path comes back absolute; missing parent folders are created."""
    monkeypatch.chdir(tmp_path)
    written = atomic_write_bytes(Path("out") / "deep" / "a.ocr.json", b'{"pages": []}')
    assert written == tmp_path / "out" / "deep" / "a.ocr.json"
    assert written.is_absolute()
    assert written.read_bytes() == b'{"pages": []}'
    assert _names(written.parent) == ["a.ocr.json"]


def test_overwrites_in_place(tmp_path: Path) -> None:
    """A second write replaces the first, leaving only the target."""
    target = tmp_path / "r.json"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert _names(tmp_path) == ["r.json"]


def test_text_uses_encoding(tmp_path: Path) -> None:
    """atomic_write_text encodes with the given encoding."""
    target = atomic_write_text(tmp_path / "t.txt", "영수증 €", encoding="utf-16")
    assert target.read_bytes() == "영수증 €".encode("utf-16")


def test_permissions_follow_umask(tmp_path: Path) -> None:
    """The file gets ordinary permissions, not the 0600 of a mkstemp file."""
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    old = os.umask(0o022)
    try:
        target = atomic_write_bytes(tmp_path / "p.json", b"x")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644


def test_failed_replace_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the rename fails, the target keeps its old bytes and the temp file is gone."""
    target = tmp_path / "r.json"
    target.write_bytes(b"old")

    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", os.fspath(src))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError) as info:
        atomic_write_bytes(target, b"new")
    assert info.value.filename == str(target)  # names the target, not the temp file
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["r.json"]


def test_failure_midway_through_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills up halfway leaves no partial file, at the target or beside it."""
    target = tmp_path / "r.json"
    target.write_bytes(b"old")
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, fd: int, mode: str) -> None:
            self.file = real_fdopen(fd, mode)

        def __enter__(self) -> HalfWriter:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: bytes) -> int:
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", HalfWriter)
    with pytest.raises(OSError, match="No space left") as info:
        atomic_write_bytes(target, b"0123456789" * 1000)
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["r.json"]


def test_interrupt_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt during fsync removes the temp file and propagates unchanged."""

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "new.json", b"data")
    assert _names(tmp_path) == []


def test_target_is_a_folder(tmp_path: Path) -> None:
    """Writing over a folder fails naming it, with nothing left behind."""
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError, match="taken") as info:
        atomic_write_bytes(tmp_path / "taken", b"x")
    assert info.value.filename == str(tmp_path / "taken")
    assert _names(tmp_path) == ["taken"]


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="needs POSIX and a non-root user"
)
def test_read_only_folder(tmp_path: Path) -> None:
    """A folder that cannot be written gives PermissionError naming the target."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as info:
            atomic_write_bytes(folder / "r.json", b"x")
        assert info.value.filename == str(folder / "r.json")
        assert _names(folder) == []
    finally:
        folder.chmod(0o755)


def test_concurrent_writers_never_mix(tmp_path: Path) -> None:
    """Threads writing one path end with exactly one writer's whole payload."""
    target = tmp_path / "shared.json"
    payloads = [bytes([65 + i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=atomic_write_bytes, args=(target, p)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_bytes() in payloads
    assert _names(tmp_path) == ["shared.json"]
