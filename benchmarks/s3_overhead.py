"""Scenario 3: client overhead: CPU seconds per document against a bare aiohttp loop.

Zero latency, no limits, thousands of one-page documents. Both runs happen in
child processes of their own, after the same warm-up, with the same
concurrency (16); each measures its own process's CPU time (all threads) and
its event-loop thread's apart. The bare loop does the same multipart POST and
JSON parse under a semaphore, and nothing else: the floor for any aiohttp
client. With `repeats` above 1, runs alternate (client, bare, client ...) and
the lowest CPU of each is kept, which filters out other work on a shared
machine. A last run of each under pyinstrument gives the hot path and where
the difference goes, library by library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._common import Context, Target, fmt, md_table, new_record, run_variant, say, target_row
from ._documents import write_pdfs, write_pngs
from ._harness import EmulatorProcess

NUMBER = 3
NAME = "s3_overhead"
TITLE = "Client CPU overhead"

FULL: dict[str, Any] = {
    "documents": 5000,
    "warmup": 200,
    "concurrency": 16,
    "repeats": 3,
    "profiled": 2000,
    "pdf_documents": 2000,
}
QUICK: dict[str, Any] = {
    "documents": 100,
    "warmup": 10,
    "concurrency": 16,
    "repeats": 1,
    "profiled": 100,
    "pdf_documents": 50,
}

CLIENT = "this client (ocr_many, defaults)"
BARE = "bare aiohttp loop (semaphore 16)"
CLIENT_PDF = "this client, one-page PDFs"
BARE_PDF = "bare aiohttp loop, one-page PDFs"
PROFILED = "this client under pyinstrument (profile only)"
PROFILED_BARE = "bare aiohttp loop under pyinstrument (profile only)"


def run(ctx: Context) -> dict[str, Any]:
    """Client and bare runs, alternating, against one emulator (reset between); then profiles."""
    quick, work, out = ctx.quick, ctx.work, ctx.out
    p = dict(QUICK if quick else FULL)
    n, warmup = int(p["documents"]), int(p["warmup"])
    folder = work / "s3"
    say(f"scenario 3: writing {n + warmup} images")
    pattern = write_pngs(folder, n + warmup)
    docs = {
        "folder": str(folder),
        "pattern": pattern,
        "count": n,
        "first": 0,
        "warmup": warmup,
        "warmup_first": n,
    }
    emulator_options: dict[str, Any] = {"sync_latency": 0.0}
    record = new_record(NUMBER, NAME, TITLE, quick, {**p, "emulator": emulator_options})
    profile_text = out / f"{NAME}_profile.txt"
    bare_text = out / f"{NAME}_profile_bare.txt"
    timeout = 600.0
    n_pdf = int(p["pdf_documents"])
    pdf_folder = work / "s3-pdf"
    say(f"scenario 3: writing {n_pdf + warmup} one-page PDFs")
    pdfs = {
        **docs,
        "folder": str(pdf_folder),
        "pattern": write_pdfs(pdf_folder, [1] * (n_pdf + warmup)),
        "count": n_pdf,
        "warmup_first": n_pdf,
    }
    with EmulatorProcess(**emulator_options) as emulator:
        for repeat in range(int(p["repeats"])):
            for label, target, params, count in (
                (CLIENT, "_workloads:client_bulk", docs, n),
                (BARE, "_baselines:bare_aiohttp", {**docs, "concurrency": p["concurrency"]}, n),
                (CLIENT_PDF, "_workloads:client_bulk", pdfs, n_pdf),
                (
                    BARE_PDF,
                    "_baselines:bare_aiohttp",
                    {**pdfs, "concurrency": p["concurrency"]},
                    n_pdf,
                ),
            ):
                variant = run_variant(
                    label,
                    target,
                    params,
                    emulator=emulator,
                    timeout=timeout,
                    extra={"documents": count, "repeat": repeat},
                )
                _derive(variant, count)
                record["variants"].append(variant)
        profiled = {**docs, "count": int(p["profiled"])}
        for label, target, params, text in (
            (PROFILED, "_workloads:client_bulk", profiled, profile_text),
            (
                PROFILED_BARE,
                "_baselines:bare_aiohttp",
                {**profiled, "concurrency": p["concurrency"]},
                bare_text,
            ),
        ):
            variant = run_variant(
                label,
                target,
                {**params, "profile_text": str(text)},
                emulator=emulator,
                timeout=timeout,
                extra={"documents": profiled["count"], "profile_only": True},
            )
            _derive(variant, int(p["profiled"]))
            record["variants"].append(variant)
    record["profile_text"] = profile_text.name
    record["profile_text_bare"] = bare_text.name
    record["notes"].append(
        "CPU is the child process's own (`time.process_time`, every thread: the client's "
        "preflight runs in worker threads); `loop` is the event-loop thread's "
        "(`time.thread_time`)."
        + (" The lowest of the repeats is kept for each." if int(p["repeats"]) > 1 else "")
    )
    record["notes"].append(
        "pyinstrument samples the event-loop thread only, on the wall clock: the shares below "
        "are of its busy (not idle) time, and worker-thread CPU (preflight, file opens) shows "
        "in the `other threads` column instead."
    )
    return record


def _derive(variant: dict[str, Any], n: int) -> None:
    figures = variant.get("figures")
    if not figures or not figures.get("ok"):
        return
    variant["cpu_ms_per_doc"] = 1000 * figures["cpu_s"] / n
    variant["loop_cpu_ms_per_doc"] = 1000 * figures["loop_cpu_s"] / n
    variant["other_cpu_ms_per_doc"] = 1000 * (figures["cpu_s"] - figures["loop_cpu_s"]) / n
    variant["docs_per_s"] = figures["ok"] / figures["wall_s"]
    variant["emulator_cpu_ms_per_doc"] = 1000 * variant["emulator_cpu_s"] / n


def _best(data: dict[str, Any], label: str) -> dict[str, Any]:
    runs = [v for v in data["variants"] if v["label"] == label and "cpu_ms_per_doc" in v]
    return min(runs, key=lambda v: v["cpu_ms_per_doc"], default={})


def targets(data: dict[str, Any]) -> list[Target]:
    """The issue's bar for scenario 3, on one-page PNGs and on one-page PDFs."""
    rows = []
    for what, client_label, bare_label in (
        ("CPU per document vs bare aiohttp loop", CLIENT, BARE),
        ("one-page PDFs: CPU per document vs bare aiohttp loop", CLIENT_PDF, BARE_PDF),
    ):
        client, bare = _best(data, client_label), _best(data, bare_label)
        if not client and not bare and client_label == CLIENT_PDF:
            continue  # a record from before the PDF runs
        ratio = (
            client["cpu_ms_per_doc"] / bare["cpu_ms_per_doc"]
            if client.get("cpu_ms_per_doc") and bare.get("cpu_ms_per_doc")
            else None
        )
        shown = (
            f"{{:.2f}}x ({client.get('cpu_ms_per_doc', 0):.3f} vs "
            f"{bare.get('cpu_ms_per_doc', 0):.3f} ms/doc)"
        ).format
        rows.append(target_row(what, "<= 1.3x", ratio, lambda v: v <= 1.3, shown))
    return rows


