"""What the scenario modules share: one variant's run, figures, targets, markdown."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ._harness import ChildRunError, EmulatorProcess, command_line, machine, now_iso, run_child

__all__ = [
    "Context",
    "Scenario",
    "Target",
    "emulators",
    "fmt",
    "md_table",
    "new_record",
    "run_variant",
    "say",
    "target_row",
]


@dataclass(frozen=True, slots=True)
class Context:
    """Where a scenario runs: `quick` sizes or full, `work` for its inputs, `out` for results."""

    quick: bool
    work: Path
    out: Path


class Scenario(Protocol):
    """What `benchmarks.__main__` needs of a scenario module."""

    NUMBER: int
    NAME: str
    TITLE: str

    def run(self, ctx: Context) -> dict[str, Any]: ...

    def targets(self, data: dict[str, Any]) -> list[Target]: ...

    def details(self, data: dict[str, Any]) -> str: ...

    def plot(self, data: dict[str, Any], path: Path) -> None: ...


@dataclass(frozen=True, slots=True)
class Target:
    """One bar of the issue, and what this run measured against it."""

    measure: str
    bar: str
    measured: str
    met: bool | None  # None: could not be measured in this run


def say(message: str) -> None:
    """Progress on stderr (stdout stays clean)."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def new_record(
    number: int, name: str, title: str, quick: bool, params: dict[str, Any]
) -> dict[str, Any]:
    """The frame of a scenario's JSON: what ran, where, when, how to run it again."""
    return {
        "scenario": number,
        "name": name,
        "title": title,
        "quick": quick,
        "command": command_line(number, quick=quick),
        "date": now_iso(),
        "machine": machine(),
        "params": params,
        "variants": [],
        "notes": [],
    }


def emulator_figures(stats: dict[str, Any]) -> dict[str, Any]:
    """The emulator's counters worth keeping (polls summed, not per request id)."""
    polls: dict[str, int] = stats.get("polls", {})
    return {
        "requests": stats.get("requests", {}),
        "statuses": stats.get("statuses", {}),
        "rate_limited": stats.get("rate_limited", 0),
        "uploads": stats.get("uploads", 0),
        "polls": sum(polls.values()),
        "polled_requests": len(polls),
        "downloads": stats.get("downloads", 0),
        "downloads_with_auth": stats.get("downloads_with_auth", 0),
        "peak_concurrency": stats.get("peak_concurrency", 0),
        "queued": stats.get("queued", 0),
    }


@contextlib.contextmanager
def emulators(
    options: dict[str, Any], *, fresh: bool
) -> Iterator[EmulatorProcess | dict[str, Any]]:
    """What to pass `run_variant` as `emulator`: `options` (a fresh process per run) or one
    shared process started with them (reset between runs: quicker, document cache warm)."""
    if fresh:
        yield options
        return
    with EmulatorProcess(**options) as shared:
        yield shared


def run_variant(
    label: str,
    target: str,
    params: dict[str, Any],
    *,
    emulator: EmulatorProcess | dict[str, Any],
    timeout: float,
    extra: dict[str, Any] | None = None,
    inspect: Callable[[EmulatorProcess], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One measured run, recorded; a run that fails is recorded with its error, not raised.

    `emulator` is a running one (reset first: fresh limits, stats, requests;
    its document cache stays warm) or the options of a fresh one started for
    this run alone (every run then pays the emulator's first reading of each
    document alike). `inspect` reads more from the emulator after the run.
    """
    say(f"{label} ...")
    record: dict[str, Any] = {"label": label, "target": target, **(extra or {})}
    process = EmulatorProcess(**emulator) if isinstance(emulator, dict) else emulator
    try:
        if isinstance(emulator, dict):
            process.start()
        else:
            process.reset()
        record["emulator_command"] = process.command
        figures = run_child(target, {**params, "base_url": process.base_url}, timeout=timeout)
        record["figures"] = figures
        record["emulator_stats"] = emulator_figures(process.stats())
        record["emulator_cpu_s"] = round(process.cpu_used(), 3)
        if inspect is not None:
            record.update(inspect(process))
    except (ChildRunError, OSError, RuntimeError) as exc:
        record.pop("figures", None)
        record["error"] = str(exc)[-1500:]
        say(f"{label}: FAILED: {str(exc)[:300]}")
        return record
    finally:
        if isinstance(emulator, dict):
            process.stop()
    say(
        f"{label}: {figures.get('ok')} ok, {figures.get('failed')} failed, "
        f"in {figures.get('wall_s', 0):.2f} s"
    )
    return record


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    """A number for a table, `-` when missing."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def target_row(
    measure: str,
    bar: str,
    value: float | None,
    ok: Callable[[float], bool],
    shown: Callable[[float], str],
) -> Target:
    """A `Target` from a measured value (None when it could not be measured)."""
    if value is None:
        return Target(measure, bar, "not measured", None)
    return Target(measure, bar, shown(value), ok(value))
