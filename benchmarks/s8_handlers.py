"""Scenario 8: request handlers on a client a bulk run is using, against an idle one.

One client, as a web app shares it: first `handlers` concurrent `ocr()` calls
on the idle client; then the bulk run alone (`ocr_many` over `documents`
one-page images); then the same bulk run again, and once a quarter of it is
done, `handlers` concurrent `ocr()` calls of other images. The emulator
and the client are held to `rps`: the bulk run keeps the pacer's queue full,
so without priority a handler's call waits behind it. Figures: the handler
calls' median and p95 latency, busy against idle, and the bulk run's
slowdown from the handlers.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ._common import Context, Target, fmt, md_table, new_record, run_variant, say, target_row
from ._documents import write_pngs
from ._harness import EmulatorProcess

NUMBER = 8
NAME = "s8_handlers"
TITLE = "Request handlers during a bulk run"

FULL: dict[str, Any] = {"documents": 2000, "handlers": 20, "rps": 50.0, "latency": 0.2}
QUICK: dict[str, Any] = {"documents": 60, "handlers": 5, "rps": 50.0, "latency": 0.05}

LABEL = "this client: handler calls, idle then during a bulk run"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run(ctx: Context) -> dict[str, Any]:
    """One child: idle handler calls, the bulk run alone, the bulk run with handler calls."""
    p = dict(QUICK if ctx.quick else FULL)
    n, calls = int(p["documents"]), int(p["handlers"])
    folder = ctx.work / "s8"
    say(f"scenario 8: writing {2 * n + 2 * calls:,} images")
    pattern = write_pngs(folder, 2 * n + 2 * calls)
    emulator_options = {"rps": p["rps"], "sync_latency": p["latency"]}
    record = new_record(NUMBER, NAME, TITLE, ctx.quick, {**p, "emulator": emulator_options})
    with EmulatorProcess(**emulator_options) as emulator:
        variant = run_variant(
            LABEL,
            "_workloads:client_handlers",
            {
                "folder": str(folder),
                "pattern": pattern,
                "count": n,
                "handlers": calls,
                "rps": p["rps"],
            },
            emulator=emulator,
            timeout=300 + 3 * n / p["rps"],
        )
    figures = variant.get("figures")
    if figures:
        idle, busy = figures["idle_s"], figures["busy_s"]
        variant.update(
            idle_median_s=statistics.median(idle),
            idle_p95_s=_p95(idle),
            busy_median_s=statistics.median(busy),
            busy_p95_s=_p95(busy),
            bulk_slowdown=figures["bulk_busy_s"] / figures["bulk_alone_s"],
        )
        variant["median_ratio"] = variant["busy_median_s"] / variant["idle_median_s"]
        variant["p95_ratio"] = variant["busy_p95_s"] / variant["idle_p95_s"]
    record["variants"].append(variant)
    return record


def targets(data: dict[str, Any]) -> list[Target]:
    """Handler latency during the bulk run against idle, median and p95."""
    v = data["variants"][0] if data["variants"] else {}
    return [
        target_row(
            f"{key.split('_')[0]} latency of {data['params']['handlers']} handler calls "
            "during a bulk run vs idle",
            "<= 1.5x",
            v.get(key),
            lambda r: r <= 1.5,
            lambda r: f"{r:.2f}x",
        )
        for key in ("median_ratio", "p95_ratio")
    ]


def details(data: dict[str, Any]) -> str:
    """The handler calls' latency, idle and busy, and the bulk run's times."""
    p = data["params"]
    v = data["variants"][0] if data["variants"] else {}
    if "median_ratio" not in v:
        return f"The run failed: {v.get('error', 'no figures')}"
    f = v["figures"]
    rows = [
        ["idle client", fmt(v["idle_median_s"], 3), fmt(v["idle_p95_s"], 3), "-"],
        [
            (
                f"during the bulk run (from {f['handlers_started_at_done']:,} to "
                f"{f['handlers_ended_at_done']:,} of {p['documents']:,} done)"
            ),
            fmt(v["busy_median_s"], 3),
            fmt(v["busy_p95_s"], 3),
            f"{v['median_ratio']:.2f}x / {v['p95_ratio']:.2f}x",
        ],
    ]
    table = md_table(["handler calls", "median s", "p95 s", "vs idle (median / p95)"], rows)
    return (
        f"{p['handlers']} concurrent `ocr()` calls of one-page images on one client; "
        f"{p['documents']:,}-image `ocr_many` runs on the same client; emulator and client "
        f"at {p['rps']:g} RPS, {p['latency']} s a call.\n\n{table}\n\n"
        f"Bulk run alone {fmt(f['bulk_alone_s'], 1)} s; with the handler calls "
        f"{fmt(f['bulk_busy_s'], 1)} s (slowdown {v['bulk_slowdown']:.3f}x); "
        f"{f['ok']:,} ok, {f['failed']} failed."
    )


def plot(data: dict[str, Any], path: Path) -> None:
    """Handler latencies, idle and busy, as sorted points."""
    import matplotlib.pyplot as plt

    v = data["variants"][0] if data["variants"] else {}
    f = v.get("figures")
    if not f:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("idle_s", "idle client"), ("busy_s", "during the bulk run")):
        values = sorted(f[key])
        ax.plot(range(1, len(values) + 1), values, "o-", label=label)
    ax.set_xlabel("handler call (sorted by latency)")
    ax.set_ylabel("seconds")
    ax.set_title("Scenario 8: handler calls during a bulk run")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
