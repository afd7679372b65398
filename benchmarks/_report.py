"""`results.md` and the plots, regenerated from every scenario JSON in the results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from aioupstage_ocr._atomic import atomic_write_text

from ._common import Scenario, md_table
from ._harness import load_results

matplotlib.use("Agg")  # files only, never a window

__all__ = ["machine_lines", "render", "summary_table"]


def _mark(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[met]


def summary_table(scenarios: list[Scenario], results: dict[str, dict[str, Any]]) -> str:
    """One row per target of the issue: the bar, the measurement, met or not."""
    rows: list[list[str]] = []
    for scenario in scenarios:
        data = results.get(scenario.NAME)
        if data is None:
            continue
        rows.extend(
            [
                f"{scenario.NUMBER}. {scenario.TITLE}",
                target.measure,
                target.bar,
                target.measured,
                _mark(target.met),
            ]
            for target in scenario.targets(data)
        )
    return md_table(["scenario", "measure", "target", "measured", "met"], rows)


def machine_lines(data: dict[str, Any]) -> str:
    """The machine, as one paragraph of markdown."""
    m = data["machine"]
    memory = m["free_h"].splitlines()
    mem = memory[1].split()[1] if len(memory) > 1 and len(memory[1].split()) > 1 else "?"
    return (
        f"{m['nproc']} CPUs ({m['cpu_model']}), {mem} RAM (`free -h`), Python "
        f"{m['python']} ({m['implementation']}) on {m['platform']}; load average "
        f"{', '.join(str(x) for x in m['loadavg'])} when the run began"
    )


def _plot(scenario: Scenario, data: dict[str, Any], out: Path) -> str | None:
    """The scenario's PNG; None (and no file) when its runs left nothing to draw."""
    path = out / f"{scenario.NAME}.png"
    if not any("figures" in v for v in data["variants"]):
        path.unlink(missing_ok=True)
        return None
    scenario.plot(data, path)
    return path.name


def render(scenarios: list[Scenario], out: Path) -> Path:
    """Write `out/results.md` (and each scenario's PNG) from the JSON files in `out`."""
    results = load_results(out)
    present = [s for s in scenarios if s.NAME in results]
    parts = ["# Benchmark results", ""]
    if not present:
        parts.append("No results yet: run `python -m benchmarks`.")
        return atomic_write_text(out / "results.md", "\n".join(parts) + "\n")
    first = results[present[0].NAME]
    quick = any(results[s.NAME].get("quick") for s in present)
    if quick:
        parts += ["**Quick mode**: tiny sizes that check the scripts run; not a measurement.", ""]
    dates = sorted(results[s.NAME]["date"] for s in present)
    parts += [
        f"Measured {dates[0]} to {dates[-1]} (UTC) on: {machine_lines(first)}.",
        "",
        (
            "Every run (this client or a baseline) ran in a child process of its own against "
            "the emulator in another process (`aioupstage-ocr emulator ...`, its options below "
            "each table); every figure is a ratio or a side-by-side from one run of "
            f"`python -m benchmarks{' --quick' if quick else ''}`."
        ),
        "",
        "## Targets",
        "",
        summary_table(present, results),
        "",
    ]
    for scenario in present:
        data = results[scenario.NAME]
        png = _plot(scenario, data, out)
        parts += [f"## {scenario.NUMBER}. {scenario.TITLE}", "", scenario.details(data), ""]
        commands = sorted(
            {v["emulator_command"] for v in data["variants"] if "emulator_command" in v}
        )
        if commands:
            parts += ["Emulator: " + "; ".join(f"`{c}`" for c in commands), ""]
        for note in data.get("notes", []):
            parts.append(f"- {note}")
        errors = [v for v in data["variants"] if "error" in v]
        for v in errors:
            parts.append(f"- {v['label']} failed: `{v['error'].splitlines()[0][:300]}`")
        parts += [
            "",
            f"Reproduce: `{data['command']}` (on {data['date']}).",
            "",
        ]
        if png:
            parts += [f"![{scenario.TITLE}]({png})", ""]
    return atomic_write_text(out / "results.md", "\n".join(parts))
