"""`OCRStage`: the callable class Ray Data runs in each actor; `ocr_dataset` wires it up."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any

import anyio
import pyarrow as pa
import ray.data

from .. import _reconcile, _storage
from .._bulk import Resume, Submission
from .._client import AsyncUpstageOCR
from .._config import (
    DEFAULT_DOCUMENT_LIMITS,
    DEFAULT_LIMITS,
    DEFAULT_MODEL,
    DEFAULT_POLLING,
    DEFAULT_RATE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUTS,
    DocumentLimits,
    Limits,
    Polling,
    RateLimit,
    Retries,
    Timeouts,
    resolve_api_key,
    resolve_base_url,
)
from .._exceptions import AmbiguousSubmitError, ConfigurationError
from .._models import OCRResult, parse_result
from .._preflight import Document, Mode, prepare
from ._budget import Budget, ClusterPacer, Grant, LeaseRequest, before_send, cluster_budget
from ._ledger import Entry, Ledger, content_hash

__all__ = ["OUTPUT_SCHEMA", "OCRStage", "list_documents", "ocr_dataset"]

logger = logging.getLogger("aioupstage_ocr")

#: The columns every batch comes out with (`output` is null without `output=`).
OUTPUT_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("status", pa.string()),
        ("pages", pa.int32()),
        ("request_id", pa.string()),
        ("text", pa.large_string()),
        ("result", pa.large_string()),
        ("error", pa.string()),
        ("output", pa.string()),
    ]
)

#: `ocr_dataset`'s defaults: actors, documents per batch, CPUs each actor holds
#: (it waits on the network, so four fit on one core), and batches an actor runs
#: at once (Ray Data's default is one: an actor would wait for each batch's
#: slowest document before starting the next).
DEFAULT_CONCURRENCY = 4
DEFAULT_BATCH_SIZE = 16
DEFAULT_ACTOR_CPUS = 0.25
DEFAULT_BATCHES_PER_ACTOR = 4
#: The ledger's folder under the output prefix, by default.
LEDGER_FOLDER = ".aioupstage-ocr-ledger"
#: Seconds after a `sending` entry's window closed before the request list
#: settles it: a request its dead attempt made shows by then, and live
#: actors' submits in the window have claimed their ids (`_ledger`).
SETTLE = _reconcile.MARGIN


def _hash(document: Document | None) -> str:
    if isinstance(document, str):
        with open(document, "rb") as file:
            return content_hash(file)
    assert isinstance(document, bytes) or hasattr(document, "read")
    return content_hash(document)  # type: ignore[arg-type]


def _pages_of(row: _Row) -> int | None:
    """A row's page count, when preflight can tell (a file object is rewound after)."""
    document = row.document
    if document is None:
        return None
    try:
        return prepare(document, filename=row.path, mode="async").pages
    except Exception:  # noqa: BLE001 - unknown: the window alone decides
        return None
    finally:
        if hasattr(document, "seek"):
            document.seek(0)


def _server_now(client: AsyncUpstageOCR) -> float:
    """Now on the service's clock, as the client's `Date` headers tell."""
    now = client.submit_window(time.time(), time.time())
    return (now.low + now.high) / 2


def _claims(ledger: Ledger, request_ids: list[str]) -> dict[str, str | None]:
    """Each request id's owner in the ledger (a content hash), or None."""
    return {request_id: ledger.claim_of(request_id) for request_id in request_ids}


def list_documents(prefix: str) -> Iterator[str]:
    """The documents under a prefix (URL or local folder), streamed, by supported extension."""
    return _storage.iter_prefix(prefix)


@dataclass(slots=True)
class _Row:
    """One input row and what became of it."""

    path: str
    document: Document | None = None
    status: str = "failed"
    pages: int | None = None
    request_id: str | None = None
    text: str | None = None
    result: str | None = None
    error: str | None = None
    output: str | None = None
    opened: list[IO[bytes]] = field(default_factory=list)
    sha256: str | None = None
    entry: Entry | None = None  # what the ledger knew before this attempt
    resume: str | None = None  # an open request id to wait for instead of sending
    skipped: bool = False  # done by an earlier attempt: its output was read back

    def fail(self, exc: BaseException) -> None:
        self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"

    def succeed(self, result: OCRResult, body: bytes, request_id: str | None) -> None:
        self.status, self.error = "ok", None
        self.pages, self.request_id = result.num_pages, request_id
        self.text, self.result = result.text, body.decode("utf-8")


