"""Scenario 5: throughput against the concurrency setting, at a fixed latency.

The emulator answers each sync call after `latency` s, with no rate limit.
Little's law says `throughput = concurrency / latency` while nothing else
limits it; the measured curve leaves that line where the client's or the
emulator's CPU (both on this machine) becomes the limit. One child per
setting: `Limits(max_concurrency=c, max_open_documents=max(32, c),
max_connections=max(64, c))`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._common import Context, Target, fmt, md_table, new_record, run_variant, say
from ._documents import write_pngs
from ._harness import EmulatorProcess

NUMBER = 5
NAME = "s5_concurrency"
TITLE = "Throughput against concurrency"

FULL: dict[str, Any] = {
    "levels": [1, 2, 4, 8, 16, 32, 64, 128],
    "latency": 0.1,
    "seconds": 3.0,
    "min_docs": 40,
    "max_docs": 1000,
}
QUICK: dict[str, Any] = {
    "levels": [1, 8],
    "latency": 0.05,
    "seconds": 0.5,
    "min_docs": 10,
    "max_docs": 80,
}


def _docs(level: int, p: dict[str, Any]) -> int:
    """Enough documents for about `seconds` at Little's rate, within bounds."""
    wanted = int(p["seconds"] * level / p["latency"])
    return max(int(p["min_docs"]), min(int(p["max_docs"]), wanted))


def run(ctx: Context) -> dict[str, Any]:
    """One child per concurrency level against one emulator, reset between levels."""
    quick, work = ctx.quick, ctx.work
    p = dict(QUICK if quick else FULL)
    levels: list[int] = p["levels"]
    counts = {level: _docs(level, p) for level in levels}
    folder = work / "s5"
    total = sum(counts.values())
    say(f"scenario 5: writing {total:,} images")
    pattern = write_pngs(folder, total)
    emulator_options = {"sync_latency": p["latency"]}
    record = new_record(NUMBER, NAME, TITLE, quick, {**p, "emulator": emulator_options})
    first = 0
    with EmulatorProcess(**emulator_options) as emulator:
        for level in levels:
            limits = {
                "max_concurrency": level,
                "max_open_documents": max(32, level),
                "max_connections": max(64, level),
            }
            params = {
                "folder": str(folder),
                "pattern": pattern,
                "count": counts[level],
                "first": first,
                "limits": limits,
            }
            first += counts[level]
            variant = run_variant(
                f"concurrency {level}",
                "_workloads:client_bulk",
                params,
                emulator=emulator,
                timeout=120 + counts[level] * p["latency"],
                extra={"concurrency": level, "documents": counts[level]},
            )
            figures = variant.get("figures")
            if figures:
                variant["docs_per_s"] = figures["ok"] / figures["wall_s"]
                variant["littles_law"] = level / p["latency"]
                variant["of_littles_law"] = variant["docs_per_s"] / variant["littles_law"]
            record["variants"].append(variant)
    return record


def targets(data: dict[str, Any]) -> list[Target]:
    """No bar in the issue; the default setting's place on the curve, for the summary."""
    default = next((v for v in data["variants"] if v.get("concurrency") == 16), None)
    if default is None or "docs_per_s" not in default:
        return []
    return [
        Target(
            "default concurrency (16): docs/s vs Little's law",
            "(no bar)",
            f"{default['of_littles_law']:.3f} ({default['docs_per_s']:.0f} of "
            f"{default['littles_law']:.0f} docs/s)",
            None,
        )
    ]


def details(data: dict[str, Any]) -> str:
    """Throughput per setting against Little's law."""
    p = data["params"]
    rows = []
    for v in data["variants"]:
        if "docs_per_s" not in v:
            rows.append([str(v["concurrency"]), "failed", "-", "-", "-", "-"])
            continue
        rows.append(
            [
                str(v["concurrency"]),
                f"{v['documents']:,}",
                fmt(v["docs_per_s"], 1),
                fmt(v["littles_law"], 1),
                fmt(v["of_littles_law"], 3),
                str(v["emulator_stats"]["peak_concurrency"]),
            ]
        )
    header = [
        "max_concurrency",
        "documents",
        "docs/s",
        "Little's law (c / latency)",
        "measured / Little",
        "peak at the emulator",
    ]
    return (
        f"One-page PNGs, {p['latency']} s per sync call at the emulator, no rate limit.\n\n"
        + md_table(header, rows)
    )


def plot(data: dict[str, Any], path: Path) -> None:
    """Measured throughput and Little's law's line, log-log."""
    import matplotlib.pyplot as plt

    measured = [v for v in data["variants"] if "docs_per_s" in v]
    xs = [v["concurrency"] for v in measured]
    latency = data["params"]["latency"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(
        xs,
        [x / latency for x in xs],
        "--",
        color="#c53030",
        label=f"Little's law: concurrency / {latency} s",
    )
    ax.plot(xs, [v["docs_per_s"] for v in measured], "o-", color="#2b6cb0", label="measured")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("Limits.max_concurrency")
    ax.set_ylabel("documents per second")
    ax.set_title(f"Scenario 5: throughput against concurrency, {latency} s per call")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
