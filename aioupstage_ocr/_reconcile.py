"""Which listed request, if any, a submit of unknown fate created: pure decisions.

An async submit can end without telling whether the service took it: the
connection dropped after the upload (the client's `SubmitLedger`), or a run
stopped between the journal's `submitting` row and the answer (the command's
resume). Both then read the service's request list and ask the same questions,
answered here and nowhere else:

- the **window**: a request the submit created was stamped between its start
  and its end, on the server's clock (`Date` headers tell the offset), give or
  take `margin`;
- the **candidates**: listed requests in that window that nobody owns (ids
  submitted, adopted or asked about are known);
- the **pages**: a candidate whose page count is known and differs from the
  document's is someone else's (`request_pages` reads the candidates' counts,
  the one step here that asks the service);
- the **pairing**, for several submits at once: a submit and a request are
  paired only when each is the other's only fit.

Anything uncertain is left unpaired: the callers then raise
`AmbiguousSubmitError` rather than guess, since a wrong guess hands one
document another's result, and a missed request is paid twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from ._exceptions import APIError, ResponseValidationError
from ._models import RequestStatus, RequestSummary

__all__ = [
    "MARGIN",
    "MARGIN_BLIND",
    "Window",
    "candidates",
    "margin",
    "pages_fit",
    "pair",
    "request_pages",
]

#: Seconds either side of a submit's window, when the server's clock is known.
#: `Date` has whole seconds (the midpoint guess is off by up to 0.5 s), the
#: request's stamp may come from another host than the `Date`, and clocks drift
#: between answers. Too narrow a window misses the request and pays twice; too
#: wide one only makes the answer ambiguous (nothing paid): so the wider 5 s.
MARGIN = 5.0
#: ... and when it is not (no `Date` seen yet: the skew is unknown).
MARGIN_BLIND = 300.0


def margin(clock_known: bool) -> float:
    """The margin for a window, by whether the server's clock is known."""
    return MARGIN if clock_known else MARGIN_BLIND


@dataclass(frozen=True, slots=True)
class Window:
    """When (server clock, epoch seconds) a request created by one submit may be stamped."""

    low: float
    high: float

    @classmethod
    def of(cls, started: float, ended: float, *, offset: float, clock_known: bool) -> Window:
        """The window of a submit sent from `started` to `ended` (our clock).

        `offset` is the server's clock minus ours.
        """
        wide = margin(clock_known)
        return cls(started + offset - wide, ended + offset + wide)

    def holds(self, summary: RequestSummary) -> bool:
        """True when `summary` may have been created in this window (no stamp: it may)."""
        when = summary.requested_datetime
        return when is None or self.low <= when.timestamp() <= self.high


def candidates(
    summaries: Iterable[RequestSummary], window: Window, known: Iterable[str] = ()
) -> list[str]:
    """Ids of listed requests in `window` that are not `known` (owned or asked about)."""
    owned = set(known)
    return [s.id for s in summaries if s.id not in owned and window.holds(s)]


def pages_fit(document_pages: int | None, request_pages: int | None) -> bool:
    """False only when both page counts are known and differ (someone else's request)."""
    return document_pages is None or not request_pages or request_pages == document_pages


async def request_pages(
    get_request: Callable[[str], Awaitable[RequestStatus]], summaries: Iterable[RequestSummary]
) -> dict[str, int | None]:
    """Each candidate's page count, as its status tells (None when it cannot be read:
    then the window alone decides)."""
    pages: dict[str, int | None] = {}
    for summary in summaries:
        try:
            pages[summary.id] = (await get_request(summary.id)).total_pages or None
        except (APIError, ResponseValidationError):
            pages[summary.id] = None
    return pages


def pair(fits: Mapping[str, Iterable[str]]) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Submits paired with requests where the pairing is certain (one each way), repeatedly.

    `fits` maps each submit to the requests that could be its own. Returns the
    pairs, and what is left: each unpaired submit's fits not taken by another.
    """
    left = {key: set(ids) for key, ids in fits.items()}
    adopted: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        owners: dict[str, list[str]] = {}
        for key, ids in left.items():
            for request_id in ids:
                owners.setdefault(request_id, []).append(key)
        for key, ids in list(left.items()):
            if len(ids) != 1:
                continue
            (request_id,) = ids
            if owners.get(request_id) == [key]:
                adopted[key] = request_id
                del left[key]
                for other in left.values():
                    other.discard(request_id)
                changed = True
    return adopted, left
