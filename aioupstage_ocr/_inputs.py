"""The inputs of a bulk run, and where each one's result goes.

Discovery (`iter_inputs`) streams: arguments are taken in order, a folder is
walked lazily (one folder listed at a time, entries sorted by name, so the
order is the same on every run), and `-` reads one path per line from stdin as
the run pulls them, never all up front.

- A folder yields the files under it whose name ends with a supported
  extension (`_formats.EXTENSIONS`, any case); other files are skipped.
  Symbolic links to files are followed; links to folders inside a walk are not
  (a folder named as an argument is walked even if it is a link).
- A file named directly (argument or stdin line) is yielded whatever its
  extension: preflight judges it by content and says what is wrong.
- Nothing named is dropped: a missing path, an unreadable folder or something
  that is neither file nor folder is yielded with `error` set, so it gets a
  failed row in the report.
- Stdin: the line ending is removed, nothing else (names may begin or end with
  spaces, or begin with `#`); blank lines are ignored. `~` is expanded in
  arguments and lines alike; relative paths are taken from the working folder.
- A path named twice in the arguments, a file inside a folder argument, or a
  folder inside another is yielded once. Stdin lines are not remembered
  (memory stays flat for millions of lines); the journal sees to it that
  identical files are OCRed once.

Output paths (`OutputMapper`): `DIR/<path relative to the common folder>` with
the name's suffix replaced by `.ocr.json`.

- Common folder of explicit arguments: the deepest folder holding every
  argument's anchor, where a folder argument anchors at itself and anything
  else at its parent. One `scan.pdf` gives `DIR/scan.ocr.json`; `docs/` gives
  `DIR/<path inside docs>`; `x/a.pdf y/a.pdf` gives `DIR/x/a.ocr.json` and
  `DIR/y/a.ocr.json`.
- With `-`, the working folder is one more anchor (stdin's contents cannot be
  known up front). A stdin path outside the common folder mirrors its whole
  absolute path under `DIR/_root/` (`/data/a.pdf` -> `DIR/_root/data/a.ocr.json`;
  on Windows the drive letter becomes a folder). Should the common folder
  itself hold an entry named `_root`, such a path is refused with
  `ConfigurationError` rather than risk two inputs sharing an output.
- Same folder, same stem: the full name is kept, `a.pdf` -> `a.pdf.ocr.json`,
  when the folder holds another file with a supported extension and the same
  stem (any case), or a file whose whole name is the stem (`scan` beside
  `scan.pdf`, `a.pdf` beside `a.pdf.png`). A file without a supported
  extension always keeps its full name. The check looks at the folder on disk,
  not at the other inputs, so a file's output never depends on what else was
  named or in what order: the same command over the same files maps to the
  same outputs, and resume finds them. Under these rules no two files of one
  folder share an output name.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from ._exceptions import ConfigurationError, DocumentNotFoundError
from ._formats import EXTENSIONS

__all__ = [
    "OUTPUT_SUFFIX",
    "OUTSIDE_FOLDER",
    "STDIN",
    "InputItem",
    "OutputMapper",
    "absolute_path",
    "common_folder",
    "is_supported_name",
    "iter_inputs",
]

#: The argument that means "read paths from stdin, one per line".
STDIN = "-"
#: What replaces an input's suffix in its output name.
OUTPUT_SUFFIX = ".ocr.json"
#: The folder under DIR that mirrors absolute paths outside the common folder.
OUTSIDE_FOLDER = "_root"

# Folder listings kept by an OutputMapper, bounded by their total entries.
_INDEX_MAX_ENTRIES = 500_000
_INDEX_MAX_FOLDERS = 256


def is_supported_name(name: str) -> bool:
    """Whether a file name ends with a supported extension, in any case."""
    return os.path.splitext(name)[1].lower() in EXTENSIONS


def absolute_path(path: str | os.PathLike[str]) -> Path:
    """`path` with `~` expanded, made absolute, `..` folded; symbolic links are kept."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


