"""Real answers to replay: a folder of documents, each with `<stem>.response.json` beside it.

That is the layout of `../shared/real-ocr`: `scan.pdf` and `scan.response.json`.
The emulator answers a document whose bytes equal a recorded one with the
recorded answer itself (sync), or with batches cut from it (async), so a user
can test against the service's real answers for their own documents.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import orjson

__all__ = ["ANSWER_SUFFIX", "Recording", "cut_answer", "load_recordings"]

#: What a recorded answer's name ends with, after its document's stem.
ANSWER_SUFFIX = ".response.json"

_LOADED: dict[str, tuple[tuple[tuple[str, int, int], ...], dict[str, Recording]]] = {}
_LOCK = threading.Lock()


class Recording:
    """One recorded answer: the file's bytes as they are, and their JSON."""

    __slots__ = ("answer", "body", "document")

    def __init__(self, document: Path, answer: Path) -> None:
        self.document = document
        self.answer = answer
        self.body = answer.read_bytes()

    def json(self) -> dict[str, Any]:
        """The answer decoded (a fresh object each call)."""
        data: dict[str, Any] = orjson.loads(self.body)
        return data

    @property
    def pages(self) -> int:
        """How many pages the answer holds."""
        return len(self.json().get("pages") or ())


def load_recordings(folder: str) -> dict[str, Recording]:
    """The recordings under `folder` (searched recursively) by their document's sha256.

    A `<stem>.response.json` without a document beside it is left out, as is a
    document without an answer. Loaded once per folder while its files stay
    unchanged (name, size and mtime).
    """
    documents: dict[tuple[Path, str], list[Path]] = {}
    answers: list[Path] = []
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        if path.name.endswith(ANSWER_SUFFIX):
            answers.append(path)
        elif path.suffix != ".json":
            documents.setdefault((path.parent, path.stem), []).append(path)
    pairs = [
        (document, answer)
        for answer in answers
        for document in documents.get((answer.parent, answer.name[: -len(ANSWER_SUFFIX)]), [])
    ]
    stamp = tuple(
        (str(path), stat.st_size, stat.st_mtime_ns)
        for pair in pairs
        for path in pair
        for stat in (path.stat(),)
    )
    with _LOCK:
        cached = _LOADED.get(folder)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    found = {
        hashlib.sha256(document.read_bytes()).hexdigest(): Recording(document, answer)
        for document, answer in pairs
    }
    with _LOCK:
        _LOADED[folder] = (stamp, found)
    return found


def cut_answer(
    answer: dict[str, Any], start: int, end: int, *, from_document: bool = False
) -> dict[str, Any]:
    """Pages `start`..`end` (from 1) of a whole answer, as a batch of their own.

    A valid answer in the recording's shape for those pages: page ids (and, in
    the live shape, word ids and `metadata.pages`) count from the batch, or
    keep the document's numbering with `from_document`; the page count
    (`numBilledPages` or `usage.pages`), top-level `text` and `confidence`
    describe the batch, as the service works them out. Merging every batch of
    an answer gives the answer back (`merge_batches`).
    """
    pages = answer["pages"][start - 1 : end]
    first_page = start - 1 if from_document else 0
    live = "numBilledPages" in answer or "apiVersion" in answer
    cut_pages = []
    word_id = 0
    for k, page in enumerate(pages):
        out = {**page, "id": first_page + k}
        if live and not from_document:
            words = page.get("words") or []
            out["words"] = [{**w, "id": word_id + j} for j, w in enumerate(words)]
            word_id += len(words)
        cut_pages.append(out)
    cut: dict[str, Any] = {}
    for key, value in answer.items():
        if key == "pages":
            cut[key] = cut_pages
        elif key == "metadata" and type(value) is dict and type(value.get("pages")) is list:
            entries = value["pages"][start - 1 : end]
            numbered = [{**m, "page": first_page + k + 1} for k, m in enumerate(entries)]
            cut[key] = {**value, "pages": numbered}
        elif key == "numBilledPages":
            cut[key] = len(pages)
        elif key == "usage" and type(value) is dict:
            cut[key] = {**value, "pages": len(pages)}
        elif key == "text":
            cut[key] = "".join(page.get("text", "") for page in pages)
        elif key == "confidence":
            found = [page.get("confidence") for page in pages]
            cut[key] = min(found) if found and None not in found else value
        else:
            cut[key] = value
    return cut
