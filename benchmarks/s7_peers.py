"""Scenario 7: beside the peers, and against a service that queues past its capacity.

- Peers: 120 one-page images, 0.3 s a sync call, no rate limit. This client
  with its defaults (the window found from the service, up to 64) and with
  `Limits(max_concurrency=16)`, beside a 16-thread `requests` pool.
- Mixed: 240 images and 30 PDFs of 11-35 pages (sync) interleaved, then 6
  PDFs of 101-160 pages (async) last, on a service at 20 RPS with 8 batch
  workers; ideal = max((uploads + one status per async request - the burst)
  / RPS, async batch work / workers).
- Capacity: the emulator processes `capacity` sync calls at once; the rest
  wait their turn, so latency grows with the queue past it. The client (its
  defaults) should settle its window near the capacity: throughput against
  capacity / latency, the share of calls that waited in the emulator's queue
  (`EmulatorStats.queued`), and the window the client ended with.

Each variant gets a fresh emulator process of its own.
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
from ._documents import pdf_page_counts, write_pdfs, write_pngs

NUMBER = 7
NAME = "s7_peers"
TITLE = "Beside the peers; a service at capacity"

FULL: dict[str, Any] = {
    "documents": 120,
    "latency": 0.3,
    "capacity": 16,
    "capacity_latency": 0.2,
    "capacity_documents": 800,
    "mixed": {
        "images": 240,
        "sync_pdfs": 30,
        "async_pdfs": 6,
        "rps": 20.0,
        "workers": 8,
        "batch_latency": 1.0,
        "sync_latency": 0.3,
    },
}
QUICK: dict[str, Any] = {
    "documents": 12,
    "latency": 0.05,
    "capacity": 4,
    "capacity_latency": 0.05,
    "capacity_documents": 40,
    "mixed": {
        "images": 12,
        "sync_pdfs": 2,
        "async_pdfs": 1,
        "rps": 20.0,
        "workers": 8,
        "batch_latency": 0.05,
        "sync_latency": 0.05,
    },
}

DEFAULTS = "this client, defaults"
AT_16 = "this client, max_concurrency=16"
POOL = "requests, 16 threads"
CAPACITY = "this client, defaults, service at capacity"
MIXED = "this client, rps given, mixed workload"


def run(ctx: Context) -> dict[str, Any]:
    """The peers' workload three ways, then the capacity workload; the record."""
    p = dict(QUICK if ctx.quick else FULL)
    n, latency = int(p["documents"]), float(p["latency"])
    folder = ctx.work / "s7"
    total = n + int(p["capacity_documents"])
    say(f"scenario 7: writing {total} images")
    pattern = write_pngs(folder, total)
    record = new_record(NUMBER, NAME, TITLE, ctx.quick, p)
    docs = {"folder": str(folder), "pattern": pattern, "count": n}
    timeout = 120 + 4 * n * latency
    with emulators({"sync_latency": latency}, fresh=True) as emulator:
        for label, target, params in (
            (POOL, "_baselines:sync_thread_pool", {**docs, "threads": 16}),
            (DEFAULTS, "_workloads:client_bulk", docs),
            (AT_16, "_workloads:client_bulk", {**docs, "limits": {"max_concurrency": 16}}),
        ):
            record["variants"].append(
                run_variant(label, target, params, emulator=emulator, timeout=timeout)
            )
    capacity, c_latency = int(p["capacity"]), float(p["capacity_latency"])
    c_docs = int(p["capacity_documents"])
    options = {"sync_latency": c_latency, "capacity": capacity}
    with emulators(options, fresh=True) as emulator:
        variant = run_variant(
            CAPACITY,
            "_workloads:client_bulk",
            {"folder": str(folder), "pattern": pattern, "count": c_docs, "first": n},
            emulator=emulator,
            timeout=120 + 4 * c_docs * c_latency / capacity,
            extra={"capacity": capacity, "latency": c_latency, "documents": c_docs},
        )
        figures = variant.get("figures")
        if figures:
            variant["docs_per_s"] = figures["ok"] / figures["wall_s"]
            variant["of_capacity"] = variant["docs_per_s"] / (capacity / c_latency)
            variant["queued_share"] = variant["emulator_stats"]["queued"] / max(1, c_docs)
        record["variants"].append(variant)
    record["variants"].append(_mixed(ctx, p["mixed"], folder, pattern))
    return record