@dataclass(frozen=True, slots=True)
class InputItem:
    """One input of a bulk run.

    `path` is absolute. `explicit` is true when it was named (an argument or a
    stdin line) rather than found in a folder. `error` is set when the path
    cannot be an input at all (missing, unreadable folder, not a file): the
    caller reports it as failed and moves on.
    """

    path: Path
    explicit: bool
    error: DocumentNotFoundError | None = None


def iter_inputs(
    args: Sequence[str], stdin: Iterable[str] | Iterable[bytes] | None = None
) -> Iterator[InputItem]:
    """Every input named by `args`, lazily, in a stable order (see the module docstring).

    `stdin` is read only where `-` appears (once, however often it appears);
    None means the process's stdin, read as bytes and decoded like file names.
    """
    named = [absolute_path(arg) for arg in args if arg != STDIN]
    # A walk leaves a path named elsewhere to its own argument, so it comes once.
    skip = frozenset(named)
    seen: set[Path] = set()
    stdin_read = False
    for arg in args:
        if arg == STDIN:
            if not stdin_read:
                stdin_read = True
                for line in _stdin_lines(stdin):
                    yield from _expand(absolute_path(line), skip)
            continue
        path = absolute_path(arg)
        if path in seen:
            continue
        seen.add(path)
        yield from _expand(path, skip)


def _stdin_lines(stdin: Iterable[str] | Iterable[bytes] | None) -> Iterator[str]:
    source: Iterable[str] | Iterable[bytes] = sys.stdin.buffer if stdin is None else stdin
    for raw in source:
        line = os.fsdecode(raw) if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        if line.strip():
            yield line


