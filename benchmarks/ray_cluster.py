"""Ray Data on a local cluster: one pace for the cluster, a kill mid-run, 1/2/4 actors.

```
python -m benchmarks.ray_cluster [--docs 2000] [--rps 20] [--kill-docs 300] [--out FILE]
```

Everything on this machine: moto's S3 in this process (loopback, free port),
the emulator in a process of its own with `--rps`, and `ray.init(num_cpus=2)`.
The documents (one-page PDFs, each with its own text) are read from S3 by
the actors; every output is checked in S3 against the document's text.

Runs:
1. `shared`: 4 actors pacing with the cluster's budget actor at `--rps`.
2. `per-actor`: 4 actors each pacing alone at `--rps` (one limiter per actor).
3. `actors-1`, `actors-2`: 1 and 2 actors with the shared budget (4 is run 1).
4. `kill`: async mode, 4 actors; one actor is killed (`ray.kill`, restart
   allowed) once a third of the documents are submitted; Ray restarts it and
   runs its batches again; the emulator counts each document's async submissions.

Figures per run: documents ok, API requests, 429s and their share,
throughput (documents per second over the window the emulator saw requests)
against the limit, and CPU seconds per document of the Ray processes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from aioupstage_ocr.ray._budget import NAMESPACE, budget_name
from benchmarks._harness import API_KEY, EmulatorProcess, machine, now_iso


@dataclass
class _Sampler:
    """Polls the emulator's stats, to find the window in which it saw traffic."""

    emulator: EmulatorProcess
    every: float = 0.25
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            stats = self.emulator.stats()
            self.samples.append((time.monotonic(), sum(stats["requests"].values())))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def window(self) -> float:
        total = self.samples[-1][1]
        first = next(t for t, n in self.samples if n > 0)
        last = next(t for t, n in self.samples if n >= total)
        return max(last - first, self.every)


def _ray_cpu(exclude: set[int]) -> dict[str, float]:
    """CPU seconds so far of the Ray processes under this one, by kind (actors, raylet...)."""
    total: dict[str, float] = {}
    for child in psutil.Process().children(recursive=True):
        if child.pid in exclude:
            continue
        try:
            times = child.cpu_times()
            line = " ".join(child.cmdline())
        except psutil.Error:
            continue
        known = ("MapWorker", "Budget", "raylet", "gcs_server", "StatsActor", "IDLE", "agent")
        kind = next((k for k in known if k in line), "other")
        total[kind] = total.get(kind, 0.0) + times.user + times.system
    return total


def _leases(ray: Any, emulator: EmulatorProcess) -> tuple[int, int]:
    """The budget actor's leases and slots granted so far (every run shares it)."""
    name = budget_name(API_KEY, "ocr", emulator.base_url)
    for _ in range(100):  # a named actor just asked for shows after a moment
        try:
            budget = ray.get_actor(name, namespace=NAMESPACE)
            break
        except ValueError:
            time.sleep(0.1)
    else:
        return 0, 0
    holders = ray.get(budget.stats.remote())["holders"]
    return (
        sum(h["leases"] for h in holders.values()),
        sum(h["granted"] for h in holders.values()),
    )


