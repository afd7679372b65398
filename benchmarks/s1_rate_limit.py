"""Scenario 1: sync bulk under the server's rate limit.

Thousands of one-page images, each sync call taking `latency` s at the
emulator, which answers 429 (with `Retry-After`) beyond `rps` requests per
second. The ideal time is `documents / rps`. Compared: this client with its
defaults (no rate given: it finds the pace from 429s), this client given the
right `rps`, the sequential `requests` loop (on a subset; its documents/s
extrapolated), a 16-thread `requests` pool that sleeps 1 s on a 429, and an
unbounded `asyncio.gather` on aiohttp.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._common import (
    Context,
    Target,
    emulators,
    fmt,
    md_table,
    new_record,
    run_variant,
    say,
    target_row,
)
from ._documents import write_pngs

NUMBER = 1
NAME = "s1_rate_limit"
TITLE = "Sync bulk under a server rate limit"

# rps x latency = 12 calls in flight at the limit: the sequential loop (one in flight)
# can reach 1/12 of it, so the 10x bar is reachable; the client's default 16 suffices.
FULL: dict[str, Any] = {"documents": 1200, "rps": 40.0, "latency": 0.3, "sequential_subset": 40}
QUICK: dict[str, Any] = {"documents": 20, "rps": 40.0, "latency": 0.05, "sequential_subset": 3}

CLIENT_DEFAULT = "this client, defaults (no rate given)"
CLIENT_RATE = "this client, rps given"
SEQUENTIAL = "requests, sequential loop"
POOL = "requests, 16 threads, sleep(1) on 429"
GATHER = "aiohttp, unbounded asyncio.gather"


def run(ctx: Context) -> dict[str, Any]:
    """Every variant against a fresh emulator process of its own; the record."""
    quick, work = ctx.quick, ctx.work
    p = dict(QUICK if quick else FULL)
    n, rps = int(p["documents"]), float(p["rps"])
    emulator_options = {"sync_latency": p["latency"], "rps": rps}
    folder = work / "s1"
    say(f"scenario 1: writing {n} images")
    pattern = write_pngs(folder, n)
    docs = {"folder": str(folder), "pattern": pattern, "count": n}
    record = new_record(
        NUMBER, NAME, TITLE, quick, {**p, "emulator": emulator_options, "ideal_s": n / rps}
    )
    timeout = 20 * n / rps + 120
    subset = min(n, int(p["sequential_subset"]))
    runs = [
        (CLIENT_DEFAULT, "_workloads:client_bulk", docs, n),
        (CLIENT_RATE, "_workloads:client_bulk", {**docs, "rps": rps}, n),
        (SEQUENTIAL, "_baselines:sync_sequential", {**docs, "count": subset}, subset),
        (POOL, "_baselines:sync_thread_pool", {**docs, "threads": 16}, n),
        (GATHER, "_baselines:sync_gather", docs, n),
    ]
    # Full runs: a fresh emulator per variant, so each pays its first reading of the
    # documents alike; quick runs share one.
    with emulators(emulator_options, fresh=not quick) as emulator:
        for label, target, params, count in runs:
            variant = run_variant(
                label,
                target,
                params,
                emulator=emulator,
                timeout=timeout,
                extra={"documents": count},
            )
            _derive(variant, n, rps)
            record["variants"].append(variant)
    record["notes"].append(
        f"The sequential loop ran {subset} of the {n} documents (at {p['latency']} s a call it "
        f"would take about {n * float(p['latency']):.0f} s); its documents/s is measured on "
        "that subset and its wall time for all documents extrapolated from it."
    )
    record["notes"].append(
        "The unbounded gather is bounded only by aiohttp's default connector (100 connections)."
    )
    return record


def _derive(variant: dict[str, Any], n: int, rps: float) -> None:
    figures = variant.get("figures")
    if not figures:
        return
    count = variant["documents"]
    rate = figures["ok"] / figures["wall_s"] if figures["wall_s"] else None
    variant["docs_per_s"] = rate
    variant["extrapolated"] = count < n
    wall = n / rate if (count < n and rate) else figures["wall_s"]
    variant["wall_for_all_s"] = wall
    variant["vs_ideal"] = (n / rps) / wall if wall else None
    variant["rate_limited"] = variant["emulator_stats"]["rate_limited"]


def _variant(data: dict[str, Any], label: str) -> dict[str, Any]:
    return next((v for v in data["variants"] if v["label"] == label), {})


def targets(data: dict[str, Any]) -> list[Target]:
    """The issue's bars for scenario 1."""
    given, default = _variant(data, CLIENT_RATE), _variant(data, CLIENT_DEFAULT)
    sequential = _variant(data, SEQUENTIAL)
    seq_rate = sequential.get("docs_per_s")
    speedup = default["docs_per_s"] / seq_rate if default.get("docs_per_s") and seq_rate else None
    share = "{:.3f} of ideal".format
    return [
        target_row(
            "rps given: time vs ideal", ">= 0.95", given.get("vs_ideal"), lambda v: v >= 0.95, share
        ),
        target_row(
            "no rate given: time vs ideal",
            ">= 0.85",
            default.get("vs_ideal"),
            lambda v: v >= 0.85,
            share,
        ),
        target_row(
            "no rate given vs sequential loop (docs/s)",
            ">= 10x",
            speedup,
            lambda v: v >= 10,
            "{:.1f}x".format,
        ),
    ]


