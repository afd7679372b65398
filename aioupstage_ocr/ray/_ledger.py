"""Nothing paid twice when Ray retries: a ledger of documents by content hash, in a store.

Ray re-runs a batch whose actor died, maybe on another node; the ledger tells
the new attempt what the old one did. One small JSON object per document,
at `<root>/<sha[:2]>/<sha>.json`, written whole (`_storage.write_whole`):

- `sending`: written right before an async submit leaves (after its pace
  and slot, `ClusterPacer`'s before-send hook), with the time (a sync call
  is not recorded: a retry sends it again either way, at most once more);
- `submitted`: an async request id is known (and a marker
  `<root>/requests/<id>` claims that id for this document);
- `done`: the output is written (its URL kept).

A retried document: `done` with its output there -> read the output, not
sent; `submitted` -> the open request is waited for (`Resume`), not sent
again; `sending` (async) -> settled by `OCRStage` with `_reconcile`'s rules,
as the command's resume applies them. The entry's submit window runs from its
write to this attempt's start (the attempt that wrote it is dead). The request
list is read once that window closed `_stage.SETTLE` seconds ago, so a request
the dead attempt made is listed, and live actors' requests in the window are
claimed (competitors no more). A listed request claimed for this very hash is
its own (the attempt died between claim and entry); otherwise the unclaimed
requests in its window whose page count fits are its candidates, paired with
the batch's other `sending` rows (`_reconcile.pair`): none -> it never went,
send it; one, paired -> adopt it; more -> `AmbiguousSubmitError` (not sent).
Without an entry, it goes as new.

Cost: per document one read (the entry) and one write (`done`) besides its
output; two more writes for an async one.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import IO, Any, Literal

import orjson

from .. import _storage
from .._exceptions import DocumentNotFoundError
from .._preflight import CHUNK_BYTES

__all__ = ["Entry", "Ledger", "content_hash"]

State = Literal["sending", "submitted", "done"]


def content_hash(document: bytes | IO[bytes]) -> str:
    """SHA-256 of a document's bytes, hex (a file object is read through, then rewound)."""
    if isinstance(document, bytes):
        return hashlib.sha256(document).hexdigest()
    digest = hashlib.sha256()
    document.seek(0)
    while chunk := document.read(CHUNK_BYTES):
        digest.update(chunk)
    document.seek(0)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    """What the ledger knows of one document."""

    sha256: str
    state: State
    route: str | None = None
    at: float = 0.0  # wall-clock time of the write
    request_id: str | None = None
    output: str | None = None
    name: str | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "sha256": self.sha256,
                "state": self.state,
                "route": self.route,
                "at": self.at,
                "request_id": self.request_id,
                "output": self.output,
                "name": self.name,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> Entry:
        raw: dict[str, Any] = orjson.loads(data)
        return cls(
            sha256=str(raw["sha256"]),
            state=raw["state"],
            route=raw.get("route"),
            at=float(raw.get("at") or 0.0),
            request_id=raw.get("request_id"),
            output=raw.get("output"),
            name=raw.get("name"),
        )


class Ledger:
    """The ledger under `root` (a URL or folder). Blocking: call from worker threads."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def __repr__(self) -> str:
        return f"Ledger({_storage.safe_url(self.root)!r})"

    def _entry_url(self, sha256: str) -> str:
        return _storage.join(self.root, sha256[:2], f"{sha256}.json")

    def _claim_url(self, request_id: str) -> str:
        return _storage.join(self.root, "requests", request_id)

    def read(self, sha256: str) -> Entry | None:
        """The document's entry, or None."""
        try:
            return Entry.from_json(_storage.read_bytes(self._entry_url(sha256)))
        except DocumentNotFoundError:
            return None

    def _write(self, entry: Entry) -> None:
        _storage.write_whole(self._entry_url(entry.sha256), entry.to_json())

    def sending(self, sha256: str, *, route: str, name: str) -> None:
        """The request for this document is about to leave."""
        self._write(Entry(sha256, "sending", route=route, at=time.time(), name=name))

    def submitted(self, sha256: str, request_id: str, *, name: str) -> None:
        """The service took it as `request_id`: claim the id, then record it."""
        _storage.write_whole(self._claim_url(request_id), sha256.encode())
        self._write(
            Entry(
                sha256, "submitted", route="async", at=time.time(), request_id=request_id, name=name
            )
        )

    def done(self, sha256: str, *, output: str | None, request_id: str | None, name: str) -> None:
        """Its output is written."""
        self._write(
            Entry(sha256, "done", at=time.time(), request_id=request_id, output=output, name=name)
        )

    def claimed(self, request_id: str) -> bool:
        """Whether some document of this ledger owns `request_id`."""
        return self.claim_of(request_id) is not None

    def claim_of(self, request_id: str) -> str | None:
        """The content hash of the document that owns `request_id`, or None."""
        try:
            return _storage.read_bytes(self._claim_url(request_id)).decode()
        except DocumentNotFoundError:
            return None
