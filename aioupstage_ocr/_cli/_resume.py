"""What the `ocr` command's journal says about an input, and the start-up check.

The journal is `DIR/.aioupstage-ocr-journal.sqlite3` (see `_journal`).

1. Rows left `submitting` without a request id (the run stopped between
   the journal write and the service's answer) are settled before anything
   else is done with them (`settle_submitting`): on start, every one no live
   run holds; during the run, those met when a stopped run's input is taken
   over (with every other such row at that moment):
   - sync route: sent again. A sync request leaves nothing at the service to
     look up, so sending it again is the only way to a result; the most it can
     cost is one document's pages once more (the client's own rule for a sync
     call that dropped).
   - async route: the service's request list is read and matched by
     `_reconcile`, as the client's `SubmitLedger` does for an ambiguous submit.
     Requests the journal does not know, created in a row's time window
     (`AsyncUpstageOCR.submit_window`: its journal write, plus the longest a
     submit can take, widened by the margin for clock skew), with the row's
     page count where both are known, are its candidates. A candidate that
     fits exactly one row, for a row with exactly one candidate, is adopted
     (`submitted` with that id, then polled); a row with none is sent again
     (nothing was created); a row with several stays `submitting` and its
     input fails with `AmbiguousSubmitError` naming the candidates, rather
     than pay twice. Submits still waiting for their answer, in this run or
     another live one on the folder, compete for the same new requests: a
     request that fits one of them is never adopted; a row whose candidates
     include one is checked again a moment later (`Unresolved.deferred`).
2. Each input is hashed as it is found (`_discovery`), then looked up by
   path, size and mtime, else by its hash (the same file with another mtime,
   or an identical file elsewhere). Then:
   - done, output present (looked for again when discovery did not see it:
     another run on the folder may have written it since): `skipped` (its
     path is printed again); an identical file's output, or this file's under
     another name, is copied: `ok` (`already_done`);
   - submitted (or done without its output, or failed on the way back with a
     request id and not by the service's verdict): polled and fetched with
     `Resume`, never submitted again (results live 30 days at the service)
     (`request_to_poll`);
   - anything else: submitted.
3. A document sent in parts has a row per part too (`Journal.part`): before
   each part is sent, `settle_part` says whether an earlier run already has
   its request (`submitted`: waited for, not sent), left it `submitting` on
   the async route (looked for in the request list as in 1.; several
   candidates: the document fails with `AmbiguousSubmitError`), or never sent
   it (or only sync): it is sent.
4. `before_submit` writes `submitting` (durable) before each request,
   `after_submit` writes `submitted` with the id (durable); `done` is written
   after the output is on disk (atomic write), `failed` with the error. So a
   crash at any instant loses nothing and pays for nothing twice.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import anyio

from .. import _reconcile
from .._client import AsyncUpstageOCR
from .._config import DocumentLimits
from .._exceptions import (
    AmbiguousSubmitError,
    APIError,
    DocumentError,
    ResponseValidationError,
    UpstageOCRError,
)
from .._journal import Entry, Journal, PartEntry, State
from .._pages import parse_pages
from .._preflight import prepare
from .._reconcile import Window
from .._report import ReportRow
from . import _remote
from ._discovery import Seen

__all__ = [
    "Unresolved",
    "already_done",
    "cut_off",
    "kept",
    "request_to_poll",
    "settle_part",
    "settle_submitting",
]

logger = logging.getLogger("aioupstage_ocr")

# Errors that are the service's verdict on a request: it is sent again, not polled.
_VERDICTS = frozenset({"RequestFailedError", "BatchFailedError", "IncompleteResultError"})


@dataclass(slots=True)
class Unresolved:
    """What `settle_submitting` decided for `submitting` rows without a request id.

    `resend`: nothing was created; each row's `updated_at` as checked (a row
    written since, by a run that stopped in turn, is checked again).
    `deferred`: a request that could be its is as likely a submit still
    waiting for its answer: checked again in a moment.
    """

    adopted: dict[str, str] = field(default_factory=dict)
    ambiguous: dict[str, AmbiguousSubmitError] = field(default_factory=dict)
    resend: dict[str, float] = field(default_factory=dict)
    deferred: set[str] = field(default_factory=set)

    def update(self, other: Unresolved) -> None:
        """Take in a later decision (it replaces a deferral)."""
        self.adopted.update(other.adopted)
        self.ambiguous.update(other.ambiguous)
        self.resend.update(other.resend)
        self.deferred -= set(other.adopted) | set(other.ambiguous) | set(other.resend)
        self.deferred |= other.deferred


def cut_off(row: Entry) -> bool:
    """An async submit that stopped before its answer: the request may or may not exist."""
    return row.state is State.SUBMITTING and row.request_id is None and row.route == "async"


async def settle_submitting(
    client: AsyncUpstageOCR, journal: Journal, limits: DocumentLimits, rows: list[Entry]
) -> Unresolved:
    """Decide the `submitting` rows without a request id this run holds (module docstring)."""
    decided = Unresolved()
    rows = [row for row in rows if cut_off(row)]
    if not rows:
        return decided
    ours = {os.fspath(row.path) for row in rows}
    others = [  # submits waiting for their answer: competitors for the same requests
        row
        for row in await journal.in_flight()
        if row.route == "async" and os.fspath(row.path) not in ours
    ]
    try:
        listed = await client.list_requests()
    except (APIError, ResponseValidationError) as exc:
        for row in rows:
            decided.ambiguous[os.fspath(row.path)] = AmbiguousSubmitError(
                os.fspath(row.path),
                "a submit may have reached the service before the last run stopped, and "
                f"the request list that would tell could not be read ({exc}); not sending "
                "it again (that could pay twice); run again later",
            )
        return decided
    # A row's window opens at its journal write (just before the submit) and
    # lasts as long as a submit can take with its retries.
    everyone = rows + others
    windows = {os.fspath(row.path): client.submit_window(row.updated_at) for row in everyone}
    earliest = min(windows.values(), key=lambda window: window.low)
    span = earliest.high - earliest.low
    known = await journal.request_ids(
        min(row.updated_at for row in everyone) - _reconcile.MARGIN_BLIND - span
    )
    ids = set(_reconcile.candidates(listed, Window(earliest.low, math.inf), known))
    candidates = [summary for summary in listed if summary.id in ids]
    pages = await _reconcile.request_pages(client.get_request, candidates)
    # The rows' own page counts, read from their files in one trip to a worker thread.
    row_pages = await anyio.to_thread.run_sync(
        lambda: {os.fspath(row.path): _pages_of(row, limits) for row in everyone}
    )
    fits: dict[str, set[str]] = {}
    for row in everyone:
        key = os.fspath(row.path)
        fits[key] = {
            summary.id
            for summary in candidates
            if windows[key].holds(summary)
            and _reconcile.pages_fit(row_pages[key], pages.get(summary.id))
        }
    competing: set[str] = set().union(*(fits[os.fspath(row.path)] for row in others))
    adopted, left_over = _reconcile.pair(fits)
    for key, request_id in adopted.items():
        if key not in ours:
            continue  # another submit's, recorded when its answer comes
        await journal.record_submitted(key, request_id)
        decided.adopted[key] = request_id
        logger.warning(
            "%s: the last run stopped while submitting it; request %s, the only new "
            "request that fits, is taken as its own and fetched",
            key,
            request_id,
        )
    updated = {os.fspath(row.path): row.updated_at for row in rows}
    for key, left in left_over.items():
        if key not in ours:
            continue
        if not left:
            decided.resend[key] = updated[key]  # nothing was created for it: sent again
        elif left & competing:
            decided.deferred.add(key)
        else:
            decided.ambiguous[key] = AmbiguousSubmitError(
                key,
                "a submit may have reached the service before the last run stopped; "
                f"{len(left)} request(s) could be it ({', '.join(sorted(left))}); not "
                "sending it again (that could pay twice): fetch the right one with "
                "`aioupstage-ocr fetch REQUEST_ID -o FILE`, or run with --no-resume",
                candidates=tuple(sorted(left)),
            )
    return decided


def _pages_of(row: Entry, limits: DocumentLimits) -> int | None:
    """The page count of a row's file, when it still has the content recorded."""
    try:
        prepared = prepare(_remote.document_of(os.fspath(row.path)), mode="async", limits=limits)
    except (DocumentError, OSError, ValueError):
        return None
    return prepared.pages if prepared.sha256 == row.sha256 else None


