"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

The data goes to a uniquely named temp file in the target's own folder (so the
rename stays on one file system), is flushed and fsynced, then `os.replace`d
over the target. On any failure the temp file is removed and the target is
left as it was. Every file this package writes goes through here.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text"]

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically, creating parent folders; return the absolute path.

    The new file gets the usual permissions (0o666 less the umask). Raises the
    `OSError` of the step that failed, naming the file.
    """
    target = Path(os.path.abspath(path))  # normalises "..", leaves links alone
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:16]}.tmp")
    try:
        fd = os.open(temp, _OPEN_FLAGS, 0o666)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # the original error matters more
            temp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None:
            # Name the file the caller asked for, not the temp file beside it.
            raise OSError(exc.errno, exc.strerror, os.fspath(target)) from exc
        raise
    _fsync_folder(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (see `atomic_write_bytes`); return the absolute path."""
    return atomic_write_bytes(path, text.encode(encoding))


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable where the platform allows (POSIX); best effort."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