def _mixed(ctx: Context, m: dict[str, Any], images: Path, pattern: str) -> dict[str, Any]:
    """Images and sync PDFs interleaved, the async PDFs last (the worst place for them)."""
    sync_pages = pdf_page_counts(int(m["sync_pdfs"]), 11, 35, seed=11)
    async_pages = pdf_page_counts(int(m["async_pdfs"]), 101, 160, seed=12)
    say(f"scenario 6: writing {len(sync_pages) + len(async_pages)} PDFs")
    sync_folder, async_folder = ctx.work / "s6-sync", ctx.work / "s6-async"
    sync_pattern = write_pdfs(sync_folder, sync_pages, tag="sync ")
    async_pattern = write_pdfs(async_folder, async_pages, tag="async ")
    order = [f"{images}/{pattern.format(n)}" for n in range(int(m["images"]))]
    step = max(1, len(order) // max(1, len(sync_pages)))
    for n in range(len(sync_pages)):
        order.insert(n * (step + 1), f"{sync_folder}/{sync_pattern.format(n)}")
    order += [f"{async_folder}/{async_pattern.format(n)}" for n in range(len(async_pages))]
    rps, workers = float(m["rps"]), int(m["workers"])
    batches = sum(-(-pages // 10) for pages in async_pages)
    unavoidable = len(order) + len(async_pages)  # every upload, one status per async request
    burst = max(1, -(-int(rps) // 1))
    ideal = max((unavoidable - burst) / rps, batches * float(m["batch_latency"]) / workers)
    options = {
        "rps": rps,
        "workers": workers,
        "batch_latency": m["batch_latency"],
        "sync_latency": m["sync_latency"],
    }
    with emulators(options, fresh=True) as emulator:
        variant = run_variant(
            MIXED,
            "_workloads:client_bulk",
            {
                "folder": str(images),
                "pattern": pattern,
                "paths": order,
                "count": len(order),
                "rps": rps,
            },
            emulator=emulator,
            timeout=120 + 6 * ideal,
            extra={"documents": len(order), "ideal_s": ideal, "batches": batches},
        )
    figures = variant.get("figures")
    if figures:
        variant["vs_ideal"] = ideal / figures["wall_s"]
    return variant


def _wall(data: dict[str, Any], label: str) -> float | None:
    v = next((v for v in data["variants"] if v["label"] == label), None)
    if v is None or "figures" not in v:
        return None
    return float(v["figures"]["wall_s"])


def targets(data: dict[str, Any]) -> list[Target]:
    """The issue's bars: 1.2x the pool with defaults, 1.0x at 16; the capacity workload."""
    pool = _wall(data, POOL)
    rows = []
    for label, bar in ((DEFAULTS, 1.2), (AT_16, 1.0)):
        ours = _wall(data, label)
        ratio = pool / ours if pool and ours else None
        rows.append(
            target_row(
                f"120 images, 0.3 s a call: {label} vs {POOL} (speed)",
                f">= {bar}x",
                ratio,
                lambda r, bar=bar: r >= bar,
                lambda r: f"{r:.2f}x",
            )
        )
    cap = next((v for v in data["variants"] if v["label"] == CAPACITY), None)
    measured = cap if cap is not None and "of_capacity" in cap else None
    rows.append(
        target_row(
            "service at capacity: throughput / (capacity / latency)",
            ">= 0.9",
            measured["of_capacity"] if measured else None,
            lambda r: r >= 0.9,
            lambda r: f"{r:.3f}",
        )
    )
    rows.append(
        target_row(
            "service at capacity: share of calls queued past it",
            "<= 5%",
            measured["queued_share"] if measured else None,
            lambda r: r <= 0.05,
            lambda r: f"{100 * r:.1f}%",
        )
    )
    mixed = next((v for v in data["variants"] if v["label"] == MIXED and "vs_ideal" in v), None)
    rows.append(
        target_row(
            "mixed workload (images, sync PDFs, async PDFs last) under 20 RPS: ideal / wall",
            ">= 0.9",
            mixed["vs_ideal"] if mixed else None,
            lambda r: r >= 0.9,
            lambda r: f"{r:.3f}",
        )
    )
    found = measured["figures"].get("found_concurrency") if measured else None
    capacity = data["params"]["capacity"]
    rows.append(
        target_row(
            f"service at capacity: the window found (capacity {capacity})",
            "near the capacity",
            found,
            lambda r: abs(r - capacity) <= max(2, capacity / 8),
            lambda r: f"{r:.0f}",
        )
    )
    return rows


def details(data: dict[str, Any]) -> str:
    """Each variant's wall time, speed against the pool, and what the emulator saw."""
    p = data["params"]
    pool = _wall(data, POOL)
    rows = []
    for v in data["variants"]:
        f = v.get("figures")
        if f is None:
            rows.append([v["label"], "failed", "-", "-", "-", "-", "-"])
            continue
        same = v["label"] not in (CAPACITY, MIXED)
        rows.append(
            [
                v["label"],
                f"{f['ok']:,}",
                fmt(f["wall_s"], 2),
                fmt(pool / f["wall_s"], 2, "x") if same and pool else "-",
                str(v["emulator_stats"]["peak_concurrency"]),
                str(f.get("found_concurrency", "-")),
                f"{v['emulator_stats'].get('queued', 0):,}",
            ]
        )
    header = [
        "variant",
        "documents",
        "wall s",
        "speed vs the pool",
        "peak at the emulator",
        "window at the end",
        "calls queued at the emulator",
    ]
    return (
        f"{p['documents']} one-page PNGs at {p['latency']} s a sync call, no rate limit; then "
        f"{p['capacity_documents']} at {p['capacity_latency']} s a call on a service "
        f"processing {p['capacity']} at once (ideal "
        f"{p['capacity_documents'] * p['capacity_latency'] / p['capacity']:.1f} s).\n\n"
        + md_table(header, rows)
    )


def plot(data: dict[str, Any], path: Path) -> None:
    """Wall time of each variant of the peers' workload."""
    import matplotlib.pyplot as plt

    measured = [
        v for v in data["variants"] if "figures" in v and v["label"] not in (CAPACITY, MIXED)
    ]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    colors = ["#2b6cb0" if v["label"].startswith("this") else "#a0aec0" for v in measured]
    ax.barh([v["label"] for v in measured], [v["figures"]["wall_s"] for v in measured],
            color=colors)  # fmt: skip
    ax.invert_yaxis()
    ax.set_xlabel("wall seconds (lower is better)")
    ax.set_title(
        f"Scenario 7: {data['params']['documents']} images, {data['params']['latency']} s a call"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