async def settle_part(client: AsyncUpstageOCR, journal: Journal, row: PartEntry) -> str | None:
    """The request id an earlier run has for one part, or None to send it (see the docstring).

    Call one at a time (the caller holds a lock): an id adopted here is in the
    journal before the next part's candidates are read.
    """
    if row.state is State.SUBMITTED and row.request_id is not None:
        return row.request_id
    if row.route != "async":
        return None  # a sync call leaves nothing to look up: sent again
    name = f"{os.fspath(row.path)} (pages {row.pages})"
    try:
        listed = await client.list_requests()
    except (APIError, ResponseValidationError) as exc:
        raise AmbiguousSubmitError(
            name,
            "this part's submit may have reached the service before the last run stopped, "
            f"and the request list that would tell could not be read ({exc}); not sending it "
            "again (that could pay twice); run again later",
        ) from exc
    window = client.submit_window(row.updated_at)
    known = await journal.request_ids(window.low - _reconcile.MARGIN_BLIND)
    found = [
        summary
        for summary in listed
        if summary.id in set(_reconcile.candidates(listed, window, known))
    ]
    pages = await _reconcile.request_pages(client.get_request, found)
    count = sum((end or start) - start + 1 for start, end in parse_pages(row.pages))
    fits = sorted(rid for rid, total in pages.items() if _reconcile.pages_fit(count, total))
    if not fits:
        return None  # nothing was created for it: sent again
    if len(fits) == 1:
        await journal.record_part_submitted(row.path, row.sha256, fits[0])
        logger.warning(
            "%s: the last run stopped while submitting this part; request %s, the only new "
            "request that fits, is taken as its own and fetched",
            name,
            fits[0],
        )
        return fits[0]
    raise AmbiguousSubmitError(
        name,
        "this part's submit may have reached the service before the last run stopped; "
        f"{len(fits)} request(s) could be it ({', '.join(fits)}); not sending it again "
        "(that could pay twice); run with --no-resume to send the document again",
        candidates=tuple(fits),
    )