def details(data: dict[str, Any]) -> str:
    """The table of every variant."""
    p = data["params"]
    rows = []
    for v in data["variants"]:
        if "figures" not in v:
            rows.append([v["label"], "failed", *["-"] * 7])
            continue
        f = v["figures"]
        wall = fmt(v["wall_for_all_s"], 1) + (" (extrapolated)" if v["extrapolated"] else "")
        rows.append(
            [
                v["label"],
                f"{v['documents']:,}",
                wall,
                fmt(v["docs_per_s"], 2),
                f"{v['rate_limited']:,}",
                f"{sum(v['emulator_stats']['requests'].values()):,}",
                fmt(v["vs_ideal"], 3),
                fmt(f["cpu_total"], 1),
                f"{f['ok']:,} / {f.get('failed', 0):,}",
            ]
        )
    header = [
        "variant",
        "documents run",
        "wall s (all docs)",
        "docs/s",
        "429s received",
        "requests sent",
        "ideal / wall",
        "client CPU s",
        "ok / failed",
    ]
    intro = (
        f"{p['documents']:,} one-page PNGs; the emulator takes {p['latency']} s per sync call "
        f"and allows {p['rps']:g} requests/s (429 with Retry-After beyond). "
        f"Ideal time: {p['documents']:,} / {p['rps']:g} = {p['ideal_s']:.1f} s. "
        "`client CPU s`: the whole client process's, imports included."
    )
    return intro + "\n\n" + md_table(header, rows)


def plot(data: dict[str, Any], path: Path) -> None:
    """Documents/s of each variant, with the limit's line."""
    import matplotlib.pyplot as plt

    measured = [v for v in data["variants"] if "figures" in v]
    labels = [v["label"].replace(", ", ",\n", 1) for v in measured]
    rates = [v["docs_per_s"] or 0.0 for v in measured]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    colors = ["#2b6cb0" if v["label"].startswith("this") else "#a0aec0" for v in measured]
    bars = ax.barh(labels, rates, color=colors)
    ax.axvline(
        data["params"]["rps"],
        color="#c53030",
        linestyle="--",
        label=f"server limit: {data['params']['rps']:g} requests/s",
    )
    for bar, v in zip(bars, measured, strict=True):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {v['docs_per_s']:.1f}/s, {v['rate_limited']:,} x 429",
            va="center",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
        )
    ax.invert_yaxis()
    ax.set_xlabel("documents per second")
    ax.set_xlim(0, max([*rates, data["params"]["rps"]]) * 1.45)
    ax.set_title(
        f"Scenario 1: {data['params']['documents']:,} sync documents under "
        f"{data['params']['rps']:g} RPS, {data['params']['latency']} s per call"
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