def _cpu_of(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def moto_pids() -> list[int]:
    return [p.pid for p in psutil.Process().children() if "moto.server" in " ".join(p.cmdline())]


def map_workers() -> list[psutil.Process]:
    """The Ray Data actor processes (`ray::MapWorker(...)`) under this process."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "MapWorker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _seed(bucket: str, prefix: str, count: int) -> dict[str, str]:
    """`count` one-page PDFs under `prefix` (puts in parallel); {url: expected text}."""
    import s3fs

    from aioupstage_ocr.testing import make_pdf

    expected, objects = {}, {}
    for i in range(count):
        text = f"{prefix} document {i}"
        key = f"{bucket}/{prefix}/{i // 500:03d}/doc{i:05d}.pdf"
        objects[key] = make_pdf([text])
        expected[f"s3://{key}"] = text
    s3fs.S3FileSystem().pipe(objects)
    return expected


def _check_outputs(rows: list[dict[str, Any]], expected: dict[str, str]) -> int:
    """Outputs right in S3 (read back in parallel): the count of rows whose output is right."""
    import s3fs

    from aioupstage_ocr import parse_result

    good = [row for row in rows if row["status"] == "ok" and row["text"] == expected[row["path"]]]
    stored = s3fs.S3FileSystem().cat([row["output"] for row in good], on_error="return")
    right = 0
    for row in good:
        body = stored.get(row["output"].removeprefix("s3://"))
        if isinstance(body, bytes) and body == row["result"].encode():
            right += parse_result(body).text == row["text"]
    return right


def _run(
    name: str,
    *,
    ray: Any,
    emulator: EmulatorProcess,
    bucket: str,
    expected: dict[str, str],
    prefix: str,
    actors: int,
    rps: float,
    shared: bool,
    mode: str = "sync",
    kill_after: int | None = None,
) -> dict[str, Any]:
    from aioupstage_ocr import RateLimit
    from aioupstage_ocr.ray import ocr_dataset

    emulator.reset()
    ds = ray.data.from_items([{"path": url} for url in expected])
    out = ocr_dataset(
        ds,
        api_key=API_KEY,
        base_url=emulator.base_url,
        output=f"s3://{bucket}/out-{name}",
        input_prefix=f"s3://{bucket}/{prefix}",
        rate=RateLimit(rps=rps),
        mode=mode,
        shared_budget=shared,
        concurrency=actors,
        batch_size=16,
    )
    sampler = _Sampler(emulator)
    leases_before, granted_before = _leases(ray, emulator) if shared else (0, 0)
    exclude = {emulator.pid, *moto_pids()}
    others_before = {pid: _cpu_of(pid) for pid in exclude}
    cpu_before = _ray_cpu(exclude)
    driver_before = psutil.Process().cpu_times()
    killed: list[str] = []
    earlier: set[str] = set()
    if kill_after:
        budget = ray.get_actor(budget_name(API_KEY, "ocr", emulator.base_url), namespace=NAMESPACE)
        earlier = set(ray.get(budget.actors.remote()))

    def killer() -> None:
        assert kill_after is not None
        while True:
            stats = emulator.stats()
            if sum(stats["async_submissions"].values()) >= kill_after:
                break
            time.sleep(0.2)
        # `ray.kill` of one of this run's actors (they join the budget actor as they
        # start); Ray restarts it and runs its batches again.
        budget = ray.get_actor(budget_name(API_KEY, "ocr", emulator.base_url), namespace=NAMESPACE)
        actors = ray.get(budget.actors.remote())
        ours = sorted(set(actors) - earlier)
        if ours:
            killed.append(ours[0])
            ray.kill(actors[ours[0]], no_restart=False)

    started = time.monotonic()
    sampler.start()
    kill_thread = threading.Thread(target=killer, daemon=True) if kill_after else None
    if kill_thread is not None:
        kill_thread.start()
    rows = out.take_all()
    wall = time.monotonic() - started
    sampler.stop()
    cpu_after = _ray_cpu(exclude)
    emulator_cpu = _cpu_of(emulator.pid) - others_before[emulator.pid]
    s3_cpu = sum(_cpu_of(pid) - others_before[pid] for pid in exclude if pid != emulator.pid)
    by_kind = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
    cpu = sum(by_kind.values())
    driver = psutil.Process().cpu_times()
    stats = emulator.stats()
    requests = sum(stats["requests"].values())
    throttled = int(stats["rate_limited"])
    ok = sum(1 for row in rows if row["status"] == "ok")
    window = sampler.window()
    submissions = stats["async_submissions"] if mode == "async" else stats["sync_submissions"]
    figures = {
        "name": name,
        "actors": actors,
        "shared_budget": shared,
        "mode": mode,
        "documents": len(expected),
        "rows": len(rows),
        "ok": ok,
        "outputs_right": _check_outputs(rows, expected),
        "failed": [row["error"] for row in rows if row["status"] != "ok"][:5],
        "api_requests": requests,
        "requests_by_route": stats["requests"],
        "http_429": throttled,
        "share_429": throttled / requests if requests else 0.0,
        "window_seconds": window,
        "wall_seconds": wall,
        "docs_per_second": ok / window,
        "requests_per_second": requests / window,
        "throughput_vs_limit": ok / window / rps,
        "ray_cpu_seconds": cpu,
        "cpu_ms_per_document": 1000 * cpu / max(ok, 1),
        "cpu_ms_per_document_by_process": {
            kind: 1000 * seconds / max(ok, 1) for kind, seconds in sorted(by_kind.items())
        },
        "driver_cpu_ms_per_document": 1000
        * (driver.user + driver.system - driver_before.user - driver_before.system)
        / max(ok, 1),
        "emulator_cpu_ms_per_document": 1000 * emulator_cpu / max(ok, 1),
        "s3_server_cpu_ms_per_document": 1000 * s3_cpu / max(ok, 1),
        "submitted_more_than_once": sum(1 for n in submissions.values() if n > 1),
        "submissions": sum(submissions.values()),
        "killed_actors": killed,
    }
    if shared:
        leases, granted = _leases(ray, emulator)
        figures["budget_leases"] = leases - leases_before
        figures["budget_slots_granted"] = granted - granted_before
    print(json.dumps(figures), flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ray_cluster")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--kill-docs", type=int, default=300)
    parser.add_argument("--only", default="shared,per-actor,actors-1,actors-2,kill")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    only = set(args.only.split(","))

    import socket
    import subprocess

    import ray
    import s3fs

    # Moto's S3 in a process of its own (in this one it would share the GIL
    # with Ray Data's executor), on a free loopback port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "bench-access",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(env)
    for _ in range(100):
        try:
            s3fs.S3FileSystem().mkdir("bench")
            break
        except OSError:
            time.sleep(0.2)
    results: dict[str, Any] = {
        "when": now_iso(),
        "machine": machine(),
        "command": "python -m benchmarks.ray_cluster " + " ".join(argv or sys.argv[1:]),
        "runs": [],
    }
    with EmulatorProcess(rps=args.rps) as emulator:
        results["emulator"] = emulator.describe()
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": env},
        )
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            expected = _seed("bench", "in", args.docs)
            common = {"ray": ray, "emulator": emulator, "bucket": "bench", "rps": args.rps}
            plan = [
                ("shared", 4, True),
                ("per-actor", 4, False),
                ("actors-1", 1, True),
                ("actors-2", 2, True),
            ]
            for name, actors, shared in plan:
                if name in only:
                    results["runs"].append(
                        _run(
                            name,
                            expected=expected,
                            prefix="in",
                            actors=actors,
                            shared=shared,
                            **common,
                        )
                    )
            if "kill" in only:
                kill_expected = _seed("bench", "kill", args.kill_docs)
                results["runs"].append(
                    _run(
                        "kill",
                        expected=kill_expected,
                        prefix="kill",
                        actors=4,
                        shared=True,
                        mode="async",
                        kill_after=args.kill_docs // 3,
                        **common,
                    )
                )
        finally:
            ray.shutdown()
            moto.terminate()
            moto.wait()
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