class OCRStage:
    """OCR each row of a batch; for `ds.map_batches(OCRStage, fn_constructor_kwargs={...})`.

    ```python
    ds.map_batches(
        OCRStage,
        fn_constructor_kwargs={"output": "s3://bucket/ocr", "rate": RateLimit(rps=20)},
        concurrency=4,
        batch_size=16,
    )
    ```

    Settings are the client's (`api_key`, default `UPSTAGE_API_KEY` in the
    actor's environment; `base_url`, `model`, `timeouts`, `limits`, `retries`,
    `rate`, `document_limits`, `polling`) and:

    - `mode`: `"auto"` | `"sync"` | `"async"`, as for `ocr`.
    - `output`: a prefix (URL or folder) where each result is written whole, at
      the input's key under `input_prefix` mirrored under it
      (`_storage.output_url`); the row's `output` column is that URL.
    - `input_prefix`: what input keys are taken relative to (default: none, so
      an output mirrors the input's whole `bucket/key`).
    - `shared_budget` (default True): on a Ray cluster, every actor's client
      paces with one budget actor for this key and model (`_budget`): the
      `rate` given is the account's, for the whole cluster. False: each actor
      paces alone at `rate`.
    - `ledger` (default True: `<output>/.aioupstage-ocr-ledger` when `output`
      is given): where each document's progress is recorded by content hash,
      so a batch Ray runs again never pays twice (`_ledger`); a URL or folder
      to put it elsewhere; False for none.

    The client is created on the first batch, in the actor's event loop, and
    serves every later batch, several at once on that loop when the pool lets
    an actor run several calls (`ActorPoolStrategy(max_concurrent_calls_per_actor=4)`,
    as `ocr_dataset` sets; Ray Data's default is one).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        mode: Mode = "auto",
        output: str | None = None,
        input_prefix: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        limits: Limits = DEFAULT_LIMITS,
        retries: Retries = DEFAULT_RETRIES,
        rate: RateLimit = DEFAULT_RATE,
        document_limits: DocumentLimits = DEFAULT_DOCUMENT_LIMITS,
        polling: Polling = DEFAULT_POLLING,
        shared_budget: bool = True,
        ledger: str | bool = True,
    ) -> None:
        if mode not in ("auto", "sync", "async"):
            raise ConfigurationError(f"mode must be 'auto', 'sync' or 'async', got {mode!r}")
        self._client_settings: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "model": model,
            "timeouts": timeouts,
            "limits": limits,
            "retries": retries,
            "rate": rate,
            "document_limits": document_limits,
            "polling": polling,
        }
        self._mode: Mode = mode
        self._output = output
        self._input_prefix = input_prefix or ""
        self._shared_budget = shared_budget
        root = ledger if isinstance(ledger, str) else None
        if ledger is True and output is not None:
            root = _storage.join(output, LEDGER_FOLDER)
        self._ledger = Ledger(root) if root is not None else None
        self._client: AsyncUpstageOCR | None = None
        #: The budget actor's handle, when this stage paces with the cluster.
        self.budget: Any = None

    def __repr__(self) -> str:  # never the key
        return f"OCRStage(mode={self._mode!r}, output={self._output!r})"

    def _get_client(self) -> AsyncUpstageOCR:
        # Created in the running loop (the actor's), on first use; no await
        # between the test and the assignment, so concurrent batches share one.
        if self._client is None:
            settings = dict(self._client_settings)
            settings["pacer"] = self._pacer()
            self._client = AsyncUpstageOCR(**settings)
        return self._client

    def _pacer(self) -> ClusterPacer:
        """A pacer leasing from the budget actor of this key and model (made if missing).

        Without a cluster, or with `shared_budget=False`, the budget is this
        actor's own: the same pacing, at `rate` for this actor alone.
        """
        settings = self._client_settings
        retries: Retries = settings["retries"]
        holder = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        if not (self._shared_budget and ray.is_initialized()):
            own = Budget(settings["rate"], max_pause=retries.retry_after_max)

            async def own_lease(request: LeaseRequest) -> Grant:
                return own.lease(request)

            return ClusterPacer(own_lease, holder=holder, max_pause=retries.retry_after_max)
        self.budget = cluster_budget(
            api_key=resolve_api_key(settings["api_key"]),
            model=settings["model"],
            base_url=resolve_base_url(settings["base_url"]),
            rate=settings["rate"],
            max_pause=retries.retry_after_max,
            detached=True,  # outlives this actor; `ocr_dataset` makes a job-scoped one first
        )
        budget = self.budget
        with contextlib.suppress(RuntimeError):  # not in an actor (a stage called directly)
            budget.join.remote(holder, ray.get_runtime_context().current_actor)

        async def lease(request: LeaseRequest) -> Grant:
            grant: Grant = await budget.lease.remote(request)
            return grant

        return ClusterPacer(lease, holder=holder, max_pause=retries.retry_after_max)

    async def aclose(self) -> None:
        """Close this stage's client (an actor that ends needs not: its process goes)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __call__(self, batch: Any) -> pa.Table:
        """OCR the batch's documents at once; one output row per input row, in order."""
        rows = [_Row(path=path, document=document) for path, document in _inputs(batch)]
        client = self._get_client()
        try:
            async with anyio.create_task_group() as group:
                for row in rows:
                    if row.document is None:
                        group.start_soon(self._load, row)
            await self._ocr(client, rows)
        finally:
            for row in rows:
                for handle in row.opened:
                    handle.close()
        return _table(rows)

    async def _load(self, row: _Row) -> None:
        """Open a `path` row's document: a local path as is, a URL read in a worker thread."""
        if not _storage.is_url(row.path):
            row.document = row.path
            return
        try:
            opened = await anyio.to_thread.run_sync(_storage.open_document, row.path)
        except Exception as exc:  # noqa: BLE001 - one document's problem is its own row
            row.fail(exc)
            return
        row.document = _named(opened, row.path)
        if not isinstance(opened, bytes):
            row.opened.append(opened)

    async def _ocr(self, client: AsyncUpstageOCR, rows: Sequence[_Row]) -> None:
        todo = [row for row in rows if row.document is not None and row.error is None]
        if self._ledger is not None and todo:
            todo = await self._consult(client, todo)
        if not todo:
            return
        items: list[Document | Resume] = []
        for row in todo:
            assert row.document is not None
            items.append(Resume(row.document, row.resume) if row.resume else row.document)
        async with (
            client.ocr_many(
                items,
                mode=self._mode,
                before_submit=self._before_submit if self._ledger is not None else None,
                after_submit=self._after_submit if self._ledger is not None else None,
            ) as run,
            anyio.create_task_group() as writes,
        ):
            async for item in run:
                row = todo[item.index]
                if row.sha256 is None:
                    row.sha256 = item.sha256
                if item.result is None:
                    assert item.error is not None
                    row.fail(item.error)
                    row.request_id = item.request_id or row.resume
                    continue
                # Outputs are written while the rest of the batch goes on.
                writes.start_soon(self._finish, row, item.result, item.request_id or row.resume)

    async def _finish(self, row: _Row, result: OCRResult, request_id: str | None) -> None:
        """Write the output (whole), then mark the document done in the ledger."""
        body = result.to_json()
        if self._output is not None:
            try:
                row.output = await self._write(row.path, body)
            except Exception as exc:  # noqa: BLE001 - its own row
                row.fail(exc)
                return
        if self._ledger is not None and row.sha256 is not None:
            try:
                await anyio.to_thread.run_sync(
                    partial(
                        self._ledger.done,
                        row.sha256,
                        output=row.output,
                        request_id=request_id,
                        name=row.path,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - the result stands; the next run redoes it
                logger.warning("%s: the ledger could not record it as done: %s", row.path, exc)
        row.succeed(result, body, request_id)

    # ------------------------------------------------------------------ the ledger

    async def _consult(self, client: AsyncUpstageOCR, rows: list[_Row]) -> list[_Row]:
        """Look each document up in the ledger; the rows still to send or wait for."""
        assert self._ledger is not None
        ledger = self._ledger

        async def look(row: _Row) -> None:
            try:
                row.sha256 = await anyio.to_thread.run_sync(_hash, row.document)
                row.entry = await anyio.to_thread.run_sync(ledger.read, row.sha256)
            except Exception as exc:  # noqa: BLE001 - its own row
                row.fail(exc)
                return
            entry = row.entry
            if entry is None:
                return
            if entry.state == "done" and entry.output is not None:
                try:
                    body = await anyio.to_thread.run_sync(_storage.read_bytes, entry.output)
                    result = parse_result(body, source=entry.output)
                except Exception:  # noqa: BLE001 - gone or unreadable: do it again
                    logger.info("%s: its recorded output is gone; redoing it", row.path)
                else:
                    row.output = entry.output
                    row.succeed(result, body, entry.request_id)
                    row.skipped = True
                    return
            if entry.request_id is not None:  # submitted (or done without output): wait
                row.resume = entry.request_id

        async with anyio.create_task_group() as group:
            for row in rows:
                group.start_soon(look, row)
        sending = [
            row
            for row in rows
            if row.error is None
            and not row.skipped
            and row.resume is None
            and row.entry is not None
            and row.entry.state == "sending"
            and row.entry.route == "async"
        ]
        if sending:
            await self._resolve(client, sending)
        return [row for row in rows if row.error is None and not row.skipped]

    async def _resolve(self, client: AsyncUpstageOCR, rows: list[_Row]) -> None:
        """Async submits that may have left before an actor died: adopt, resend, or refuse.

        The rules are `_reconcile`'s, as the command's resume applies them
        (`_cli._resume.settle_submitting`); the ledger's docstring says how.
        """
        assert self._ledger is not None
        ledger = self._ledger
        try:
            decided = await self._settle(client, rows)
        except Exception as exc:  # noqa: BLE001 - cannot tell: refuse rather than pay twice
            for row in rows:
                row.fail(
                    AmbiguousSubmitError(
                        row.path,
                        f"an earlier attempt may have submitted it, and the request list "
                        f"that would tell could not be read ({exc})",
                    )
                )
            return
        for row in rows:
            assert row.sha256 is not None
            outcome = decided.get(row.sha256)
            if outcome is None:
                logger.info("%s: recorded as sending, it never reached the service", row.path)
            elif isinstance(outcome, str):
                await anyio.to_thread.run_sync(
                    partial(ledger.submitted, row.sha256, outcome, name=row.path)
                )
                logger.warning("%s: adopting request %s of an earlier attempt", row.path, outcome)
                row.resume = outcome
            else:
                row.fail(
                    AmbiguousSubmitError(
                        row.path,
                        f"an earlier attempt may have submitted it; {len(outcome)} unclaimed "
                        f"request(s) in its window could be it; not sending it again (that "
                        f"could pay twice)",
                        candidates=tuple(sorted(outcome)),
                    )
                )

    async def _settle(self, client: AsyncUpstageOCR, rows: list[_Row]) -> dict[str, str | set[str]]:
        """Per row's hash: the request id to adopt, or the candidates left (absent: resend).

        A row's window (`submit_window`) runs from its `sending` entry to now:
        the attempt that wrote it is gone (Ray runs a batch again once its
        actor died), so it stamps no request after that. The list is read once
        the window closed `SETTLE` seconds ago on the server's clock: a
        request the dead attempt made shows by then, and a live actor's
        request in the window has been claimed, so it is no competitor.
        """
        assert self._ledger is not None
        ledger = self._ledger
        started = time.time()
        entries = {row.sha256: row.entry for row in rows if row.entry and row.sha256}
        await client.list_requests()  # its `Date` tells the server's clock, for the windows
        windows = {
            sha: client.submit_window(entry.at, max(entry.at, started))
            for sha, entry in entries.items()
        }
        low = min(window.low for window in windows.values())
        high = max(window.high for window in windows.values())
        await anyio.sleep(max(0.0, high + SETTLE - _server_now(client)))
        # The rows' page counts, in one trip to a worker thread.
        pages = await anyio.to_thread.run_sync(lambda: {row.sha256: _pages_of(row) for row in rows})
        listed = await client.list_requests()
        ids = set(_reconcile.candidates(listed, _reconcile.Window(low, high)))
        claims = await anyio.to_thread.run_sync(_claims, ledger, sorted(ids))
        # A request claimed for this very hash is its own (it died between claim and entry).
        decided: dict[str, str | set[str]] = {
            sha: request_id for request_id, sha in claims.items() if sha in entries
        }
        found = [summary for summary in listed if summary.id in ids and not claims[summary.id]]
        totals = await _reconcile.request_pages(client.get_request, found)
        fits = {
            sha: {
                summary.id
                for summary in found
                if windows[sha].holds(summary)
                and _reconcile.pages_fit(pages[sha], totals[summary.id])
            }
            for sha in entries
            if sha not in decided
        }
        adopted, left = _reconcile.pair(fits)
        decided.update(adopted)
        decided.update({sha: fit for sha, fit in left.items() if fit})
        return decided

    async def _before_submit(self, submission: Submission) -> None:
        assert self._ledger is not None
        ledger = self._ledger
        if submission.route == "sync":
            return  # a sync call leaves nothing to find: a retry sends it again either way

        async def record() -> None:
            await anyio.to_thread.run_sync(
                partial(
                    ledger.sending, submission.sha256, route=submission.route, name=submission.name
                )
            )

        before_send(record)

    async def _after_submit(self, submission: Submission) -> None:
        assert self._ledger is not None
        assert submission.request_id is not None
        await anyio.to_thread.run_sync(
            partial(
                self._ledger.submitted,
                submission.sha256,
                submission.request_id,
                name=submission.name,
            )
        )

    async def _write(self, path: str, body: bytes) -> str:
        assert self._output is not None
        target = _storage.output_url(path, self._input_prefix, self._output)
        return await anyio.to_thread.run_sync(_storage.write_whole, target, body)


def _named(document: bytes | IO[bytes], name: str) -> Document:
    """A document that preflight and messages call `name` (a file object with `.name`)."""
    stream: IO[bytes] = io.BytesIO(document) if isinstance(document, bytes) else document
    with contextlib.suppress(AttributeError):  # a file object that cannot be renamed
        stream.name = name  # type: ignore[misc]
    return stream


def _columns(batch: Any) -> Mapping[str, Sequence[Any]]:
    if isinstance(batch, pa.Table):
        columns: dict[str, list[Any]] = batch.to_pydict()
        return columns
    to_dict = getattr(batch, "to_dict", None)
    if to_dict is not None and hasattr(batch, "columns"):  # pandas
        return to_dict("list")  # type: ignore[no-any-return]
    if isinstance(batch, Mapping):
        return {key: list(values) for key, values in batch.items()}
    raise TypeError(f"OCRStage takes a batch of columns, not {type(batch).__name__}")


def _inputs(batch: Any) -> Iterator[tuple[str, Document | None]]:
    """(path, document or None to load) per row, from `path`, or `bytes` with `name`/`path`."""
    columns = _columns(batch)
    if "bytes" in columns:
        names = columns.get("name", columns.get("path"))
        if names is None:
            raise ConfigurationError("a `bytes` column needs a `name` (or `path`) column beside it")
        for data, name in zip(columns["bytes"], names, strict=True):
            yield str(name), _named(bytes(data), str(name))
        return
    if "path" not in columns:
        raise ConfigurationError(
            f"OCRStage needs a `path` column, or `bytes` with `name`; got {sorted(columns)}"
        )
    for path in columns["path"]:
        yield str(path), None


def _table(rows: Sequence[_Row]) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "path": [row.path for row in rows],
            "status": [row.status for row in rows],
            "pages": [row.pages for row in rows],
            "request_id": [row.request_id for row in rows],
            "text": [row.text for row in rows],
            "result": [row.result for row in rows],
            "error": [row.error for row in rows],
            "output": [row.output for row in rows],
        },
        schema=OUTPUT_SCHEMA,
    )


