"""The resume journal of bulk runs: one SQLite file beside the outputs.

The file is `<output folder>/.aioupstage-ocr-journal.sqlite3` (`JOURNAL_NAME`).
One row per input, keyed by its absolute path: size, mtime, SHA-256 of the
content, route, request id, state, output path, pages, error, and the run
that holds it. Nothing else: never the API key, never request headers.

```
pending -> submitting -> submitted(request_id) -> done
           submitting -> done                       (sync: no request id)
any state -> failed
```

A document sent in parts (see `AsyncUpstageOCR.ocr`) keeps one row in
`inputs` (route `parts`, no request id) and one row per part in `parts`,
keyed by the input's path and the part's own content hash, with the same
`submitting -> submitted(request_id)` steps: a resume waits for a part's
request instead of sending it again.

A `submitting` row without a request id, found on resume, means the run
stopped between this write and the service's answer: the request may or may
not exist, so the caller looks in the service's request list before sending
it again.

Several runs, one folder. Every run that opens the journal gets a row in
`runs`: its `RunInfo` (a run id, pid, host, and a lease: the time until which
it is taken to be alive). The journal's thread renews that lease every quarter
of it (`lease`, `DEFAULT_LEASE` seconds unless `AIOUPSTAGE_OCR_LEASE` says
otherwise) for as long as the journal is open. An input is worked on by one
run at a time: `claim` makes the calling run its owner, or answers which other
live run holds it. A run is dead when its lease ran out, or at once when it
ran on this host (same host name and pid namespace) and its pid is gone; its
claims are then free (`Claim.taken_from` names it), and its rows are resumed
like any other: an open request id is polled, a `submitting` row without one
is looked up first. A dead run's row stays (so each claim taken over can say
whose it was) until no input names it. `record_submitting` claims the input
too, and records nothing if another live run holds it (`ClaimLostError`).
`record_done`, `record_failed` and `release` end the calling run's claim
(never another's); closing the journal ends all of the run's claims.

Durability. The journal is in WAL mode. `record_submitting`,
`record_submitted` and `reset` return only once their transaction is fsynced
(`synchronous=FULL` for that commit): the record of a request survives even a
power loss, so one is never paid for twice. The other records commit with
`synchronous=NORMAL`: in WAL mode a commit is in the WAL file when COMMIT
returns, so it survives any crash or kill of the process; only a power loss or
OS crash can take back the last of them, and all that costs is a re-download
of a request whose id was already safe.

Threads and processes. One connection per run, opened, used and closed by
one dedicated thread. Coroutines hand it operations through a queue and await
a future, so the event loop never waits on the disk. The thread runs
everything queued at once in one transaction (group commit): many concurrent
writers share one fsync. Runs in other processes (on this host or another
that sees the same folder and keeps its clock in step) write through their
own connections; SQLite serialises the transactions, each waiting up to
`BUSY_TIMEOUT` seconds for another's to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import queue
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from ._exceptions import ConfigurationError, UpstageOCRError

__all__ = [
    "BUSY_TIMEOUT",
    "DEFAULT_LEASE",
    "JOURNAL_NAME",
    "LEASE_ENV",
    "SCHEMA_VERSION",
    "Claim",
    "ClaimLostError",
    "Entry",
    "Journal",
    "PartEntry",
    "RunInfo",
    "State",
    "journal_path",
]

#: The journal's file name inside the output folder.
JOURNAL_NAME: Final = ".aioupstage-ocr-journal.sqlite3"
#: Stored in `PRAGMA user_version`; a journal of a newer version is refused,
#: one of version 1 (before runs shared a folder) is brought up to date.
SCHEMA_VERSION: Final = 2
#: How long a run is taken to be alive after its last renewal, in seconds.
DEFAULT_LEASE: Final = 30.0
#: The environment variable that sets the lease (seconds) when `lease` is not given.
LEASE_ENV: Final = "AIOUPSTAGE_OCR_LEASE"
#: How long a transaction waits for another process's to end, in seconds.
BUSY_TIMEOUT: Final = 30.0

# At most this many operations share one transaction.
_MAX_BATCH = 1024
# The lease is renewed when this fraction of it is left.
_RENEW_AT = 0.75

_T = TypeVar("_T")


class State(StrEnum):
    """Where an input stands."""

    PENDING = "pending"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    DONE = "done"
    FAILED = "failed"


_INPUTS = """
CREATE TABLE inputs (
    path          BLOB PRIMARY KEY,
    state         TEXT NOT NULL
                  CHECK (state IN ('pending', 'submitting', 'submitted', 'done', 'failed')),
    size          INTEGER,
    mtime_ns      INTEGER,
    sha256        TEXT,
    route         TEXT,
    request_id    TEXT,
    output        BLOB,
    pages         INTEGER,
    error_type    TEXT,
    error_message TEXT,
    updated_at    REAL NOT NULL
);
CREATE INDEX inputs_by_sha256 ON inputs (sha256) WHERE sha256 IS NOT NULL;
CREATE INDEX inputs_open ON inputs (state) WHERE state IN ('submitting', 'submitted');
"""

# Version 2: the runs sharing the folder, and which of them holds each input.
_RUNS = """
CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    pid_ns      TEXT NOT NULL,
    started_at  REAL NOT NULL,
    lease_until REAL NOT NULL
);
ALTER TABLE inputs ADD COLUMN owner TEXT;
CREATE INDEX inputs_by_owner ON inputs (owner) WHERE owner IS NOT NULL;
"""

# Added beside `inputs` without a version change: a journal without it gains it.
_PARTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS parts (
    path       BLOB NOT NULL,
    sha256     TEXT NOT NULL,
    pages      TEXT NOT NULL,
    route      TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('submitting', 'submitted')),
    request_id TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (path, sha256)
)
"""