def request_to_poll(entry: Entry) -> str | None:
    """The request id to poll instead of submitting, if the row has one worth polling."""
    if entry.request_id is None:
        return None
    if entry.state in (State.SUBMITTED, State.DONE):
        return entry.request_id
    if entry.state is State.FAILED and entry.error_type not in _VERDICTS:
        return entry.request_id
    return None


async def kept(journal: Journal, key: str, seen: Seen, entry: Entry) -> ReportRow | None:
    """The `skipped` row of an input whose own row is done with its output in place, else None.

    Needs no claim: whoever holds the input, its result is there.
    """
    if entry.state is not State.DONE or entry.output is None or entry.output != seen.output:
        return None
    if not seen.output_exists:
        # Another run on the folder may have written it since discovery looked.
        seen.output_exists = await anyio.to_thread.run_sync(_remote.exists, entry.output)
        if not seen.output_exists:
            return None
    if (entry.size, entry.mtime_ns) != (seen.size, seen.mtime_ns):
        await journal.record_done(
            key, entry.output, entry.pages or 0, size=seen.size, mtime_ns=seen.mtime_ns
        )
    return ReportRow(
        key,
        "skipped",
        output=os.fspath(entry.output),
        pages=entry.pages,
        mode=entry.route,
        request_id=entry.request_id,
    )


async def already_done(
    journal: Journal, key: str, seen: Seen, entry: Entry, sha256: str | None, *, own: bool
) -> ReportRow | None:
    """The row of an input whose content is already done (`skipped`, or copied: `ok`).

    None when it is not done, or its output is gone: then it is fetched or sent.
    `own`: `entry` is this path's own row (not an identical file's).
    """
    if entry.state is not State.DONE or entry.output is None:
        return None
    assert seen.output is not None
    if own:
        row = await kept(journal, key, seen, entry)
        if row is not None:
            return row
    if entry.output == seen.output:
        return None  # our own output is gone: fetch again or submit
    try:
        written = await anyio.to_thread.run_sync(_remote.copy_output, entry.output, seen.output)
    except (OSError, UpstageOCRError):
        return None  # the other output is gone or unreadable: do the work
    await journal.record_done(
        key,
        written,
        entry.pages or 0,
        size=seen.size,
        mtime_ns=seen.mtime_ns,
        sha256=sha256 or entry.sha256,
        route=entry.route,
        request_id=entry.request_id,
    )
    return ReportRow(
        key,
        "ok",
        output=os.fspath(written),
        pages=entry.pages,
        mode=entry.route,
        request_id=entry.request_id,
    )
