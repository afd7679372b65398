"""The `convert` command: other outputs made from saved results, without calling the service.

```
aioupstage-ocr convert RESULT.ocr.json... --format txt,hocr,alto,pdf [--document ORIGINAL] [-o DIR]
```

Each result's outputs go beside it (`scan.ocr.json` -> `scan.txt`, `scan.hocr`,
`scan.alto.xml`, `scan.ocr.pdf`), or into DIR with the same names. A
searchable PDF needs the original document (`--document`, with one result).
Every output is written atomically; one that cannot be made is reported and
the others are still written. Each written path goes to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .._exceptions import UpstageOCRError
from .._models import OCRResult
from .._outputs._files import SUFFIXES, parse_formats, stem_of, write_outputs
from ._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, error

__all__ = ["add_convert", "format_list"]


def format_list(text: str) -> tuple[str, ...]:
    """`--format`'s argument parsed (argparse type): `json,txt,...` in a fixed order."""
    try:
        return parse_formats(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_convert(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `convert` command to the command line's subcommands."""
    convert = commands.add_parser(
        "convert",
        help="make text, hOCR, ALTO or a searchable PDF from saved results (no service call)",
        description=(
            "Make the chosen outputs from saved results (RESULT.ocr.json), beside each "
            "result or in DIR, without calling the service. A searchable PDF (pdf) needs "
            "the original document: --document ORIGINAL, with one result."
        ),
    )
    convert.add_argument("results", nargs="+", metavar="RESULT", help="a saved .ocr.json result")
    convert.add_argument(
        "--format",
        dest="formats",
        type=format_list,
        required=True,
        metavar="FORMATS",
        help="comma-separated: json, txt, hocr, alto, pdf",
    )
    convert.add_argument(
        "--document", metavar="ORIGINAL", help="the original document (for pdf; one result)"
    )
    convert.add_argument(
        "-o", "--output-dir", metavar="DIR", help="write here (default: beside each result)"
    )
    convert.set_defaults(handler=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    """Run `convert`; 0 when every output was written, 1 when one failed, 2 on usage."""
    formats: tuple[str, ...] = args.formats
    if args.document is not None and len(args.results) != 1:
        error("--document goes with one result (the document it was read from)")
        return EXIT_USAGE
    if "pdf" in formats and args.document is None:
        error("a searchable PDF (pdf) needs the original: add --document ORIGINAL")
        return EXIT_USAGE
    failed = False
    for given in args.results:
        source = Path(given)
        target = source
        if args.output_dir is not None:
            target = Path(args.output_dir) / (stem_of(source).name + SUFFIXES["json"])
        try:
            result = OCRResult.load(source)
        except (UpstageOCRError, OSError) as exc:
            error(
                f"{given}: cannot read the result: {exc}" if isinstance(exc, OSError) else str(exc)
            )
            failed = True
            continue
        wanted = formats
        if target == source:
            wanted = tuple(f for f in formats if f != "json")  # it is there already
            if "json" in formats:
                _say(os.path.abspath(source))
        name = args.document if args.document is not None else stem_of(source).name
        written = write_outputs(result, wanted, target, document=args.document, name=name)
        for path in written.paths.values():
            _say(os.fspath(path))
        for problem in written.errors.values():
            error(str(problem))
            failed = True
    return EXIT_FAILED if failed else EXIT_OK


def _say(line: str) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()
