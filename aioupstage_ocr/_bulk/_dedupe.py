"""Identical documents in flight at once are worked on once."""

from __future__ import annotations

from ._jobs import Job

__all__ = ["Twins"]


class Twins:
    """The first job in flight for each content (by SHA-256); later identical ones follow it.

    A follower gets the first one's result or error (`BulkItem.duplicate_of`).
    Once the first one finished, the same content is worked on again.
    """

    __slots__ = ("_first",)

    def __init__(self) -> None:
        self._first: dict[str, Job] = {}

    def follows(self, job: Job, sha256: str) -> bool:
        """True when an identical job is in flight: `job` now follows it."""
        first = self._first.get(sha256)
        if first is not None:
            first.followers.append(job)
            return True
        self._first[sha256] = job
        return False

    def finished(self, job: Job) -> None:
        """`job` has its outcome: the next identical document is worked on afresh."""
        if job.sha256 is not None and self._first.get(job.sha256) is job:
            del self._first[job.sha256]
