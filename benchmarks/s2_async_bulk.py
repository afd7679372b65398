"""Scenario 2: async bulk: hundreds of PDFs of 11 to 120 pages through the async endpoint.

The emulator splits each into 10-page batches run by a pool of `workers`,
`batch_latency` s each; the ideal time is the total batch work over the
workers. Compared: this client (`mode="async"`, its default polling: from
1 s, backing off to 15 s, back to 1 s on progress) and the seed's loop
(submit, poll every 5 s, download, merge) run sequentially (on a subset,
extrapolated) and in a 16-thread pool. Reported: wall time against the ideal,
polls per document (status fetches and request-list calls alike), time to the
first result, and the lag from the service completing a request to its result
in hand.

The emulator's own CPU (reading each PDF, rendering each batch) is kept off the
client's: with `emulator_core` (full runs), each variant's emulator runs pinned
to the last usable core and the measured run to the others, so neither eats
the other's core (`pinned` in the record says whether it happened).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

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
from ._documents import pdf_page_counts, write_pdfs
from ._harness import EmulatorProcess, parse_time

NUMBER = 2
NAME = "s2_async_bulk"
TITLE = "Async bulk of long PDFs"

FULL: dict[str, Any] = {
    "documents": 150,
    "pages": [11, 120],
    "batch_latency": 0.5,
    "workers": 12,
    "poll_every": 5.0,
    "threads": 16,
    "sequential_subset": 3,
    "emulator_core": True,
}
QUICK: dict[str, Any] = {
    "documents": 4,
    "pages": [11, 25],
    "batch_latency": 0.05,
    "workers": 4,
    "poll_every": 0.25,
    "threads": 2,
    "sequential_subset": 1,
    "emulator_core": False,
}

CLIENT = "this client (mode='async', default polling)"
SEQUENTIAL = "seed loop, sequential (poll every {every:g} s)"
POOL = "seed loop, {threads} threads (poll every {every:g} s)"


def run(ctx: Context) -> dict[str, Any]:
    """This client, then the seed loop sequential and pooled, each with a fresh emulator."""
    quick, work = ctx.quick, ctx.work
    p = dict(QUICK if quick else FULL)
    n = int(p["documents"])
    low, high = p["pages"]
    pages = pdf_page_counts(n, low, high)
    batches = sum(math.ceil(count / 10) for count in pages)
    latency, workers = float(p["batch_latency"]), int(p["workers"])
    ideal = batches * latency / workers
    emulator_options = {"batch_latency": latency, "workers": workers}
    folder = work / "s2"
    say(f"scenario 2: writing {n} PDFs, {sum(pages):,} pages")
    pattern = write_pdfs(folder, pages)
    docs = {"folder": str(folder), "pattern": pattern, "count": n}
    params = {
        **p,
        "emulator": emulator_options,
        "total_pages": sum(pages),
        "batches": batches,
        "ideal_s": ideal,
    }
    record = new_record(NUMBER, NAME, TITLE, quick, params)
    every, threads = float(p["poll_every"]), int(p["threads"])
    subset = min(n, int(p["sequential_subset"]))
    # Quick mode scales both down alike: the seed polls every 0.25 s, the client from 0.1 s.
    polling = {"initial": 0.1, "maximum": 0.5} if quick else {}
    timeout = 10 * ideal + 20 * every * n / threads + 120
    runs = [
        (
            CLIENT,
            "_workloads:client_bulk",
            {**docs, "mode": "async", "polling": polling, "trace_polls": True},
            n,
        ),
        (
            SEQUENTIAL.format(every=every),
            "_baselines:async_seed",
            {**docs, "count": subset, "threads": 1, "poll_every": every},
            subset,
        ),
        (
            POOL.format(threads=threads, every=every),
            "_baselines:async_seed",
            {**docs, "threads": threads, "poll_every": every},
            n,
        ),
    ]
    # Full runs: a fresh emulator per variant, so each pays its first reading of the
    # documents alike (on a core of its own with `emulator_core`); quick runs share one.
    pin = bool(p.get("emulator_core"))
    with emulators(emulator_options, fresh=not quick and not pin) as shared:
        for label, target, run_params, count in runs:
            with _emulator_for(shared, emulator_options, pin=pin) as (emulator, pinned):
                variant = run_variant(
                    label,
                    target,
                    run_params,
                    emulator=emulator,
                    timeout=timeout,
                    extra={"documents": count, "pages": sum(pages[:count]), "pinned": pinned},
                    inspect=_service_times,
                )
            _derive(variant, n, ideal)
            record["variants"].append(variant)
    record["notes"].append(
        f"The sequential loop ran {subset} of the {n} documents; its wall time for all of "
        "them is extrapolated from its documents/s on that subset."
    )
    if any(v.get("pinned") for v in record["variants"]):
        record["notes"].append(
            "Each variant's emulator ran pinned to a core of its own, the measured run to "
            "the others (`emulator_core`). Polls per document count request-list calls too."
        )
    if quick:
        record["notes"].append(
            f"Quick mode: the seed loop polls every {every:g} s instead of 5 s, and this "
            "client from 0.1 s up to 0.5 s."
        )
    return record


@contextlib.contextmanager
def _emulator_for(
    shared: EmulatorProcess | dict[str, Any], options: dict[str, Any], *, pin: bool
) -> Iterator[tuple[EmulatorProcess | dict[str, Any], bool]]:
    """The emulator for one variant: the shared one, or (`pin`) a fresh one on its own core.

    Pinned: the emulator to the last usable core, this process (and so the measured
    child it starts) to the others, restored afterwards. With fewer than 2 usable
    cores, or no affinity on this platform, nothing is pinned.
    """
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not pin or len(cores) < 2:
        yield shared, False
        return
    with EmulatorProcess(**options) as emulator:
        psutil.Process(emulator.pid).cpu_affinity(cores[-1:])
        os.sched_setaffinity(0, cores[:-1])
        try:
            yield emulator, True
        finally:
            os.sched_setaffinity(0, cores)


def _service_times(emulator: EmulatorProcess) -> dict[str, Any]:
    """When the service finished: its first and last request, from the first submit."""
    listed = emulator.request_list()
    requested = [parse_time(r["requested_at"]) for r in listed]
    completed = [parse_time(r["completed_at"]) for r in listed if r.get("completed_at")]
    if not requested or not completed:
        return {}
    start = min(requested)
    return {
        "service_first_done_s": min(completed) - start,
        "service_makespan_s": max(completed) - start,
        "submits_span_s": max(requested) - start,
        "service_completed_at": {
            r["id"]: parse_time(r["completed_at"]) for r in listed if r.get("completed_at")
        },
    }


def _lags(variant: dict[str, Any]) -> dict[str, float]:
    """Seconds from the service completing each request to its merged result in hand."""
    done_at: dict[str, float] = variant["figures"].pop("done_at", {})
    completed: dict[str, float] = variant.pop("service_completed_at", {})
    lags = sorted(done_at[rid] - completed[rid] for rid in done_at if rid in completed)
    if not lags:
        return {}
    return {
        "lag_mean_s": sum(lags) / len(lags),
        "lag_median_s": lags[len(lags) // 2],
        "lag_max_s": lags[-1],
    }


def _derive(variant: dict[str, Any], n: int, ideal: float) -> None:
    figures = variant.get("figures")
    if not figures:
        return
    count = variant["documents"]
    rate = figures["ok"] / figures["wall_s"] if figures["wall_s"] else None
    wall = n / rate if (count < n and rate) else figures["wall_s"]
    stats = variant["emulator_stats"]
    variant.update(_lags(variant))
    variant.update(
        docs_per_s=rate,
        extrapolated=count < n,
        wall_for_all_s=wall,
        vs_ideal=ideal / wall if wall else None,
        # A list call answers for many requests: it counts as one poll like a status fetch.
        polls_per_doc=(stats["polls"] + stats["requests"].get("list", 0)) / count
        if count
        else None,
        list_calls=stats["requests"].get("list", 0),
        downloads_per_doc=stats["downloads"] / count if count else None,
        first_result_s=figures.get("first_result_s"),
        # Of the time the service needed, how much the client added (polls, downloads).
        makespan_vs_wall=(
            variant["service_makespan_s"] / figures["wall_s"]
            if variant.get("service_makespan_s") and figures["wall_s"]
            else None
        ),
    )


def _by_prefix(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next((v for v in data["variants"] if v["label"].startswith(prefix)), {})


def targets(data: dict[str, Any]) -> list[Target]:
    """The issue's bars for scenario 2."""
    client = _by_prefix(data, "this client")
    loops = [v for v in data["variants"] if v["label"].startswith("seed") and "figures" in v]
    # The fixed loop to beat: the fastest one (equal or better wall time is the condition).
    best = min(loops, key=lambda v: v["wall_for_all_s"], default=None)
    fewer: float | None = None
    if best is not None and client.get("polls_per_doc") is not None:
        fewer = client["polls_per_doc"] / best["polls_per_doc"]
    faster = (
        client.get("wall_for_all_s") is not None
        and best is not None
        and (client["wall_for_all_s"] <= best["wall_for_all_s"])
    )
    shown_polls = (
        f"{client.get('polls_per_doc', 0):.2f} vs {best['polls_per_doc']:.2f} polls/doc "
        f"({best['label'].split(' (')[0]}), wall {client.get('wall_for_all_s', 0):.1f} vs "
        f"{best['wall_for_all_s']:.1f} s"
        if best is not None and fewer is not None
        else "-"
    )
    return [
        target_row(
            "time vs ideal (batch work / workers)",
            ">= 0.9",
            client.get("vs_ideal"),
            lambda v: v >= 0.9,
            "{:.3f} of ideal".format,
        ),
        target_row(
            "polls per document vs the fixed 5 s loop, at equal or better wall time",
            "fewer",
            fewer,
            lambda v: v < 1 and faster,
            lambda _v: shown_polls,
        ),
    ]


