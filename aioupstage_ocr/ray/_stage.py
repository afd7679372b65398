"""`OCRStage`: the callable class Ray Data runs in each actor; `ocr_dataset` wires it up."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import anyio
import pyarrow as pa
import ray.data

from .. import _storage
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
from .._exceptions import ConfigurationError
from .._models import OCRResult
from .._preflight import Document, Mode
from ._budget import ClusterPacer, Grant, LeaseRequest, cluster_budget

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
#: (it waits on the network, so four fit on one core).
DEFAULT_CONCURRENCY = 4
DEFAULT_BATCH_SIZE = 16
DEFAULT_ACTOR_CPUS = 0.25


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

    The client is created on the first batch, in the actor's event loop, and
    serves every later batch (Ray runs several at once on that loop).
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
            if self._shared_budget and ray.is_initialized():
                settings["pacer"] = self._cluster_pacer()
            self._client = AsyncUpstageOCR(**settings)
        return self._client

    def _cluster_pacer(self) -> ClusterPacer:
        """A pacer leasing from the budget actor of this key and model (made if missing)."""
        settings = self._client_settings
        retries: Retries = settings["retries"]
        self.budget = cluster_budget(
            api_key=resolve_api_key(settings["api_key"]),
            model=settings["model"],
            base_url=resolve_base_url(settings["base_url"]),
            rate=settings["rate"],
            max_pause=retries.retry_after_max,
            detached=True,  # outlives this actor; `ocr_dataset` makes a job-scoped one first
        )
        budget = self.budget

        async def lease(request: LeaseRequest) -> Grant:
            grant: Grant = await budget.lease.remote(request)
            return grant

        holder = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
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
        if not todo:
            return
        documents: list[Document] = [row.document for row in todo if row.document is not None]
        async with client.ocr_many(documents, mode=self._mode) as run:
            async for item in run:
                row = todo[item.index]
                if item.result is None:
                    assert item.error is not None
                    row.fail(item.error)
                    row.request_id = item.request_id
                    continue
                body = item.result.to_json()
                if self._output is not None:
                    try:
                        row.output = await self._write(row.path, body)
                    except Exception as exc:  # noqa: BLE001 - its own row
                        row.fail(exc)
                        continue
                row.succeed(item.result, body, item.request_id)

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
    **settings: Any,
) -> ray.data.Dataset:
    """`ds` with every document OCRed: `map_batches(OCRStage, ...)` with sensible defaults.

    `concurrency` actors (4), `batch_size` documents a batch (16), each actor
    holding `num_cpus` (0.25: it mostly waits on the network). `settings` go to
    `OCRStage`. The cluster's budget actor is made here, on the driver, so it
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
        concurrency=concurrency,
        batch_size=batch_size,
        batch_format="pyarrow",
        num_cpus=num_cpus,
    )
