"""`python -m benchmarks [--quick] [--only N ...] [--out DIR] [--jobs J] [--report-only]`.

Runs the scenarios and writes their results. Full runs write to
`benchmarks/results/`, one scenario at a time; `--quick` (tiny sizes: do the
scripts work?) runs them all at once and writes to
`<temp>/aioupstage-ocr-bench-quick/` unless `--out` says otherwise, so a quick
run never overwrites measured results. Each scenario's JSON is written as
soon as it ends; `results.md` and the plots are then regenerated from every
JSON in the folder (`--report-only` does just that). Exit status 1 when a
scenario or one of its runs failed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

from . import (
    s1_rate_limit,
    s2_async_bulk,
    s3_overhead,
    s4_scale,
    s5_concurrency,
    s6_outputs,
    s7_peers,
    s8_handlers,
)
from ._common import Context, Scenario, say
from ._harness import RESULTS, write_result
from ._report import render

SCENARIOS = [
    cast(Scenario, module)
    for module in (
        s1_rate_limit,
        s2_async_bulk,
        s3_overhead,
        s4_scale,
        s5_concurrency,
        s6_outputs,
        s7_peers,
        s8_handlers,
    )
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the scripts run")
    parser.add_argument(
        "--only",
        action="append",
        type=int,
        choices=[s.NUMBER for s in SCENARIOS],
        metavar="N",
        help="run scenario N only (repeatable); default: all",
    )
    parser.add_argument("--out", type=Path, help="results folder")
    parser.add_argument(
        "--jobs",
        type=int,
        help="scenarios run at once (default: 1; all of them with --quick)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="regenerate results.md and plots from the JSON"
    )
    return parser


def _run(scenario: Scenario, quick: bool, work: Path, out: Path) -> str | None:
    """Run one scenario and write its JSON; its name if it (or one of its runs) failed."""
    t0 = time.monotonic()
    say(f"scenario {scenario.NUMBER}: {scenario.TITLE}")
    try:
        data = scenario.run(Context(quick, work, out))
    except Exception as exc:  # noqa: BLE001 - report it, run the next scenario
        say(f"scenario {scenario.NUMBER} failed: {exc!r}")
        return scenario.NAME
    data["elapsed_s"] = round(time.monotonic() - t0, 1)
    path = write_result(out, scenario.NAME, data)
    say(f"scenario {scenario.NUMBER} done in {data['elapsed_s']} s: {path}")
    return scenario.NAME if any("error" in v for v in data["variants"]) else None


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; 0 when every one produced its JSON."""
    args = _parser().parse_args(argv)
    default = Path(tempfile.gettempdir()) / "aioupstage-ocr-bench-quick" if args.quick else RESULTS
    out: Path = (args.out or default).resolve()
    out.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in SCENARIOS if not args.only or s.NUMBER in args.only]
    failed: list[str] = []
    started = time.monotonic()
    if not args.report_only:
        work = Path(tempfile.mkdtemp(prefix="aioupstage-ocr-bench-"))
        # A measurement runs alone; quick runs (no measurement) overlap to finish sooner.
        jobs = args.jobs or (len(chosen) if args.quick else 1)
        try:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                outcomes = list(pool.map(lambda s: _run(s, args.quick, work, out), chosen))
            failed += [name for name in outcomes if name is not None]
        finally:
            shutil.rmtree(work, ignore_errors=True)
    report = render(SCENARIOS, out)
    say(f"all done in {time.monotonic() - started:.0f} s; {report}")
    sys.stdout.write(f"{report}\n")
    if failed:
        sys.stderr.write(f"failed: {', '.join(failed)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
