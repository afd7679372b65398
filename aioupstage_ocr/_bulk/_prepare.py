"""Preflight in batches: several queued documents per trip to a worker thread.

Small local images and plain PDFs are prepared on the event loop instead (`prepare_inline`).
"""

from __future__ import annotations

import os

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from .._config import DocumentLimits
from .._pages import PageRanges
from .._preflight import Mode, PreparedDocument, prepare, prepare_inline
from ._jobs import Job

__all__ = ["BATCH", "next_batch", "prepare_batch"]

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


async def prepare_batch(
    batch: list[Job], mode: Mode, limits: DocumentLimits, pages: PageRanges | None = None
) -> list[PreparedDocument | Exception]:
    """Each of `batch` prepared, or its error, in its order: small images and plain PDFs
    here (`prepare_inline`), the rest in one trip to a worker thread."""
    here = [_outcome(job, mode, limits, pages, inline=True) for job in batch]
    rest = [job for job, done in zip(batch, here, strict=True) if done is None]
    threaded = iter(
        await anyio.to_thread.run_sync(_prepare_all, rest, mode, limits, pages) if rest else ()
    )
    return [next(threaded) if done is None else done for done in here]


def _prepare_all(
    batch: list[Job], mode: Mode, limits: DocumentLimits, pages: PageRanges | None = None
) -> list[PreparedDocument | Exception]:
    """`prepare` each document, or its error (blocking: runs in a worker thread)."""
    outcomes: list[PreparedDocument | Exception] = []
    for job in batch:
        outcome = _outcome(job, mode, limits, pages)
        assert outcome is not None
        outcomes.append(outcome)
    return outcomes


def _outcome(
    job: Job, mode: Mode, limits: DocumentLimits, pages: PageRanges | None, *, inline: bool = False
) -> PreparedDocument | Exception | None:
    """`job`'s document prepared, or its error; with `inline`, None for one that is not
    cheap enough for the event loop (`prepare_inline`)."""
    source = job.source
    named = isinstance(source, str | os.PathLike) or isinstance(getattr(source, "name", None), str)
    how = prepare_inline if inline else prepare
    try:
        return how(
            source, filename=None if named else job.name, mode=mode, limits=limits, pages=pages
        )
    except Exception as exc:  # noqa: BLE001 - each document's error is its own item
        return exc
