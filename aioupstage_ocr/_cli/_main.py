"""The argument parser, `main`, and the commands that make one request (`status`, `fetch`,
`requests`). The `ocr` command is `_ocr`; `emulator` and `demo` load the emulator
when they are the command run, and only then.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from .. import __version__
from .._client import AsyncUpstageOCR
from .._config import resolve_api_key
from .._exceptions import ConfigurationError, UpstageOCRError
from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG, error, no_key
from ._convert import add_convert, format_list
from ._display import fetch_progress

__all__ = ["build_parser", "main"]


if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # not subscriptable at run time
    _SubParsers = argparse._SubParsersAction


class _Commands(_SubParsers):
    """Subcommands, where a command's options can be added only once it is the one run.

    So `--help`, `ocr` and the rest never import what only `emulator` needs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, Callable[[argparse.ArgumentParser], None]] = {}

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if isinstance(values, Sequence) and values and not isinstance(values, str):
            fill = self.lazy.pop(str(values[0]), None)
            if fill is not None:
                fill(self.choices[str(values[0])])
        super().__call__(parser, namespace, values, option_string)


def _emulator_options(parser: argparse.ArgumentParser) -> None:
    from ..testing import _cli as emulator_cli  # noqa: PLC0415 - loads aiohttp.web: only when run

    emulator_cli.add_arguments(parser)
    parser.set_defaults(handler=emulator_cli.run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _page_ranges(text: str) -> str:
    from .._pages import format_pages, parse_pages  # noqa: PLC0415 - the pipeline loads when used

    try:
        return format_pages(parse_pages(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number from 0, got {text}")
    return value


def _add_base_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="the API's base URL (default: $UPSTAGE_BASE_URL, else https://api.upstage.ai/v1)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="OCR documents with the Upstage OCR API, one or thousands at a time.",
        epilog="exit codes: 0 all ok, 1 something failed, 2 usage error, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, action=_Commands
    )
    assert isinstance(commands, _Commands)

    ocr = commands.add_parser(
        "ocr",
        help="OCR files, folders, or paths read from stdin",
        description=(
            "OCR every input; write DIR/<path under the inputs' common folder>.ocr.json "
            "(the service's answer; async batches merged into one) and print each output's "
            "absolute path. "
            "Running the same command again resumes: finished outputs are kept, open "
            "requests are fetched, nothing is submitted twice."
        ),
    )
    ocr.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=(
            "a file, a folder (recursed, supported extensions only), - for paths on stdin, "
            "or a URL (s3://bucket/prefix or one object; any fsspec protocol, [s3] extra)"
        ),
    )
    ocr.add_argument(
        "-o",
        "--output-dir",
        metavar="DIR",
        help=(
            "where outputs and the resume journal go (default: the system temp folder); "
            "may be a URL (s3://bucket/prefix): outputs are put there whole"
        ),
    )
    ocr.add_argument(
        "--journal",
        metavar="FILE",
        help=(
            "the resume journal, a local SQLite file (default: "
            "DIR/.aioupstage-ocr-journal.sqlite3; for a URL output, "
            "$XDG_CACHE_HOME/aioupstage-ocr/journals/<hash of the URL>.sqlite3, "
            "XDG_CACHE_HOME defaulting to ~/.cache)"
        ),
    )
    ocr.add_argument(
        "--mode",
        choices=("auto", "sync", "async"),
        default="auto",
        help="endpoint: auto (sync up to 100 pages, async above), sync or async (default auto)",
    )
    ocr.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="N",
        help="the most HTTP requests in flight at once; the client finds how many the "
        "service takes, up to this (default 64)",
    )
    ocr.add_argument(
        "--rps",
        type=_positive_float,
        metavar="R",
        help="the account's requests per second (default: found from 429s)",
    )
    ocr.add_argument(
        "--ppm", type=_positive_float, metavar="P", help="the account's pages per minute"
    )
    ocr.add_argument(
        "--report",
        metavar="FILE",
        help=(
            "write one JSON line per input: input, status, output, pages, mode, request_id, "
            "error, outputs"
        ),
    )
    ocr.add_argument(
        "--format",
        dest="formats",
        type=format_list,
        default=("json",),
        metavar="FORMATS",
        help=(
            "outputs, comma-separated, written beside each other: json (<stem>.ocr.json), "
            "txt, hocr, alto (.alto.xml), pdf (searchable, .ocr.pdf); default json. "
            "The .ocr.json is always kept: resume and `convert` read it"
        ),
    )
    ocr.add_argument(
        "--pages",
        type=_page_ranges,
        metavar="RANGES",
        help="send only these pages of each input, e.g. 1-10,20,30- (only they are billed; "
        "the output's sourcePages says which page each one is)",
    )
    ocr.add_argument(
        "--max-pages",
        type=_positive_int,
        metavar="N",
        help="send at most N pages in this run: once an input would pass them, it and "
        "the rest are skipped (not sent)",
    )
    ocr.add_argument(
        "--dry-run",
        action="store_true",
        help="upload nothing: print how each input would be sent (pages, route, parts), "
        "the totals and the cost; exit 1 if an input would be refused",
    )
    ocr.add_argument(
        "--price-per-page",
        type=_non_negative_float,
        metavar="PRICE",
        help="the price of a page, for --dry-run's cost (default: $UPSTAGE_PRICE_PER_PAGE)",
    )
    ocr.add_argument(
        "--allow-partial",
        action="store_true",
        help="when pages of an input still fail after being sent again, write the pages "
        "that came back (its missingPages list the others; the report row too)",
    )
    ocr.add_argument(
        "--no-resume",
        action="store_true",
        help="start fresh: forget the journal of past runs in DIR",
    )
    _add_base_url(ocr)
    ocr.add_argument(
        "--emulator",
        action="store_true",
        help="run against the bundled emulator, in-process (no key, no network)",
    )
    ocr.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress: only failures and a one-line summary on stderr",
    )
    ocr.set_defaults(handler=_cmd_ocr)

    status = commands.add_parser("status", help="one status of an async request, as JSON")
    status.add_argument("request_id", metavar="REQUEST_ID")
    _add_base_url(status)
    status.set_defaults(handler=_cmd_status)

    fetch = commands.add_parser(
        "fetch",
        help="wait for an async request, download and merge it; JSON out",
        description="Wait for REQUEST_ID, download every batch, merge them. Without -o the "
        "result goes to stdout; with -o it is written atomically and its path printed.",
    )
    fetch.add_argument("request_id", metavar="REQUEST_ID")
    fetch.add_argument("-o", "--output", metavar="FILE", help="write the result here")
    _add_base_url(fetch)
    fetch.set_defaults(handler=_cmd_fetch)

    add_convert(commands)

    requests = commands.add_parser("requests", help="the service's list of past requests")
    _add_base_url(requests)
    requests.set_defaults(handler=_cmd_requests)

    commands.add_parser(
        "emulator", help="run the bundled emulator of the service until interrupted"
    )
    commands.lazy["emulator"] = _emulator_options

    demo = commands.add_parser(
        "demo",
        help="the whole pipeline on the bundled emulator, with sample documents",
        description="Make a few documents (images, PDFs, one over 100 pages, one bad "
        "file) in a temp folder, OCR them on the in-process emulator with a little "
        "latency and a few faults, and show where the outputs are.",
    )
    demo.add_argument(
        "-o",
        "--output-dir",
        metavar="DIR",
        help="where to make the demo (default: a new temp folder)",
    )
    demo.add_argument(
        "--recordings",
        metavar="DIR",
        help="a folder of documents with the live service's recorded answers to replay "
        "(default: shared/real-ocr beside the project or the current folder, if there)",
    )
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.error(f"unknown command {args.command!r}")
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): stop quietly, as Unix tools do.
        _silence_stdout()
        return EXIT_FAILED