def _expand(path: Path, skip: frozenset[Path]) -> Iterator[InputItem]:
    """A named path: itself when a file, its supported files when a folder."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        yield InputItem(path, explicit=True, error=_not_found(path, exc))
        return
    if stat.S_ISDIR(mode):
        yield from _walk(path, skip)
    elif stat.S_ISREG(mode):
        yield InputItem(path, explicit=True)
    else:
        reason = "neither a regular file nor a folder"
        yield InputItem(path, explicit=True, error=DocumentNotFoundError(str(path), reason))


def _walk(root: Path, skip: frozenset[Path]) -> Iterator[InputItem]:
    """Depth first, entries sorted by name; only one listing per level is held."""
    try:
        top = _listing(root)
    except OSError as exc:
        yield InputItem(root, explicit=True, error=_not_found(root, exc, folder=True))
        return
    stack = [iter(top)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        path = Path(entry.path)
        if skip and path in skip:
            continue
        if _is_dir(entry):
            try:
                stack.append(iter(_listing(path)))
            except OSError as exc:
                yield InputItem(path, explicit=False, error=_not_found(path, exc, folder=True))
            continue
        if not is_supported_name(entry.name):
            continue
        if _is_file(entry):
            yield InputItem(path, explicit=False)
        else:
            reason = "broken link" if entry.is_symlink() else "not a regular file"
            yield InputItem(path, explicit=False, error=DocumentNotFoundError(str(path), reason))


def _listing(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _not_found(path: Path, exc: OSError, *, folder: bool = False) -> DocumentNotFoundError:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        reason = "no such file or folder"
    elif isinstance(exc, PermissionError):
        reason = "cannot list folder (permission denied)" if folder else "permission denied"
    else:
        what = "cannot list folder" if folder else "cannot read"
        reason = f"{what} ({exc.strerror or exc})"
    return DocumentNotFoundError(str(path), reason)


def common_folder(args: Sequence[str]) -> Path | None:
    """The folder outputs are mirrored from, for a command's INPUT arguments.

    A folder argument anchors at itself, any other path at its parent, `-` at
    the working folder; the answer is the deepest folder over every anchor.
    None when there is none (no arguments, or paths on different drives).
    """
    anchors: list[str] = []
    for arg in args:
        path = absolute_path("." if arg == STDIN else arg)
        anchors.append(os.fspath(path if arg == STDIN or path.is_dir() else path.parent))
    if not anchors:
        return None
    try:
        return Path(os.path.commonpath(anchors))
    except ValueError:  # different drives (Windows)
        return None


@dataclass(frozen=True, slots=True)
class _Folder:
    """What the output-name rule needs to know of one folder, case-folded."""

    stems: Counter[str]  # stems of the files with a supported extension
    names: frozenset[str]  # names of everything in it but folders

    @classmethod
    def read(cls, folder: str) -> _Folder:
        stems: Counter[str] = Counter()
        names: set[str] = set()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if _is_dir(entry):
                        continue
                    names.add(entry.name.casefold())
                    stem, ext = os.path.splitext(entry.name)
                    if ext.lower() in EXTENSIONS:
                        stems[stem.casefold()] += 1
        except OSError:
            pass  # a missing folder holds nothing that could collide
        return cls(stems, frozenset(names))


class OutputMapper:
    """Maps each input path to its absolute output path (rules in the module docstring).

    `out_dir` defaults to `tempfile.gettempdir()`; `base` is the common folder
    (see `common_folder`, or build with `from_args`). `output_for` lists the
    input's folder on first use (cached, bounded): in a bulk run call it off the
    event loop, e.g. in preflight. Safe to share between threads.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str] | None = None,
        base: str | os.PathLike[str] | None = None,
    ) -> None:
        self.out_dir = absolute_path(tempfile.gettempdir() if out_dir is None else out_dir)
        self.base = None if base is None else absolute_path(base)
        self._lock = threading.Lock()
        self._folders: OrderedDict[str, _Folder] = OrderedDict()
        self._cached_entries = 0
        self._outside_clash: bool | None = None

    @classmethod
    def from_args(
        cls, args: Sequence[str], out_dir: str | os.PathLike[str] | None = None
    ) -> OutputMapper:
        """The mapper for a command's INPUT arguments and `-o DIR`."""
        return cls(out_dir, common_folder(args))

    def __repr__(self) -> str:
        return f"OutputMapper(out_dir={os.fspath(self.out_dir)!r}, base={self.base!r})"

    def output_for(self, path: str | os.PathLike[str]) -> Path:
        """The absolute output path of the input at `path`."""
        source = absolute_path(path)
        return self.out_dir.joinpath(*self._folder_parts(source), self._output_name(source))

    def _folder_parts(self, source: Path) -> tuple[str, ...]:
        if self.base is not None and source.parent.is_relative_to(self.base):
            return source.parent.relative_to(self.base).parts
        if self.base is not None and self._clashes_outside():
            raise ConfigurationError(
                f"{source}: outside {self.base}, so its output would be mirrored under "
                f"{self.out_dir / OUTSIDE_FOLDER}, but {self.base / OUTSIDE_FOLDER} exists and "
                "mirrors there too; name the inputs as arguments or run from another folder"
            )
        parent = PurePath(source.parent)
        drive = [
            part for part in parent.drive.replace(":", "").replace("\\", "/").split("/") if part
        ]
        return (OUTSIDE_FOLDER, *drive, *parent.parts[1:])

    def _clashes_outside(self) -> bool:
        if self._outside_clash is None:
            assert self.base is not None
            self._outside_clash = os.path.lexists(self.base / OUTSIDE_FOLDER)
        return self._outside_clash

    def _output_name(self, source: Path) -> str:
        name = source.name
        stem, ext = os.path.splitext(name)
        if ext.lower() not in EXTENSIONS:
            return name + OUTPUT_SUFFIX
        folder = self._folder(os.fspath(source.parent))
        key = stem.casefold()
        others = folder.stems[key] - (1 if name.casefold() in folder.names else 0)
        keep = others > 0 or key in folder.names
        return (name if keep else stem) + OUTPUT_SUFFIX

    def _folder(self, folder: str) -> _Folder:
        with self._lock:
            known = self._folders.get(folder)
            if known is not None:
                self._folders.move_to_end(folder)
                return known
            known = _Folder.read(folder)
            self._folders[folder] = known
            self._cached_entries += len(known.names)
            while len(self._folders) > 1 and (
                len(self._folders) > _INDEX_MAX_FOLDERS or self._cached_entries > _INDEX_MAX_ENTRIES
            ):
                _, evicted = self._folders.popitem(last=False)
                self._cached_entries -= len(evicted.names)
            return known