def details(data: dict[str, Any]) -> str:
    """The table of every variant."""
    p = data["params"]
    rows = []
    for v in data["variants"]:
        if "figures" not in v:
            rows.append([v["label"], "failed", *["-"] * 9])
            continue
        wall = fmt(v["wall_for_all_s"], 1) + (" (extrapolated)" if v["extrapolated"] else "")
        rows.append(
            [
                v["label"],
                f"{v['documents']:,}",
                wall,
                fmt(v["vs_ideal"], 3),
                fmt(v.get("service_makespan_s"), 1),
                fmt(v["polls_per_doc"], 2),
                fmt(v["first_result_s"], 2),
                fmt(v.get("service_first_done_s"), 2),
                fmt(v.get("lag_mean_s"), 2),
                fmt(v.get("lag_max_s"), 2),
                f"{v['figures']['ok']:,} / {v['figures'].get('failed', 0):,}",
            ]
        )
    header = [
        "variant",
        "documents run",
        "wall s (all docs)",
        "ideal / wall",
        "service done at s",
        "polls / doc",
        "first result s",
        "service's first done s",
        "lag mean s",
        "lag max s",
        "ok / failed",
    ]
    intro = (
        f"{p['documents']:,} PDFs of {p['pages'][0]}-{p['pages'][1]} pages "
        f"({p['total_pages']:,} pages, {p['batches']:,} batches of 10); the emulator runs "
        f"{p['workers']} batches at once, {p['batch_latency']} s each. Ideal time: "
        f"{p['batches']:,} x {p['batch_latency']} / {p['workers']} = {p['ideal_s']:.1f} s. "
        "`service done at`: when the emulator completed the last request, from the first "
        "submit (its own clock; the rest of the wall time is the client's to see and download "
        "it); `service's first done`: the same for the first request; `lag`: from the "
        "service completing a request to its merged result in the caller's hands (polling "
        "delay plus downloads), mean and worst over the documents."
    )
    parts = [intro, md_table(header, rows)]
    client = _by_prefix(data, "this client").get("figures", {})
    if "first_poll_wait_mean_s" in client:
        parts.append(
            "This client looks at a request as soon as it is submitted (a status fetch, "
            "or the next request-list call when several are open); that first look came "
            f"{client['first_poll_wait_mean_s']:.2f} s after the submit on average "
            f"({client['first_poll_wait_max_s']:.2f} s at worst): the list's pace, or the time "
            "polls waited for "
            "a slot behind the client's other requests (uploads and other polls)."
        )
    return "\n\n".join(parts)


