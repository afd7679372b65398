"""What the XML outputs (hOCR, ALTO) share: escaping, and who made the text."""

from __future__ import annotations

import functools
import re
from html import escape as _html_escape
from importlib import metadata

__all__ = ["escape", "software_version"]

# Characters XML 1.0 cannot hold at all (not even as references).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def escape(text: str) -> str:
    """`text` safe in XML element content and in double-quoted attributes."""
    return _html_escape(_NOT_XML.sub("", text), quote=True)


@functools.cache
def software_version() -> str:
    """This package's version, as installed (`unknown` when run from a bare checkout); looked
    up once (a metadata search of the path costs milliseconds)."""
    try:
        return metadata.version("aioupstage-ocr")
    except metadata.PackageNotFoundError:
        return "unknown"