def _silence_stdout() -> None:
    """Point stdout at devnull so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


# --------------------------------------------------------------------------- ocr, demo


def _cmd_ocr(args: argparse.Namespace) -> int:
    from ._ocr import OcrOptions, run_command  # noqa: PLC0415 - the pipeline loads when used

    if args.emulator and args.base_url:
        error("--emulator and --base-url exclude each other")
        return EXIT_USAGE
    if args.dry_run:
        return _dry_run(args)
    options = OcrOptions(
        inputs=tuple(args.inputs),
        output_dir=args.output_dir,
        mode=args.mode,
        concurrency=args.concurrency,
        rps=args.rps,
        ppm=args.ppm,
        report=args.report,
        resume=not args.no_resume,
        journal=args.journal,
        formats=args.formats,
        base_url=args.base_url,
        emulator=args.emulator,
        quiet=args.quiet,
        pages=args.pages,
        allow_partial=args.allow_partial,
        max_pages=args.max_pages,
    )
    return run_command(options)


def _dry_run(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415 - only when asked

    from ._ocr import quiet_libraries  # noqa: PLC0415 - the pipeline loads when used
    from ._plan import dry_run, price_per_page  # noqa: PLC0415

    try:
        price = price_per_page(args.price_per_page)
    except ValueError as exc:
        error(str(exc))
        return EXIT_USAGE
    quiet_libraries()
    return asyncio.run(
        dry_run(
            tuple(args.inputs),
            output_dir=args.output_dir,
            mode=args.mode,
            pages=args.pages,
            price=price,
        )
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from .._demo import run_demo  # noqa: PLC0415 - loads the emulator: only when run

    return run_demo(args.output_dir, args.recordings)


# --------------------------------------------------------------------------- the requests by hand


def _write_json(data: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def _run_client(
    args: argparse.Namespace, work: Callable[[AsyncUpstageOCR], Coroutine[Any, Any, int]]
) -> int:
    if resolve_api_key(None) is None:
        error(no_key(emulator_flag=False))
        return EXIT_USAGE

    async def go() -> int:
        async with AsyncUpstageOCR(base_url=args.base_url) as client:
            return await work(client)

    try:
        return asyncio.run(go())
    except ConfigurationError as exc:
        error(str(exc))
        return EXIT_USAGE
    except UpstageOCRError as exc:
        error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED
    except OSError as exc:
        error(str(exc))
        return EXIT_FAILED


def _cmd_status(args: argparse.Namespace) -> int:
    async def work(client: AsyncUpstageOCR) -> int:
        status = await client.get_request(args.request_id)
        _write_json(status.raw)
        return EXIT_OK

    return _run_client(args, work)


def _cmd_fetch(args: argparse.Namespace) -> int:
    async def work(client: AsyncUpstageOCR) -> int:
        with fetch_progress(args.request_id) as on_progress:
            result = await client.wait(args.request_id, on_progress=on_progress)
        if args.output:
            path = await asyncio.to_thread(result.save, args.output)
            sys.stdout.write(f"{path}\n")
            sys.stdout.flush()
        else:
            sys.stdout.buffer.write(result.to_json() + b"\n")
            sys.stdout.flush()
        return EXIT_OK

    return _run_client(args, work)


def _cmd_requests(args: argparse.Namespace) -> int:
    async def work(client: AsyncUpstageOCR) -> int:
        summaries = await client.list_requests()
        _write_json({"requests": [summary.raw for summary in summaries]})
        return EXIT_OK

    return _run_client(args, work)


if __name__ == "__main__":
    sys.exit(main())