_COLUMNS = (
    "path, state, size, mtime_ns, sha256, route, request_id, output, pages, "
    "error_type, error_message, updated_at, owner"
)
_RUN_COLUMNS = "run_id, pid, host, pid_ns, started_at, lease_until"

# Paths are stored as the file system's bytes, so any name survives the trip.
_encode = os.fsencode


def journal_path(out_dir: str | os.PathLike[str]) -> Path:
    """Where the journal of an output folder lives."""
    return Path(os.path.abspath(out_dir)) / JOURNAL_NAME


class ClaimLostError(UpstageOCRError):
    """Another live run holds an input this run was about to send (this run stalled
    past its lease, and the other took the input over): nothing is sent."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run that has the journal open: who it is, and until when it is taken to be alive."""

    run_id: str
    pid: int
    host: str
    pid_ns: str
    started_at: float
    lease_until: float

    def __str__(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host})"

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> RunInfo:
        return cls(*row)

    def alive(self, now: float) -> bool:
        """Its lease holds, and (when it ran on this host) its process is still there."""
        if self.lease_until < now:
            return False
        if (self.host, self.pid_ns) == (_HOST, _PID_NS):
            return _pid_alive(self.pid)
        return True


@dataclass(frozen=True, slots=True)
class Entry:
    """One input's row; `owner` is the run id of the run that holds it, if any."""

    path: Path
    state: State
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    route: str | None
    request_id: str | None
    output: Path | None
    pages: int | None
    error_type: str | None
    error_message: str | None
    updated_at: float
    owner: str | None = None

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> Entry:
        (path, state, size, mtime_ns, sha256, route, request_id, output, pages) = row[:9]
        return cls(
            path=Path(os.fsdecode(path)),
            state=State(state),
            size=size,
            mtime_ns=mtime_ns,
            sha256=sha256,
            route=route,
            request_id=request_id,
            output=None if output is None else Path(os.fsdecode(output)),
            pages=pages,
            error_type=row[9],
            error_message=row[10],
            updated_at=row[11],
            owner=row[12],
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """What `claim` found: the row (as claimed, or as the holder has it) and who holds it.

    - `holder`: another live run that holds the input; this run did NOT get it.
    - `taken_from`: the dead run this run took the input over from, if any.
    """

    entry: Entry | None
    holder: RunInfo | None = None
    taken_from: RunInfo | None = None

    @property
    def claimed(self) -> bool:
        """This run now holds the input."""
        return self.holder is None


@dataclass(slots=True)
class _Op:
    run: Callable[[sqlite3.Connection], object]
    durable: bool
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


@dataclass(slots=True)
class _Stop:
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


@dataclass(frozen=True, slots=True)
class PartEntry:
    """One part of an input sent in parts: its content hash, pages of the original, request."""

    path: Path
    sha256: str
    pages: str
    route: str
    state: State
    request_id: str | None
    updated_at: float


class Journal:
    """The journal at `path` (see `journal_path`); use `async with` or `open`/`close`.

    `fresh=True` (for `--no-resume`) starts from an empty journal (keeping only
    the rows other live runs hold), also replacing a file that is not a journal
    this version can read. `lease` is this run's lease in seconds (default: the
    `AIOUPSTAGE_OCR_LEASE` environment variable, else `DEFAULT_LEASE`).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, fresh: bool = False, lease: float | None = None
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self.fresh = fresh
        self.lease = _lease(lease)
        now = time.time()
        #: This run, as other runs on the folder see it.
        self.run = RunInfo(secrets.token_hex(6), os.getpid(), _HOST, _PID_NS, now, now + self.lease)
        #: Transactions committed so far; many records share one (group commit).
        self.commits = 0
        #: Times this run's lease was renewed.
        self.renewals = 0
        self._queue: queue.SimpleQueue[_Op | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._renew_due = math.inf

    def __repr__(self) -> str:
        return f"Journal({os.fspath(self.path)!r})"

    async def __aenter__(self) -> Journal:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> Journal:
        """Open (creating folder and file as needed) the journal, and join its runs.

        Raises `ConfigurationError` when the file is not a journal this version
        can read (and `fresh` is false), or stays locked past `BUSY_TIMEOUT`.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.path}: journal already opened")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._serve, args=(loop, ready), name="aioupstage-ocr-journal", daemon=True
        )
        self._thread.start()
        try:
            await ready
        except BaseException:
            self._closed = True
            self._queue.put(_Stop(loop.create_future(), loop))
            raise
        return self

    async def close(self) -> None:
        """Finish every queued operation, give up this run's claims, close the file.

        Safe to call twice.
        """
        if self._thread is None or self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Stop(stopped, loop))
        await asyncio.shield(stopped)

    # Reads.

    async def get(self, path: str | os.PathLike[str]) -> Entry | None:
        """The row of `path`, whatever its state or content."""
        key = _key(path)
        return await self._call(lambda conn: _one(conn, "WHERE path = ?", (key,)))

    async def lookup(self, path: str | os.PathLike[str], size: int, mtime_ns: int) -> Entry | None:
        """The row of `path` if its size and mtime still match (quick check), else None.

        On None, hash the file and ask `find_by_hash`: it finds the row again
        when only the mtime moved, and any identical file done or in flight.
        """
        key = _key(path)
        where = "WHERE path = ? AND size = ? AND mtime_ns = ?"
        return await self._call(lambda conn: _one(conn, where, (key, size, mtime_ns)))

    async def request_ids(self, since: float = 0.0) -> set[str]:
        """Every request id on a row changed at or after `since` (epoch seconds)."""

        def query(conn: sqlite3.Connection) -> set[str]:
            rows = conn.execute(
                "SELECT request_id FROM inputs WHERE request_id IS NOT NULL AND updated_at >= ? "
                "UNION SELECT request_id FROM parts WHERE request_id IS NOT NULL "
                "AND updated_at >= ?",
                (since, since),
            )
            return {str(row[0]) for row in rows}

        return await self._call(query)

    async def find_by_hash(self, sha256: str) -> Entry | None:
        """A row with this content that is done, else submitted, else submitting; or None."""
        where = (
            "WHERE sha256 = ? AND state IN ('done', 'submitted', 'submitting') "
            "ORDER BY CASE state WHEN 'done' THEN 0 WHEN 'submitted' THEN 1 ELSE 2 END, "
            "updated_at DESC LIMIT 1"
        )
        return await self._call(lambda conn: _one(conn, where, (sha256,)))

    async def open_requests(self) -> list[Entry]:
        """Rows `submitting` or `submitted`, oldest first, whoever holds them."""
        where = "WHERE state IN ('submitting', 'submitted') ORDER BY updated_at"
        return await self._call(lambda conn: _all(conn, where, ()))

    async def counts(self) -> dict[State, int]:
        """How many rows are in each state (every state present, zero or not)."""

        def run(conn: sqlite3.Connection) -> dict[State, int]:
            found = dict(conn.execute("SELECT state, count(*) FROM inputs GROUP BY state"))
            return {state: int(found.get(state.value, 0)) for state in State}

        return await self._call(run)

    async def runs(self) -> list[RunInfo]:
        """The live runs on this journal (this one included), oldest first."""

        def run(conn: sqlite3.Connection) -> list[RunInfo]:
            now = time.time()
            return [info for info in _runs(conn) if info.alive(now)]

        return await self._call(run)

    async def in_flight(self) -> list[Entry]:
        """`submitting` rows without a request id that a live run (this one too) holds.

        Each is a submit whose answer a run is waiting for (or is settling): a
        request it may have created is not yet in the journal.
        """

        def run(conn: sqlite3.Connection) -> list[Entry]:
            live = _live_others(conn, self.run.run_id) | {self.run.run_id}
            rows = _all(conn, "WHERE state = 'submitting' AND request_id IS NULL", ())
            return [row for row in rows if row.owner in live]

        return await self._call(run)

    # Claims.

    async def claim(self, path: str | os.PathLike[str]) -> Claim:
        """Make this run the holder of `path`, unless another live run holds it.

        A row is made (`pending`) if there is none. The claim is given up by
        `record_done`, `record_failed`, `release` or closing the journal.
        """
        key = _key(path)
        return await self._call(lambda conn: self._claim(conn, key))

    async def claim_many(self, paths: list[str | os.PathLike[str]]) -> list[Claim]:
        """`claim` for each of `paths`, in one transaction; the claims in the same order."""
        keys = [_key(path) for path in paths]
        return await self._call(lambda conn: [self._claim(conn, key) for key in keys])

    async def claim_orphans(self) -> list[Entry]:
        """Claim every `submitting` row without a request id that no run holds, or a dead one.

        These are the submits cut off before their answer (the run that sent
        them stopped): the caller settles each against the request list. This
        run's own rows are not among them.
        """

        def run(conn: sqlite3.Connection) -> list[Entry]:
            busy = _live_others(conn, self.run.run_id) | {self.run.run_id}
            rows = _all(conn, "WHERE state = 'submitting' AND request_id IS NULL", ())
            mine = [row for row in rows if row.owner not in busy]
            conn.executemany(
                "UPDATE inputs SET owner = ? WHERE path = ?",
                [(self.run.run_id, _encode(os.fspath(row.path))) for row in mine],
            )
            for dead in {row.owner for row in mine if row.owner is not None}:
                _forget_run_if_unused(conn, dead)
            return [_owned(row, self.run.run_id) for row in mine]

        return await self._call(run)

    async def release(self, path: str | os.PathLike[str]) -> None:
        """Give up this run's claim on `path` (if it holds it); the row stays as it is."""
        key = _key(path)
        await self._call(
            lambda conn: conn.execute(
                "UPDATE inputs SET owner = NULL WHERE path = ? AND owner = ?",
                (key, self.run.run_id),
            )
        )

    async def release_all(self) -> None:
        """Give up every claim of this run."""
        await self._call(self._release_all)

    def _claim(self, conn: sqlite3.Connection, key: bytes) -> Claim:
        me = self.run.run_id
        entry = _one(conn, "WHERE path = ?", (key,))
        taken_from: RunInfo | None = None
        if entry is not None and entry.owner not in (None, me):
            holder = _run(conn, entry.owner)
            if holder is not None and holder.alive(time.time()):
                return Claim(entry, holder=holder)
            taken_from = holder or RunInfo(entry.owner or "?", 0, "?", "?", 0.0, 0.0)
        if entry is None:
            conn.execute(
                "INSERT INTO inputs (path, state, updated_at, owner) VALUES (?, ?, ?, ?)",
                (key, State.PENDING.value, time.time(), me),
            )
            entry = _one(conn, "WHERE path = ?", (key,))
        elif entry.owner != me:
            # The claim leaves `updated_at` alone: it dates the last record (see request_ids).
            conn.execute("UPDATE inputs SET owner = ? WHERE path = ?", (me, key))
            entry = _owned(entry, me)
        if taken_from is not None:
            _forget_run_if_unused(conn, taken_from.run_id)
        return Claim(entry, taken_from=taken_from)

    def _release_all(self, conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE inputs SET owner = NULL WHERE owner = ?", (self.run.run_id,))

    # Writes.

    async def record_pending(
        self,
        path: str | os.PathLike[str],
        *,
        size: int | None = None,
        mtime_ns: int | None = None,
        sha256: str | None = None,
    ) -> None:
        """`path` is known and waits; clears any request id, output or error of a past run."""
        await self._upsert(
            path, State.PENDING, size=size, mtime_ns=mtime_ns, sha256=sha256, clear=True
        )

    async def record_submitting(
        self,
        path: str | os.PathLike[str],
        sha256: str,
        route: str,
        *,
        size: int,
        mtime_ns: int,
    ) -> None:
        """About to send `path`: call BEFORE the request; returns once it is on disk.

        `size` and `mtime_ns` come from the same stat as the hash, so the next
        run's `lookup` can match without hashing again. It claims `path` for
        this run; raises `ClaimLostError` (and records nothing) when another
        live run holds it.
        """
        key = _key(path)
        upsert = self._upsert_op(
            key,
            State.SUBMITTING,
            size=size,
            mtime_ns=mtime_ns,
            sha256=sha256,
            route=route,
            owner=self.run.run_id,
            clear=True,
        )

        def run(conn: sqlite3.Connection) -> None:
            claim = self._claim(conn, key)
            if claim.holder is not None:
                raise ClaimLostError(
                    f"{os.fsdecode(key)}: {claim.holder} holds it (this run stalled past its "
                    f"{self.lease:g} s lease?); not sending it"
                )
            upsert(conn)

        await self._call(run, durable=True)

    async def record_submitted(self, path: str | os.PathLike[str], request_id: str) -> None:
        """The service gave `request_id` for `path`; returns once it is on disk."""
        key = _key(path)

        def run(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE inputs SET state = ?, request_id = ?, updated_at = ? WHERE path = ?",
                (State.SUBMITTED.value, request_id, time.time(), key),
            )
            if cursor.rowcount == 0:
                raise LookupError(
                    f"{os.fsdecode(key)}: not in the journal; record_submitting first"
                )

        await self._call(run, durable=True)

    async def record_done(
        self,
        path: str | os.PathLike[str],
        output: str | os.PathLike[str],
        pages: int,
        *,
        size: int | None = None,
        mtime_ns: int | None = None,
        sha256: str | None = None,
        route: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """`path`'s result is written at `output`; this run's claim on it ends (if it has one).

        The keyword fields, when given, replace the stored ones (for an input
        whose result was taken from an identical file's).
        """
        await self._upsert(
            path,
            State.DONE,
            release=True,
            size=size,
            mtime_ns=mtime_ns,
            sha256=sha256,
            route=route,
            request_id=request_id,
            output=_key(output),
            pages=pages,
        )

    async def record_failed(
        self,
        path: str | os.PathLike[str],
        error_type: str,
        message: str,
        *,
        size: int | None = None,
        mtime_ns: int | None = None,
        sha256: str | None = None,
    ) -> None:
        """`path` failed; the request id, if any, is kept; this run's claim on it ends."""
        await self._upsert(
            path,
            State.FAILED,
            release=True,
            size=size,
            mtime_ns=mtime_ns,
            sha256=sha256,
            error_type=error_type,
            error_message=message,
        )

    async def reset(self) -> None:
        """Forget every row other live runs do not hold (`--no-resume`), with its parts;
        returns once on disk."""
        await self._call(self._forget_free_rows, durable=True)

    def _forget_free_rows(self, conn: sqlite3.Connection) -> None:
        live = sorted(_live_others(conn, self.run.run_id))
        conn.execute(
            "DELETE FROM inputs WHERE owner IS NULL "  # noqa: S608 - placeholders only
            f"OR owner NOT IN ({', '.join('?' * len(live))})",
            live,
        )
        conn.execute("DELETE FROM parts WHERE path NOT IN (SELECT path FROM inputs)")

    # Parts of an input sent in parts.

    async def part(self, path: str | os.PathLike[str], sha256: str) -> PartEntry | None:
        """The row of `path`'s part with content `sha256`, if one was recorded."""
        key = _key(path)

        def query(conn: sqlite3.Connection) -> PartEntry | None:
            row = conn.execute(
                "SELECT path, sha256, pages, route, state, request_id, updated_at FROM parts "
                "WHERE path = ? AND sha256 = ?",
                (key, sha256),
            ).fetchone()
            if row is None:
                return None
            return PartEntry(
                Path(os.fsdecode(row[0])),
                str(row[1]),
                str(row[2]),
                str(row[3]),
                State(row[4]),
                None if row[5] is None else str(row[5]),
                float(row[6]),
            )

        return await self._call(query)

    async def record_part_submitting(
        self, path: str | os.PathLike[str], sha256: str, pages: str, route: str
    ) -> None:
        """About to send one part of `path` (its `pages`, e.g. "1-525"); returns once on disk."""
        key = _key(path)
        sql = (
            "INSERT INTO parts (path, sha256, pages, route, state, request_id, updated_at) "
            "VALUES (?, ?, ?, ?, 'submitting', NULL, ?) ON CONFLICT (path, sha256) DO UPDATE "
            "SET pages = excluded.pages, route = excluded.route, state = excluded.state, "
            "request_id = NULL, updated_at = excluded.updated_at"
        )
        await self._call(
            lambda conn: conn.execute(sql, (key, sha256, pages, route, time.time())),
            durable=True,
        )

    async def record_part_submitted(
        self, path: str | os.PathLike[str], sha256: str, request_id: str
    ) -> None:
        """The service gave `request_id` for that part; returns once it is on disk."""
        key = _key(path)

        def run(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE parts SET state = 'submitted', request_id = ?, updated_at = ? "
                "WHERE path = ? AND sha256 = ?",
                (request_id, time.time(), key, sha256),
            )
            if cursor.rowcount == 0:
                raise LookupError(
                    f"{os.fsdecode(key)}: part {sha256[:12]} not in the journal; "
                    "record_part_submitting first"
                )

        await self._call(run, durable=True)

    async def _upsert(
        self,
        path: str | os.PathLike[str],
        state: State,
        *,
        clear: bool = False,
        release: bool = False,
        **fields: object,
    ) -> None:
        """Insert or update the row of `path` (see `_upsert_op`)."""
        await self._call(self._upsert_op(_key(path), state, clear=clear, release=release, **fields))

    def _upsert_op(
        self,
        key: bytes,
        state: State,
        *,
        clear: bool = False,
        release: bool = False,
        **fields: object,
    ) -> Callable[[sqlite3.Connection], object]:
        """Insert or update the row of `key`: `state`, plus every field given as not None.

        `clear` empties route, request id, output, pages and error first;
        `release` ends this run's claim on the row (another run's stays).
        """
        given = {name: value for name, value in fields.items() if value is not None}
        if state is not State.FAILED:
            given.setdefault("error_type", None)
            given.setdefault("error_message", None)
        if clear:
            for name in ("route", "request_id", "output", "pages"):
                given.setdefault(name, None)
        names = ["state", *given, "updated_at"]
        values = [state.value, *given.values(), time.time()]
        updates = [f"{name} = excluded.{name}" for name in names]
        params: tuple[object, ...] = (key, *values)
        if release:  # this run's claim ends; another run's stays
            updates.append("owner = CASE WHEN owner = ? THEN NULL ELSE owner END")
            params = (*params, self.run.run_id)
        sql = (
            f"INSERT INTO inputs (path, {', '.join(names)}) "  # noqa: S608 - names are ours
            f"VALUES (?{', ?' * len(names)}) ON CONFLICT (path) DO UPDATE SET " + ", ".join(updates)
        )
        return lambda conn: conn.execute(sql, params)

    async def _call(self, run: Callable[[sqlite3.Connection], _T], *, durable: bool = False) -> _T:
        if self._thread is None or self._closed:
            raise RuntimeError(f"{self.path}: journal is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._queue.put(_Op(run, durable, future, loop))
        return await future

    # The journal's thread.

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # noqa: BLE001 - handed to the coroutine awaiting open()
            _settle(loop, ready, exc)
            return
        _settle(loop, ready, None)
        stop: _Stop | None = None
        try:
            while stop is None:
                batch: list[_Op] = []
                wait = max(0.0, self._renew_due - time.monotonic())
                try:
                    item: _Op | _Stop | None = self._queue.get(timeout=min(wait, 3600.0))
                except queue.Empty:
                    item = None
                while item is not None:
                    if isinstance(item, _Stop):
                        stop = item
                        break
                    batch.append(item)
                    if len(batch) >= _MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch or time.monotonic() >= self._renew_due:
                    self._run_batch(conn, batch)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._leave(conn)
            conn.close()
            if stop is not None:
                _settle(stop.loop, stop.future, None)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect_once()
        except ConfigurationError as exc:
            if not self.fresh or isinstance(exc.__cause__, sqlite3.OperationalError):
                raise
        # Fresh start over a file that is not a journal we can read: replace it.
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return self._connect_once()

    def _connect_once(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            mode = _retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            if str(mode).lower() != "wal":
                raise ConfigurationError(f"{self.path}: cannot use WAL mode here (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")  # for the schema and a fresh start
            conn.execute("BEGIN IMMEDIATE")  # one run at a time makes or updates the schema
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:  # a new file: the schema, in the same transaction
                _script(conn, _INPUTS + _RUNS)
            elif version == 1:  # from before runs shared a folder
                _script(conn, _RUNS)
            elif version != SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{self.path}: journal schema version {version}, this version reads "
                    f"{SCHEMA_VERSION}; run with --no-resume or choose another output folder"
                )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            now = time.time()
            for info in _runs(conn):
                if not info.alive(now):
                    _forget_run_if_unused(conn, info.run_id)
            self._renew(conn)
            conn.execute(_PARTS_SCHEMA)
            if self.fresh:
                self._forget_free_rows(conn)
            conn.execute("COMMIT")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.OperationalError as exc:
            conn.close()
            raise ConfigurationError(f"{self.path}: cannot open journal ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ConfigurationError(
                f"{self.path}: not a journal this version can read ({exc}); "
                "run with --no-resume or choose another output folder"
            ) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _renew(self, conn: sqlite3.Connection) -> None:
        """Write this run's row with a lease from now (inside a transaction)."""
        now = time.time()
        info = self.run
        conn.execute(
            f"INSERT OR REPLACE INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
            (info.run_id, info.pid, info.host, info.pid_ns, info.started_at, now + self.lease),
        )
        self._renew_due = time.monotonic() + self.lease * (1 - _RENEW_AT)
        self.renewals += 1

    def _leave(self, conn: sqlite3.Connection) -> None:
        """Give up every claim and this run's row (the journal is closing)."""
        conn.execute("BEGIN IMMEDIATE")
        self._release_all(conn)
        conn.execute("DELETE FROM runs WHERE run_id = ?", (self.run.run_id,))
        conn.execute("COMMIT")

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        durable = any(op.durable for op in batch)
        results: list[tuple[_Op, object]] = []
        try:
            if durable:
                conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            if time.monotonic() >= self._renew_due:  # the heartbeat rides along
                self._renew(conn)
            for op in batch:
                try:
                    results.append((op, op.run(conn)))
                except Exception as exc:  # handed to the op's caller
                    if not conn.in_transaction:  # SQLite rolled the whole batch back
                        raise
                    results.append((op, exc))
            conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets it
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            results = [(op, exc) for op in batch]
            # A failed renewal is tried again at the next operation or in a second.
            self._renew_due = min(self._renew_due, time.monotonic() + 1.0)
        finally:
            if durable:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA synchronous = NORMAL")
        # One wake-up per event loop for the whole batch, not one per operation.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], object]]] = {}
        for op, outcome in results:
            by_loop.setdefault(op.loop, []).append((op.future, outcome))
        for loop, outcomes in by_loop.items():
            _settle_all(loop, outcomes)


def _key(path: str | os.PathLike[str]) -> bytes:
    return _encode(os.path.abspath(path))


def _lease(lease: float | None) -> float:
    if lease is None:
        text = os.environ.get(LEASE_ENV, "").strip()
        try:
            lease = float(text) if text else DEFAULT_LEASE
        except ValueError:
            raise ConfigurationError(
                f"{LEASE_ENV}={text!r}: the lease is a number of seconds"
            ) from None
    if not (math.isfinite(lease) and lease > 0):
        raise ConfigurationError(
            f"the journal lease must be a positive number of seconds, not {lease}"
        )
    return lease


def _pid_namespace() -> str:
    """What tells this host's processes apart from a container's with the same host name."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


_HOST: Final = socket.gethostname()
_PID_NS: Final = _pid_namespace()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user (or the platform cannot say)
        return True
    return True


def _retry_busy(run: Callable[[], _T]) -> _T:
    """`run()`, again while SQLite answers busy without waiting (a journal mode change)."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            return run()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _script(conn: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _runs(conn: sqlite3.Connection) -> list[RunInfo]:
    rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY started_at")  # noqa: S608
    return [RunInfo._from_row(row) for row in rows]


def _run(conn: sqlite3.Connection, run_id: str | None) -> RunInfo | None:
    row = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?",  # noqa: S608 - ours
        (run_id,),
    ).fetchone()
    return None if row is None else RunInfo._from_row(row)


def _live_others(conn: sqlite3.Connection, me: str) -> set[str]:
    now = time.time()
    return {info.run_id for info in _runs(conn) if info.run_id != me and info.alive(now)}


def _forget_run_if_unused(conn: sqlite3.Connection, run_id: str) -> None:
    """A dead run's row goes once no input names it (until then it says who held what)."""
    conn.execute(
        "DELETE FROM runs WHERE run_id = ? AND NOT EXISTS (SELECT 1 FROM inputs WHERE owner = ?)",
        (run_id, run_id),
    )


def _owned(entry: Entry, owner: str) -> Entry:
    return dataclasses.replace(entry, owner=owner)


def _one(conn: sqlite3.Connection, where: str, params: tuple[object, ...]) -> Entry | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM inputs {where}", params).fetchone()  # noqa: S608 - ours
    return None if row is None else Entry._from_row(row)


def _all(conn: sqlite3.Connection, where: str, params: tuple[object, ...]) -> list[Entry]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM inputs {where}", params).fetchall()  # noqa: S608 - ours
    return [Entry._from_row(row) for row in rows]


def _settle(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], outcome: object) -> None:
    """Hand `outcome` (a value, or an exception to raise) to `future` on its loop."""
    _settle_all(loop, [(future, outcome)])


def _settle_all(
    loop: asyncio.AbstractEventLoop, outcomes: list[tuple[asyncio.Future[Any], object]]
) -> None:
    def settle() -> None:
        for future, outcome in outcomes:
            if future.done():  # the caller was cancelled; the operation ran anyway
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
        loop.call_soon_threadsafe(settle)
