"""`aioupstage-ocr emulator`: run the emulator until interrupted.

Every `EmulatorConfig` field is an option (`--batch-latency 0.2`, `--no-retry-after`,
`--error-statuses 500,503`). The first line on stdout is
`emulator listening on http://HOST:PORT/v1 (storage http://HOST:PORT2)`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from .._exceptions import ConfigurationError
from ._config import CHOICES, EmulatorConfig

__all__ = ["add_arguments", "config_from_args", "run"]

_HELP = {
    "seed": "seed of every fault and shuffle (default %(default)s)",
    "api_key": "the one API key accepted (default: any non-empty key)",
    "url_ttl": "seconds a download link stays valid (default %(default)s)",
    "sync_latency": "seconds a sync call takes (default %(default)s)",
    "sync_timeout": "seconds after which a sync call answers 504 (default: never)",
    "retry_after_date": "send Retry-After as an HTTP date, not seconds",
    "batch_latency": "seconds an async batch takes (default %(default)s)",
    "latency_jitter": "latencies vary by +/- this fraction (default %(default)s)",
    "start_delay": "seconds an async request stays `submitted` (default %(default)s)",
    "workers": "async batches run at once (default %(default)s)",
    "batch_size": "pages per async batch (default %(default)s)",
    "rps": "API requests per second before 429s (default: no limit)",
    "ppm": "pages per minute before 429s (default: no limit)",
    "rate_headers": "with --rps, send what is left of it: x-ratelimit or ratelimit headers",
    "capacity": "sync calls processed at once; the rest queue (default: no limit)",
    "retry_after": "send Retry-After with 429s (default: yes)",
    "error_rate": "share of answers that are 5xx (default %(default)s)",
    "error_statuses": "comma-separated statuses of injected errors (default 500,502,503)",
    "drop_rate": "share of connections closed after the work, unanswered (default %(default)s)",
    "fault_routes": "comma-separated routes the two above apply to: "
    "sync,async,status,list,download (default sync,async,status,list)",
    "truncate_rate": "share of downloads cut short (default %(default)s)",
    "batch_failure_rate": "share of batches that fail (default %(default)s)",
    "batch_retries": "times a failing batch is retried, as `retrying` (default %(default)s)",
    "early_expiry_rate": "share of download links that expire early (default %(default)s)",
    "early_expiry_ttl": "seconds such a link lives (default %(default)s)",
    "fail_pages": "comma-separated pages whose batch fails, and so does any later batch "
    "holding the same page content",
    "fail_times": "times such a batch fails before it succeeds (default 0: every time)",
    "partial_status": "a request with failed and completed batches ends 'failed' or "
    "'completed' (default %(default)s)",
    "shape": "answers in the 'live' service's shape (as recorded) or the 'seed' page's "
    "(default %(default)s)",
    "error_shape": "error bodies: 'code' ({code, message}, the reference's) or 'error' "
    "({error: {...}}) (default %(default)s)",
    "page_ids": "download page ids count from the 'batch' or the 'document'",
    "shuffle_batches": "list batches in a seeded random order (default: yes)",
    "max_sync_pages": "pages the sync endpoint takes (default %(default)s)",
    "max_async_pages": "pages the async endpoint takes (default %(default)s)",
    "max_bytes": "bytes a document may have (default %(default)s)",
    "max_pixels": "pixels a page may have (default %(default)s)",
    "model_version": "what the model `ocr` stands for (default %(default)s)",
    "recordings": "a folder of documents with <stem>.response.json beside each: such a "
    "document is answered with its recorded answer",
}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(item) for item in text.split(",") if item.strip())


def _words(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


_TYPES: dict[str, Callable[[str], Any]] = {
    "int": int,
    "int | None": int,
    "float": float,
    "float | None": float,
    "str": str,
    "str | None": str,
    "str | os.PathLike[str] | None": str,
    "tuple[int, ...]": _ints,
    "tuple[str, ...]": _words,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `emulator` subcommand's options: where to listen, and every config field."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument(
        "--storage-port", type=int, default=0, help="storage host port (default: a free one)"
    )
    defaults = EmulatorConfig()
    for item in dataclasses.fields(EmulatorConfig):
        option = "--" + item.name.replace("_", "-")
        default = getattr(defaults, item.name)
        help_text = _HELP.get(item.name, item.name)
        if item.type == "bool":
            parser.add_argument(
                option,
                dest=item.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=help_text,
            )
            continue
        convert = _TYPES[str(item.type)]
        if isinstance(default, tuple):
            help_default = ",".join(str(x) for x in default)
            help_text = help_text.replace("%(default)s", help_default)
        parser.add_argument(
            option,
            dest=item.name,
            type=convert,
            default=default,
            choices=CHOICES.get(item.name),
            help=help_text,
        )


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The configuration the options ask for."""
    values = {item.name: getattr(args, item.name) for item in dataclasses.fields(EmulatorConfig)}
    return EmulatorConfig(**values)


async def _serve(config: EmulatorConfig, host: str, port: int, storage_port: int) -> None:
    from ._emulator import UpstageEmulator  # noqa: PLC0415 - aiohttp.web loads only to serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with UpstageEmulator(config, host=host, port=port, storage_port=storage_port) as emu:
        sys.stdout.write(f"emulator listening on {emu.base_url} (storage {emu.storage_url})\n")
        sys.stdout.flush()
        await stop.wait()
    sys.stderr.write("emulator stopped\n")


def run(args: argparse.Namespace) -> int:
    """Run the emulator until SIGINT or SIGTERM; 0 on a clean stop, 2 on bad options."""
    try:
        config = config_from_args(args)
    except ConfigurationError as exc:
        sys.stderr.write(f"aioupstage-ocr emulator: {exc}\n")
        return 2
    # pypdf warns about every font it cannot fully parse; the emulator reads text regardless.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        asyncio.run(_serve(config, args.host, args.port, args.storage_port))
    except OSError as exc:
        sys.stderr.write(f"aioupstage-ocr emulator: cannot listen: {exc}\n")
        return 1
    return 0
