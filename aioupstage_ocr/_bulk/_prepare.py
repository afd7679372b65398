"""Preflight in batches: several queued documents per trip to a worker thread."""

from __future__ import annotations

import os

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from .._config import DocumentLimits
from .._pages import PageRanges
from .._preflight import Mode, PreparedDocument, prepare
from ._jobs import Job

__all__ = ["BATCH", "next_batch", "prepare_all"]

#: Documents prepared per trip to a worker thread: a trip costs more CPU than
#: preparing a small image.
BATCH = 8


def next_batch(first: Job, jobs: MemoryObjectReceiveStream[Job]) -> list[Job]:
    """`first` and whatever else is queued already, up to `BATCH`."""
    batch = [first]
    while len(batch) < BATCH:
        try:
            batch.append(jobs.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return batch


def prepare_all(
    batch: list[Job], mode: Mode, limits: DocumentLimits, pages: PageRanges | None = None
) -> list[PreparedDocument | Exception]:
    """`prepare` each document, or its error (blocking: runs in a worker thread)."""
    outcomes: list[PreparedDocument | Exception] = []
    for job in batch:
        source = job.source
        named = isinstance(source, str | os.PathLike) or isinstance(
            getattr(source, "name", None), str
        )
        try:
            outcomes.append(
                prepare(
                    source,
                    filename=None if named else job.name,
                    mode=mode,
                    limits=limits,
                    pages=pages,
                )
            )
        except Exception as exc:  # noqa: BLE001 - each document's error is its own item
            outcomes.append(exc)
    return outcomes
