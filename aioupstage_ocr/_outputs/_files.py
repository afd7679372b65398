"""The output files of one document: which formats, their names beside each other, writing.

```
<stem>.ocr.json   json   the service's answer (`OCRResult.save`)
<stem>.txt        txt    `to_text()`
<stem>.hocr       hocr   `to_hocr()`
<stem>.alto.xml   alto   `to_alto()`
<stem>.ocr.pdf    pdf    `searchable_pdf(document, result)`
```

`write_outputs` writes every chosen format atomically; one that cannot be
made (a PDF from a result that does not fit its document, say) is recorded
with its error and the others are still written. Blocking file and CPU work:
the command line runs it in a worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .._atomic import atomic_write_bytes, atomic_write_text
from .._exceptions import UpstageOCRError

if TYPE_CHECKING:
    from .._models import OCRResult
    from .._preflight import Document

__all__ = [
    "FORMATS",
    "SUFFIXES",
    "Written",
    "output_paths",
    "parse_formats",
    "stem_of",
    "write_outputs",
]

#: Every format, in the order outputs are written and listed.
FORMATS = ("json", "txt", "hocr", "alto", "pdf")
#: What each format's file name ends in (after the document's stem).
SUFFIXES = {
    "json": ".ocr.json",
    "txt": ".txt",
    "hocr": ".hocr",
    "alto": ".alto.xml",
    "pdf": ".ocr.pdf",
}


def parse_formats(text: str | Iterable[str]) -> tuple[str, ...]:
    """`"json,txt"` (or a list of such) as formats in `FORMATS` order, each once.

    Raises `ValueError` naming an unknown format or an empty choice.
    """
    parts = [text] if isinstance(text, str) else list(text)
    chosen = {name.strip().lower() for part in parts for name in part.split(",") if name.strip()}
    unknown = sorted(chosen - set(FORMATS))
    if unknown:
        raise ValueError(
            f"unknown output format {', '.join(unknown)} (choose from {', '.join(FORMATS)})"
        )
    if not chosen:
        raise ValueError(f"no output format given (choose from {', '.join(FORMATS)})")
    return tuple(name for name in FORMATS if name in chosen)


def stem_of(json_path: str | os.PathLike[str]) -> Path:
    """The path every output name starts with: `DIR/scan.ocr.json` -> `DIR/scan`."""
    path = Path(json_path)
    name = path.name
    for suffix in (SUFFIXES["json"], ".json"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return path.with_name(name[: -len(suffix)])
    return path.with_name(path.stem)


def output_paths(json_path: str | os.PathLike[str], formats: Iterable[str]) -> dict[str, Path]:
    """Each format's file, beside the `.ocr.json` one (`json_path` itself for `json`)."""
    stem = stem_of(json_path)
    return {
        name: Path(json_path) if name == "json" else stem.with_name(stem.name + SUFFIXES[name])
        for name in formats
    }


@dataclass(slots=True)
class Written:
    """What `write_outputs` did: each format's file written, or its error."""

    paths: dict[str, Path] = field(default_factory=dict)
    errors: dict[str, UpstageOCRError | OSError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every chosen format was written."""
        return not self.errors

    def first_error(self) -> UpstageOCRError | OSError | None:
        """The first format's error (in `FORMATS` order), or None."""
        return next(iter(self.errors.values()), None)


def write_outputs(
    result: OCRResult,
    formats: Iterable[str],
    json_path: str | os.PathLike[str],
    *,
    document: Document | None = None,
    name: str | None = None,
) -> Written:
    """Write `result` in every format of `formats`, beside `json_path`, each atomically.

    `document` (the original: a path, bytes or a file object) is needed for
    `pdf`; `name` names it in the files (hOCR and ALTO) and errors. A format
    that fails is recorded in `Written.errors` (an `UpstageOCRError` or the
    `OSError` of the write) and the other formats are still written.
    """
    from ._pdf import searchable_pdf  # noqa: PLC0415 - pypdf and Pillow load on first use

    written = Written()
    for fmt, path in output_paths(json_path, formats).items():
        try:
            if fmt == "json":
                written.paths[fmt] = result.save(path)
            elif fmt == "txt":
                written.paths[fmt] = atomic_write_text(path, result.to_text())
            elif fmt == "hocr":
                written.paths[fmt] = atomic_write_text(path, result.to_hocr(image=name))
            elif fmt == "alto":
                written.paths[fmt] = atomic_write_text(path, result.to_alto(image=name))
            elif document is None:
                written.errors[fmt] = UpstageOCRError(
                    f"{name or path}: a searchable PDF needs the original document"
                )
            else:
                pdf = searchable_pdf(document, result, name=name)
                written.paths[fmt] = atomic_write_bytes(path, pdf)
        except (UpstageOCRError, OSError) as exc:
            written.errors[fmt] = exc
    return written