def details(data: dict[str, Any]) -> str:
    """The runs, and the profile's top frames."""
    p = data["params"]
    rows = []
    for v in data["variants"]:
        if "cpu_ms_per_doc" not in v:
            rows.append([v["label"], "failed", "-", "-", "-", "-", "-"])
            continue
        rows.append(
            [
                v["label"] + (f" #{v['repeat'] + 1}" if "repeat" in v else ""),
                fmt(v["cpu_ms_per_doc"], 3),
                fmt(v["loop_cpu_ms_per_doc"], 3),
                fmt(v["other_cpu_ms_per_doc"], 3),
                fmt(v["docs_per_s"], 0),
                fmt(v["emulator_cpu_ms_per_doc"], 3),
                f"{v['figures']['ok']:,} / {v['figures'].get('failed', 0):,}",
            ]
        )
    header = [
        "run",
        "client CPU ms/doc",
        "loop thread",
        "other threads",
        "docs/s",
        "emulator CPU ms/doc",
        "ok / failed",
    ]
    parts = [
        (
            f"{p['documents']:,} one-page PNGs, and {p.get('pdf_documents', 0):,} one-page "
            f"PDFs (each after {p['warmup']} to warm up), no latency, no limits, "
            f"{p['concurrency']} requests at once."
        ),
        "",
        md_table(header, rows),
    ]
    client_profile = _profile(data, PROFILED)
    bare_profile = _profile(data, PROFILED_BARE)
    if client_profile:
        parts += [
            "",
            (
                "Hot path of this client (pyinstrument on the event-loop thread, "
                f"{client_profile['total_s']:.1f} s sampled, "
                f"{100 * client_profile['idle_share']:.0f}% of it idle in the selector); "
                "top self time, as shares of the busy time:"
            ),
            "",
            md_table(
                ["frame (self time)", "share"],
                [
                    [f"`{r['frame']}`", f"{100 * r['share']:.1f}%"]
                    for r in client_profile["self"][:10]
                ],
            ),
            "",
            "Inclusive time in the package's own functions:",
            "",
            md_table(
                ["frame (inclusive)", "share"],
                [
                    [f"`{r['frame']}`", f"{100 * r['share']:.1f}%"]
                    for r in client_profile["package"][:10]
                ],
            ),
        ]
    if client_profile and bare_profile:
        parts += ["", _by_library(data)]
    texts = [data.get("profile_text"), data.get("profile_text_bare")]
    links = [f"[{t}]({t})" for t in texts if t]
    if links:
        parts += ["", f"Full profiles: {', '.join(links)}."]
    return "\n".join(parts)