def ocr_dataset(
    ds: ray.data.Dataset,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_cpus: float = DEFAULT_ACTOR_CPUS,
    batches_per_actor: int = DEFAULT_BATCHES_PER_ACTOR,
    **settings: Any,
) -> ray.data.Dataset:
    """`ds` with every document OCRed: `map_batches(OCRStage, ...)` with sensible defaults.

    `concurrency` actors (4), `batch_size` documents a batch (16), each actor
    holding `num_cpus` (0.25: it mostly waits on the network) and running
    `batches_per_actor` batches at once on its event loop (4: one client serves
    them all, so a batch's slowest document does not hold up the next). `settings`
    go to `OCRStage`. The cluster's budget actor is made here, on the driver, so it
    lives as long as the job (unless `shared_budget=False`).
    """
    if settings.get("shared_budget", True):
        rate: RateLimit = settings.get("rate", DEFAULT_RATE)
        retries: Retries = settings.get("retries", DEFAULT_RETRIES)
        cluster_budget(
            api_key=resolve_api_key(settings.get("api_key")),
            model=settings.get("model", DEFAULT_MODEL),
            base_url=resolve_base_url(settings.get("base_url")),
            rate=rate,
            max_pause=retries.retry_after_max,
        )
    return ds.map_batches(
        OCRStage,
        fn_constructor_kwargs=settings,
        compute=ray.data.ActorPoolStrategy(
            size=concurrency,
            max_concurrent_calls_per_actor=batches_per_actor,
            max_tasks_in_flight_per_actor=2 * batches_per_actor,
        ),
        batch_size=batch_size,
        batch_format="pyarrow",
        num_cpus=num_cpus,
    )