def plot(data: dict[str, Any], path: Path) -> None:
    """Wall time (against the ideal) and polls per document, side by side."""
    import matplotlib.pyplot as plt

    measured = [v for v in data["variants"] if "figures" in v]
    labels = [v["label"].split(" (")[0] for v in measured]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    walls = [v["wall_for_all_s"] for v in measured]
    colors = ["#2b6cb0" if v["label"].startswith("this") else "#a0aec0" for v in measured]
    left.barh(labels, walls, color=colors)
    left.axvline(
        data["params"]["ideal_s"],
        color="#c53030",
        linestyle="--",
        label=f"ideal {data['params']['ideal_s']:.0f} s",
    )
    for y, v in enumerate(measured):
        note = " (extrapolated)" if v["extrapolated"] else ""
        left.text(
            v["wall_for_all_s"], y, f" {v['wall_for_all_s']:.0f} s{note}", va="center", fontsize=8
        )
    left.set_xlabel(f"wall seconds for all {data['params']['documents']} documents (log)")
    left.set_xscale("log")
    left.set_xlim(min([*walls, data["params"]["ideal_s"]]) / 2, max(walls) * 6)
    left.invert_yaxis()
    left.legend(fontsize=8, loc="lower right")
    polls = [v["polls_per_doc"] for v in measured]
    right.barh(labels, polls, color=colors)
    for y, value in enumerate(polls):
        right.text(value, y, f" {value:.2f}", va="center", fontsize=8)
    right.set_xlim(0, max(polls) * 1.25)
    right.set_xlabel("status polls per document")
    right.invert_yaxis()
    right.set_yticklabels([])
    fig.suptitle(
        f"Scenario 2: {data['params']['documents']} PDFs "
        f"({data['params']['total_pages']:,} pages) via the async endpoint"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