def _profile(data: dict[str, Any], label: str) -> dict[str, Any] | None:
    run = next((v for v in data["variants"] if v["label"] == label and "figures" in v), None)
    profile: dict[str, Any] | None = (run or {}).get("figures", {}).get("profile")
    return profile


def _by_library(data: dict[str, Any]) -> str:
    """Loop-thread self time by library under the profiler, the client beside the floor.

    Sampled wall time of the event-loop thread, not CPU: a C call (`<built-in>`)
    also holds the time the thread waited to take the GIL back after it.
    """
    per_doc: dict[str, dict[str, float]] = {}
    for who, label in (("client", PROFILED), ("bare", PROFILED_BARE)):
        run = next((v for v in data["variants"] if v["label"] == label and "figures" in v), None)
        profile = (run or {}).get("figures", {}).get("profile")
        if not run or not profile:
            return ""
        busy_ms = 1000 * profile["total_s"] * (1 - profile["idle_share"]) / run["documents"]
        for row in profile.get("modules", []):
            per_doc.setdefault(row["frame"], {})[who] = row["share"] * busy_ms
    rows = []
    for name, ms in sorted(per_doc.items(), key=lambda kv: -kv[1].get("client", 0.0)):
        mine, floor = ms.get("client", 0.0), ms.get("bare", 0.0)
        if max(mine, floor) < 0.02:  # the long tail, under 20 us per document either way
            continue
        rows.append([f"`{name}`", f"{mine:.3f}", f"{floor:.3f}", f"{mine - floor:+.3f}"])
    return (
        "Where the event-loop thread's time goes under the profiler, by library (self time, "
        "sampled ms per document; wall time, so `<built-in>` C calls include waits for the "
        "GIL held by worker threads):\n\n"
        + md_table(["library", "this client", "bare loop", "difference"], rows)
    )


def plot(data: dict[str, Any], path: Path) -> None:
    """CPU per document, split into the loop thread and the others."""
    import matplotlib.pyplot as plt

    shown = [v for v in (_best(data, CLIENT), _best(data, BARE)) if v]
    labels = [v["label"] for v in shown]
    loop = [v["loop_cpu_ms_per_doc"] for v in shown]
    other = [v["other_cpu_ms_per_doc"] for v in shown]
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.barh(labels, loop, color="#2b6cb0", label="event-loop thread")
    ax.barh(labels, other, left=loop, color="#90cdf4", label="other threads")
    for y, v in enumerate(shown):
        ax.text(v["cpu_ms_per_doc"], y, f" {v['cpu_ms_per_doc']:.3f} ms", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("client CPU milliseconds per document")
    ax.set_xlim(0, max([v["cpu_ms_per_doc"] for v in shown] or [1]) * 1.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(
        f"Scenario 3: client CPU per document, {data['params']['documents']:,} "
        "documents, no latency"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
