"""Scenario 4: scale: the client's peak RSS and open files at 1,000 to 50,000 inputs.

Each size runs in a child process of its own: `ocr_many` over a generator of
paths (never a list), results dropped as they come, zero latency. The parent
samples the child's RSS and open file descriptors every 20 ms; the child
reports the kernel's high-water mark (`ru_maxrss`). The curve must be flat:
memory and files bounded by the concurrency, not by the number of inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._common import Context, Target, fmt, md_table, new_record, run_variant, say, target_row
from ._documents import write_pngs
from ._harness import EmulatorProcess

NUMBER = 4
NAME = "s4_scale"
TITLE = "Memory and open files against the number of inputs"

FULL: dict[str, Any] = {"sizes": [1000, 10_000, 50_000]}
QUICK: dict[str, Any] = {"sizes": [100, 300]}

_MIB = 2**20


def run(ctx: Context) -> dict[str, Any]:
    """One child per size, against one emulator (reset between sizes)."""
    quick, work = ctx.quick, ctx.work
    p = dict(QUICK if quick else FULL)
    sizes: list[int] = p["sizes"]
    folder = work / "s4"
    say(f"scenario 4: writing {max(sizes):,} images")
    pattern = write_pngs(folder, max(sizes))
    emulator_options = {"sync_latency": 0.0}
    record = new_record(NUMBER, NAME, TITLE, quick, {**p, "emulator": emulator_options})
    with EmulatorProcess(**emulator_options) as emulator:
        for size in sizes:
            variant = run_variant(
                f"this client, {size:,} inputs",
                "_workloads:client_bulk",
                {"folder": str(folder), "pattern": pattern, "count": size},
                emulator=emulator,
                timeout=60 + size * 0.05,
                extra={"inputs": size},
            )
            figures = variant.get("figures")
            if figures:
                variant["rss_peak_mib"] = figures["maxrss"] / _MIB
                variant["rss_before_mib"] = figures["rss_before"] / _MIB
                variant["rss_sampled_mib"] = figures["rss_peak_sampled"] / _MIB
            record["variants"].append(variant)
    record["notes"].append(
        "RSS is the whole client process's (Python, aiohttp, pypdf, Pillow included); "
        "`before` is after the imports and the client's creation, just before the run."
    )
    return record


def _sized(data: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((v for v in data["variants"] if "rss_peak_mib" in v), key=lambda v: v["inputs"])


def targets(data: dict[str, Any]) -> list[Target]:
    """The issue's bar for scenario 4: peak RSS at the largest size vs the smallest."""
    sized = _sized(data)
    ratio = sized[-1]["rss_peak_mib"] / sized[0]["rss_peak_mib"] if len(sized) > 1 else None
    small, large = (sized[0], sized[-1]) if sized else ({}, {})
    shown = (
        f"{{:.3f}}x ({large.get('rss_peak_mib', 0):.1f} vs {small.get('rss_peak_mib', 0):.1f} "
        f"MiB; files {large.get('figures', {}).get('fds_peak', '-')} vs "
        f"{small.get('figures', {}).get('fds_peak', '-')})"
    ).format
    big, little = large.get("inputs", 0), small.get("inputs", 0)
    return [
        target_row(
            f"peak RSS at {big:,} inputs vs at {little:,}",
            "<= 1.2x",
            ratio,
            lambda v: v <= 1.2,
            shown,
        ),
    ]


def details(data: dict[str, Any]) -> str:
    """RSS and open files per size."""
    rows = []
    for v in data["variants"]:
        if "figures" not in v:
            rows.append([f"{v['inputs']:,}", "failed", "-", "-", "-", "-", "-"])
            continue
        f = v["figures"]
        rows.append(
            [
                f"{v['inputs']:,}",
                fmt(v["rss_before_mib"], 1),
                fmt(v["rss_peak_mib"], 1),
                fmt(v["rss_sampled_mib"], 1),
                str(f["fds_peak"]),
                fmt(f["wall_s"], 1),
                f"{f['ok']:,} / {f.get('failed', 0):,}",
            ]
        )
    header = [
        "inputs",
        "RSS before MiB",
        "peak RSS MiB (maxrss)",
        "peak RSS MiB (sampled)",
        "peak open fds (sampled)",
        "wall s",
        "ok / failed",
    ]
    return (
        "One-page PNGs (distinct, ~130 bytes each), paths from a generator, zero latency, "
        "default limits.\n\n" + md_table(header, rows)
    )


def plot(data: dict[str, Any], path: Path) -> None:
    """Peak RSS and peak open files against the number of inputs (log x)."""
    import matplotlib.pyplot as plt

    sized = _sized(data)
    xs = [v["inputs"] for v in sized]
    fig, left = plt.subplots(figsize=(7, 4))
    left.plot(xs, [v["rss_peak_mib"] for v in sized], "o-", color="#2b6cb0", label="peak RSS (MiB)")
    left.plot(
        xs,
        [v["rss_before_mib"] for v in sized],
        "o:",
        color="#90cdf4",
        label="RSS before the run (MiB)",
    )
    left.set_xscale("log")
    left.set_xlabel("inputs (paths on a generator)")
    left.set_ylabel("MiB")
    left.set_ylim(0, max([v["rss_peak_mib"] for v in sized] or [1]) * 1.4)
    right = left.twinx()
    right.plot(
        xs, [v["figures"]["fds_peak"] for v in sized], "s--", color="#c05621", label="peak open fds"
    )
    right.set_ylabel("open file descriptors")
    right.set_ylim(0, max([v["figures"]["fds_peak"] for v in sized] or [1]) * 1.6)
    lines = left.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    left.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="lower right")
    left.set_title("Scenario 4: client memory and files against inputs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
