"""Sending one prepared document of a run: the key gate, the journal hooks, the engine."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from .._engine import Engine, Sent
from .._exceptions import UpstageOCRError
from .._preflight import Mode, PreparedDocument
from ._counters import Counters
from ._events import BulkEvent
from ._gate import KeyGate
from ._jobs import Job, RunStopped
from ._types import KnownHook, Submission, SubmitHook

__all__ = ["Sender"]


class Sender:
    """Sends a run's documents through `Engine.send`, counting and telling as it goes.

    `before_submit` is awaited right before each send (again when a sync
    time-out goes async), `after_submit` once an async request id is known;
    what they raise stops the run (`RunStopped`); `accepted` hears of each
    async request of a whole document before `after_submit` runs (it is paid
    for); `known_part` may give a part's request id from an earlier run
    (`known`). The `KeyGate` lets a few documents go until one answer shows
    the key works (`on_first` hears of the first, `key_valid` widens the
    wave); an error `fatal` says would hit them all keeps it shut.
    """

    __slots__ = (
        "_accepted",
        "_after",
        "_before",
        "_counters",
        "_engine",
        "_fatal",
        "_gate",
        "_known",
        "_mode",
        "_schema",
    )

    def __init__(
        self,
        engine: Engine,
        counters: Counters,
        *,
        mode: Mode,
        schema: str | None,
        before_submit: SubmitHook | None,
        after_submit: SubmitHook | None,
        fatal: Callable[[BaseException], bool],
        accepted: Callable[[Job], None],
        known_part: KnownHook | None = None,
        on_first: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._counters = counters
        self._mode: Mode = mode
        self._schema = schema
        self._before = before_submit
        self._after = after_submit
        self._fatal = fatal
        self._accepted = accepted
        self._known = known_part
        self._gate = KeyGate(on_first, proven=engine.key_proven)

    async def wait_open(self) -> None:
        """Wait until an answer showed the key works (no probe needed then)."""
        await self._gate.wait_open()

    def key_valid(self) -> None:
        """The key is known valid (a probe said): more documents may go before an answer."""
        self._gate.key_valid()

    async def send(self, job: Job, prepared: PreparedDocument) -> Sent:
        """Send `job`'s document; the sync result, or the async request id (on `job` too)."""
        counters = self._counters

        async def before_send(document: PreparedDocument) -> None:
            job.route = document.route
            await self._hook(self._before, job, document, None)
            if document.route == "sync":
                counters.stats.submitted_sync += 1
                if counters.hook is not None:
                    counters.event(BulkEvent("submitted", job.index, job.source, route="sync"))

        probe = await self._gate.enter()
        try:
            sent = await self._engine.send(
                prepared,
                mode=self._mode,
                schema=self._schema,
                before_send=before_send,
                on_retry=partial(counters.retrying, job),
            )
        except Exception as exc:
            if probe and not self._fatal(exc):
                self._proven(probe)
            raise
        self._proven(probe)
        if sent.request_id is not None:
            if prepared.source_pages is None:  # a part's request is not the document's
                job.request_id = sent.request_id
                self._accepted(job)
            counters.stats.submitted_async += 1
            await self._hook(self._after, job, sent.document, sent.request_id)
            if counters.hook is not None:
                counters.event(
                    BulkEvent(
                        "submitted",
                        job.index,
                        job.source,
                        request_id=sent.request_id,
                        route="async",
                    )
                )
        return sent

    def _proven(self, probe: bool) -> None:
        """An answer showed the key works: open the gate, for this run and the client's next."""
        self._engine.key_proven = True
        self._gate.open(probe)

    async def known(self, job: Job, part: PreparedDocument) -> str | None:
        """The request id `known_part` gives for one part of `job`'s document, or None."""
        if self._known is None:
            return None
        try:
            return await self._known(self._submission(job, part, None))
        except UpstageOCRError:  # this part's own verdict (an ambiguous submit): the document's
            raise
        except Exception as exc:  # noqa: BLE001 - whatever else the hook raised stops the run
            exc.add_note(f"the known_part hook failed for {part.name}")
            raise RunStopped(exc) from None

    def _submission(
        self, job: Job, prepared: PreparedDocument, request_id: str | None
    ) -> Submission:
        part = prepared.source_pages is not None
        return Submission(
            source=job.source,
            index=job.index,
            name=job.name if part else prepared.name,
            sha256=job.sha256 if part and job.sha256 else prepared.sha256,
            size=prepared.size,
            pages=prepared.pages,
            route=prepared.route,
            request_id=request_id,
            part_sha256=prepared.sha256 if part else None,
            source_pages=prepared.source_pages,
            repair_of=prepared.repair_of,
        )

    async def _hook(
        self,
        hook: SubmitHook | None,
        job: Job,
        prepared: PreparedDocument,
        request_id: str | None,
    ) -> None:
        if hook is None:
            return
        try:
            await hook(self._submission(job, prepared, request_id))
        except Exception as exc:  # noqa: BLE001 - whatever the hook raised stops the run
            which = "before_submit" if request_id is None else "after_submit"
            exc.add_note(f"the {which} hook failed for {prepared.name}")
            raise RunStopped(exc) from None
