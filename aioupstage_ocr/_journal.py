"""The resume journal of a bulk run: one SQLite file beside the outputs.

The file is `<output folder>/.aioupstage-ocr-journal.sqlite3` (`JOURNAL_NAME`).
One row per input, keyed by its absolute path: size, mtime, SHA-256 of the
content, route, request id, state, output path, pages, error. Nothing else:
never the API key, never request headers.

```
pending -> submitting -> submitted(request_id) -> done
           submitting -> done                       (sync: no request id)
any state -> failed
```

A `submitting` row without a request id, found on resume, means the run
stopped between this write and the service's answer: the request may or may
not exist, so the caller looks in the service's request list before sending
it again.

Durability. The journal is in WAL mode. `record_submitting`,
`record_submitted` and `reset` return only once their transaction is fsynced
(`synchronous=FULL` for that commit): the record of a request survives even a
power loss, so one is never paid for twice. The other records commit with
`synchronous=NORMAL`: in WAL mode a commit is in the WAL file when COMMIT
returns, so it survives any crash or kill of the process; only a power loss or
OS crash can take back the last of them, and all that costs is a re-download
of a request whose id was already safe.

Threads. One connection, opened, used and closed by one dedicated thread.
Coroutines hand it operations through a queue and await a future, so the event
loop never waits on the disk. The thread runs everything queued at once in one
transaction (group commit): many concurrent writers share one fsync.

One run per folder. The connection holds an exclusive lock for as long as the
journal is open, so a second run on the same output folder fails at once with
`ConfigurationError` instead of submitting the same files again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from ._exceptions import ConfigurationError

__all__ = ["JOURNAL_NAME", "SCHEMA_VERSION", "Entry", "Journal", "State", "journal_path"]

#: The journal's file name inside the output folder.
JOURNAL_NAME: Final = ".aioupstage-ocr-journal.sqlite3"
#: Stored in `PRAGMA user_version`; a journal of another version is refused.
SCHEMA_VERSION: Final = 1

# At most this many operations share one transaction.
_MAX_BATCH = 1024
# How long opening waits for a lock held by another connection, in seconds.
_BUSY_TIMEOUT = 1.0

_T = TypeVar("_T")


class State(StrEnum):
    """Where an input stands."""

    PENDING = "pending"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    DONE = "done"
    FAILED = "failed"


_SCHEMA = """
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

_COLUMNS = (
    "path, state, size, mtime_ns, sha256, route, request_id, output, pages, "
    "error_type, error_message, updated_at"
)

# Paths are stored as the file system's bytes, so any name survives the trip.
_encode = os.fsencode


def journal_path(out_dir: str | os.PathLike[str]) -> Path:
    """Where the journal of an output folder lives."""
    return Path(os.path.abspath(out_dir)) / JOURNAL_NAME


@dataclass(frozen=True, slots=True)
class Entry:
    """One input's row."""

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
        )


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


class Journal:
    """The journal at `path` (see `journal_path`); use `async with` or `open`/`close`.

    `fresh=True` (for `--no-resume`) starts from an empty journal, also
    replacing a file that is not a journal this version can read.
    """

    def __init__(self, path: str | os.PathLike[str], *, fresh: bool = False) -> None:
        self.path = Path(os.path.abspath(path))
        self.fresh = fresh
        #: Transactions committed so far; many records share one (group commit).
        self.commits = 0
        self._queue: queue.SimpleQueue[_Op | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

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
        """Open (creating folder and file as needed) and lock the journal.

        Raises `ConfigurationError` when another run holds it, or when the file
        is not a journal this version can read (and `fresh` is false).
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
        """Finish every queued operation, then close the file. Safe to call twice."""
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
                "SELECT request_id FROM inputs WHERE request_id IS NOT NULL AND updated_at >= ?",
                (since,),
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
        """Rows `submitted` (poll their request id) or `submitting` (look for it first)."""
        where = "WHERE state IN ('submitting', 'submitted') ORDER BY updated_at"
        return await self._call(lambda conn: _all(conn, where, ()))

    async def counts(self) -> dict[State, int]:
        """How many rows are in each state (every state present, zero or not)."""

        def run(conn: sqlite3.Connection) -> dict[State, int]:
            found = dict(conn.execute("SELECT state, count(*) FROM inputs GROUP BY state"))
            return {state: int(found.get(state.value, 0)) for state in State}

        return await self._call(run)

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
        run's `lookup` can match without hashing again.
        """
        await self._upsert(
            path,
            State.SUBMITTING,
            size=size,
            mtime_ns=mtime_ns,
            sha256=sha256,
            route=route,
            clear=True,
            durable=True,
        )

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
        """`path`'s result is written at `output`.

        The keyword fields, when given, replace the stored ones (for an input
        whose result was taken from an identical file's).
        """
        await self._upsert(
            path,
            State.DONE,
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
        """`path` failed; the request id, if any, is kept."""
        await self._upsert(
            path,
            State.FAILED,
            size=size,
            mtime_ns=mtime_ns,
            sha256=sha256,
            error_type=error_type,
            error_message=message,
        )

    async def reset(self) -> None:
        """Forget every row (`--no-resume`); returns once that is on disk."""
        await self._call(lambda conn: conn.execute("DELETE FROM inputs"), durable=True)

    async def _upsert(
        self,
        path: str | os.PathLike[str],
        state: State,
        *,
        clear: bool = False,
        durable: bool = False,
        **fields: object,
    ) -> None:
        """Insert or update the row of `path`: `state`, plus every field given as not None.

        `clear` empties route, request id, output, pages and error first.
        """
        key = _key(path)
        given = {name: value for name, value in fields.items() if value is not None}
        if state is not State.FAILED:
            given.setdefault("error_type", None)
            given.setdefault("error_message", None)
        if clear:
            for name in ("route", "request_id", "output", "pages"):
                given.setdefault(name, None)
        names = ["state", *given, "updated_at"]
        values = [state.value, *given.values(), time.time()]
        sql = (
            f"INSERT INTO inputs (path, {', '.join(names)}) "  # noqa: S608 - names are ours
            f"VALUES (?{', ?' * len(names)}) ON CONFLICT (path) DO UPDATE SET "
            + ", ".join(f"{name} = excluded.{name}" for name in names)
        )
        await self._call(lambda conn: conn.execute(sql, (key, *values)), durable=durable)

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
                item = self._queue.get()
                while True:
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
                if batch:
                    self._run_batch(conn, batch)
        finally:
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
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT, isolation_level=None)
        try:
            conn.execute("PRAGMA locking_mode = EXCLUSIVE")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ConfigurationError(f"{self.path}: cannot use WAL mode here (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")  # for the schema and a fresh start
            conn.execute("BEGIN EXCLUSIVE")  # takes the lock now, held until close
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:  # a new file: the schema, in the same transaction
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{self.path}: journal schema version {version}, this version reads "
                    f"{SCHEMA_VERSION}; run with --no-resume or choose another output folder"
                )
            if self.fresh:
                conn.execute("DELETE FROM inputs")
            conn.execute("COMMIT")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.OperationalError as exc:
            conn.close()
            if exc.sqlite_errorname == "SQLITE_BUSY":
                raise ConfigurationError(
                    f"{self.path}: journal in use by another run on the same output folder"
                ) from exc
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

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        durable = any(op.durable for op in batch)
        results: list[tuple[_Op, object]] = []
        try:
            if durable:
                conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
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
