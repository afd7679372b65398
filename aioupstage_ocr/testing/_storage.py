"""The storage host's side: signed, expiring download links and S3-style XML errors."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from urllib.parse import urlencode
from xml.sax.saxutils import escape

__all__ = ["LinkCheck", "LinkSigner", "iso_now", "xml_error"]


class LinkCheck(Enum):
    """What a download link's query says about it."""

    VALID = "valid"
    BAD_SIGNATURE = "bad signature"
    EXPIRED = "expired"


class LinkSigner:
    """Signs `path` with an expiry: HMAC-SHA256 over path, expiry (ms) and generation.

    `expire_all()` moves to a new generation: every link signed before then is expired.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self.generation = 0

    def _signature(self, path: str, expires_ms: int, generation: int) -> str:
        message = f"{path}\n{expires_ms}\n{generation}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def query(self, path: str, ttl: float) -> str:
        """The query string of a link to `path` valid for `ttl` seconds from now."""
        expires_ms = int((time.time() + ttl) * 1000)
        signature = self._signature(path, expires_ms, self.generation)
        return urlencode(
            {"expires": expires_ms, "generation": self.generation, "signature": signature}
        )

    def check(self, path: str, query: Mapping[str, str]) -> LinkCheck:
        """Whether a link's query is signed for `path` and still valid."""
        try:
            expires_ms = int(query["expires"])
            generation = int(query["generation"])
            signature = query["signature"]
        except (KeyError, ValueError):
            return LinkCheck.BAD_SIGNATURE
        expected = self._signature(path, expires_ms, generation)
        if not hmac.compare_digest(expected, signature):
            return LinkCheck.BAD_SIGNATURE
        if generation != self.generation or expires_ms <= time.time() * 1000:
            return LinkCheck.EXPIRED
        return LinkCheck.VALID

    def expire_all(self) -> None:
        """Expire every link signed so far."""
        self.generation += 1


def iso_now() -> str:
    """Now in UTC, RFC 3339 with nanoseconds, as the service writes times."""
    ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


def xml_error(code: str, message: str, **details: str) -> bytes:
    """An object-store error body: `<Error><Code>..</Code><Message>..</Message>..</Error>`."""
    parts = [f"<Code>{escape(code)}</Code>", f"<Message>{escape(message)}</Message>"]
    parts += [f"<{name}>{escape(value)}</{name}>" for name, value in details.items()]
    parts.append(f"<RequestId>{secrets.token_hex(8).upper()}</RequestId>")
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>"
    return body.encode()
