"""`aioupstage-ocr ocr --dry-run`: how every input would be sent, and what it would cost.

Each input is preflighted exactly as a real run does (`_preflight.plan`:
cutting into parts included), and nothing is uploaded, nor is the service
asked anything (no key needed). stdout gets one line per input, then the
totals: `<input>\\t<pages, route>`. The journal is not read: the plan is of
sending everything, as a run with `--no-resume` would.
"""

from __future__ import annotations

import os
from functools import partial

import anyio

from .._config import DEFAULT_DOCUMENT_LIMITS
from .._exceptions import ConfigurationError
from .._pages import parse_pages
from .._preflight import Plan, plan
from . import _remote
from ._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, error
from ._discovery import Discovery

__all__ = ["PRICE_ENV", "dry_run", "price_per_page"]

#: The price of one page, for the cost line, when `--price-per-page` is not given.
PRICE_ENV = "UPSTAGE_PRICE_PER_PAGE"


def price_per_page(given: float | None) -> float | None:
    """`--price-per-page`, else `UPSTAGE_PRICE_PER_PAGE`, else None; ValueError if unreadable."""
    if given is not None:
        return given
    text = os.environ.get(PRICE_ENV, "").strip()
    if not text:
        return None
    value = float(text)
    if value < 0:
        raise ValueError(f"{PRICE_ENV} must not be negative, got {text}")
    return value


async def dry_run(
    inputs: tuple[str, ...],
    *,
    output_dir: str | None,
    mode: str,
    pages: str | None,
    price: float | None,
) -> int:
    """Plan every input and print it; 0, or 1 when an input would be refused."""
    try:
        mapper = _remote.make_mapper(inputs, output_dir)
    except (ConfigurationError, OSError) as exc:
        error(str(exc))
        return EXIT_USAGE
    ranges = None if pages is None else parse_pages(pages)
    discovery = Discovery(inputs, mapper, 0)
    count = refused = total_pages = requests = 0
    unknown = 0
    try:
        while (seen := await discovery.next()) is not None:
            key = _remote.shown(seen.item.path) or os.fspath(seen.item.path)
            count += 1
            if seen.error is not None:
                found = Plan(key, error=seen.error)
            else:
                found = await anyio.to_thread.run_sync(
                    partial(
                        plan,
                        _remote.document_of(os.fspath(seen.item.path)),
                        mode=mode,  # type: ignore[arg-type]
                        limits=DEFAULT_DOCUMENT_LIMITS,
                        pages=ranges,
                    )
                )
            if found.error is not None:
                refused += 1
            elif found.pages is None:
                unknown += 1
            else:
                total_pages += found.pages
            requests += found.requests
            print(f"{key}\t{found.describe}", flush=True)
    finally:
        discovery.close()
    line = f"total: {_many(count, 'input')}, {_many(total_pages, 'page')} in "
    line += _many(requests, "request")
    if unknown:
        line += f", and {unknown} inputs whose pages the service counts"
    if refused:
        line += f"; {refused} refused"
    print(line)
    if price is None:
        print(f"cost: give --price-per-page or {PRICE_ENV}")
    else:
        print(f"cost: {total_pages} pages x {price:g} = {total_pages * price:.2f}")
    return EXIT_FAILED if refused else EXIT_OK


def _many(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"
