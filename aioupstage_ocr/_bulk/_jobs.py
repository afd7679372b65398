"""A document's state inside a run (`Job`), and the error that ends a whole run."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import _telemetry as telemetry
from .._preflight import Document, Route

__all__ = ["Job", "RunStopped", "single"]


@dataclass(slots=True, eq=False)
class Job:
    """One input on its way: taken, prepared, sent, waited for; `followers` share its outcome."""

    index: int
    source: Document
    queued_at: float
    name: str = ""
    started_at: float | None = None
    sha256: str | None = None
    route: Route | None = None
    pages: int | None = None
    request_id: str | None = None
    followers: list[Job] = field(default_factory=list)
    trace: telemetry.Document | None = None  # its `upstage.ocr.document` span, once sent


class RunStopped(Exception):  # noqa: N818 - internal carrier, never raised to a caller
    """Carries an error that ends the whole run (a hook failed)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def single(exc: Exception) -> Exception:
    """The one error inside (possibly nested) single-member exception groups."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        inner = exc.exceptions[0]
        if not isinstance(inner, Exception):
            break
        exc = inner
    return exc
