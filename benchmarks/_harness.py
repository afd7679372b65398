"""The machinery every scenario shares: the emulator process, child runs, the machine, JSON.

- `EmulatorProcess`: `python -m aioupstage_ocr emulator --port 0 ...` in a
  process of its own; its URL from the first stdout line, its stats and
  configuration from the control routes, SIGTERM to stop it.
- `run_child`: one measured run (`benchmarks._child`) in a fresh process,
  sampled from outside for RSS and open files; its figures as a dict.
- `machine`, `write_result`, `load_results`: what the JSON files carry.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil  # type: ignore[import-untyped]

from aioupstage_ocr._atomic import atomic_write_text

__all__ = [
    "API_KEY",
    "RESULTS",
    "ChildRunError",
    "EmulatorProcess",
    "command_line",
    "load_results",
    "machine",
    "now_iso",
    "parse_time",
    "run_child",
    "write_result",
]

#: Where full runs write (`--out` overrides it).
RESULTS = Path(__file__).resolve().parent / "results"
#: The key every run sends (the emulator takes any non-empty key).
API_KEY = "bench-key"
#: How often the parent samples a child's RSS and open files, in seconds.
_SAMPLE_EVERY = 0.02
_RESULT_MARK = "BENCH-RESULT "


class ChildRunError(RuntimeError):
    """A measured run exited non-zero, timed out, or printed no result."""


def _log_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / "aioupstage-ocr-bench-logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --------------------------------------------------------------------------- the emulator


def _option(name: str, value: object) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + name.replace("_", "-")]
    if isinstance(value, list | tuple):
        return [flag, ",".join(str(v) for v in value)]
    return [flag, str(value)]


class EmulatorProcess:
    """The emulator in its own process, started with `options` (EmulatorConfig fields).

    ```python
    with EmulatorProcess(sync_latency=0.3, rps=20) as emulator:
        emulator.base_url, emulator.stats(), emulator.config
    ```
    """

    def __init__(self, **options: object) -> None:
        self.options = dict(options)
        self.argv = [sys.executable, "-m", "aioupstage_ocr", "emulator", "--port", "0"]
        for name, value in options.items():
            self.argv += _option(name, value)
        self.base_url = ""
        self.root = ""
        self.config: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._cpu_start = 0.0

    @property
    def command(self) -> str:
        """The command line that starts it (as a user would type it)."""
        return shlex.join(["aioupstage-ocr", *self.argv[3:]])

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait for `emulator listening on http://.../v1 (storage ...)`."""
        log = (_log_dir() / f"emulator-{os.getpid()}-{time.monotonic_ns()}.log").open("wb")
        self._process = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
        )
        log.close()
        assert self._process.stdout is not None
        line: list[bytes] = []
        reader = threading.Thread(
            target=lambda: line.append(self._process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(timeout)
        first = line[0].decode() if line else ""
        if not first.startswith("emulator listening on "):
            self.stop()
            raise RuntimeError(
                f"the emulator did not start ({self.command}); first line: {first!r}; "
                f"log in {log.name}"
            )
        self.base_url = first.split()[3]
        self.root = self.base_url.removesuffix("/v1")
        # An empty change answers with the whole configuration in force.
        self.config = self._control("POST", "configure", b"{}")["config"]
        self._cpu_start = self.cpu_seconds()

    def _control(self, method: str, action: str, body: bytes | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.root}/_emulator/{action}", data=body, method=method
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    def stats(self) -> dict[str, Any]:
        """`GET /_emulator/stats` (control routes are not counted in them)."""
        return self._control("GET", "stats")

    def request_list(self) -> list[dict[str, Any]]:
        """The service's list of requests (`GET /v1/document-digitization/requests`).

        It counts in the stats as a `list` request: read the stats first.
        """
        request = urllib.request.Request(
            f"{self.base_url}/document-digitization/requests",
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            data: dict[str, Any] = json.loads(response.read())
        requests: list[dict[str, Any]] = data["requests"]
        return requests

    def reset(self) -> None:
        """`POST /_emulator/reset`: initial configuration, zero stats, no requests."""
        self._control("POST", "reset", b"")
        self._cpu_start = self.cpu_seconds()

    def cpu_seconds(self) -> float:
        """CPU seconds the emulator process has used (user + system)."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def cpu_used(self) -> float:
        """CPU seconds since the start or the last `reset`."""
        return self.cpu_seconds() - self._cpu_start

    def stop(self) -> None:
        """SIGTERM, then wait (SIGKILL after 10 s)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def describe(self) -> dict[str, Any]:
        """What the JSON records: the command, the options given, the configuration in force."""
        return {"command": self.command, "options": self.options, "config": self.config}


# --------------------------------------------------------------------------- child runs


def run_child(target: str, params: Mapping[str, Any], *, timeout: float = 900.0) -> dict[str, Any]:
    """Run `module:function(params)` in a fresh `python -m benchmarks._child` process.

    The parent samples the child's RSS and open files every 20 ms (`rss_peak_sampled`,
    `fds_peak`); the child reports its own figures plus `maxrss` (the kernel's
    high-water mark) and `cpu_total`.
    """
    argv = [sys.executable, "-m", "benchmarks._child", target, json.dumps(dict(params))]
    log_path = _log_dir() / f"child-{os.getpid()}-{time.monotonic_ns()}.log"
    cwd = Path(__file__).resolve().parent.parent
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, cwd=cwd
        )
        out: list[bytes] = []
        reader = threading.Thread(target=lambda: out.append(process.stdout.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        watched = psutil.Process(process.pid)
        rss_peak, fds_peak = 0, 0
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise ChildRunError(f"{target} ran over {timeout:.0f} s; log in {log_path}")
            try:
                rss_peak = max(rss_peak, watched.memory_info().rss)
                fds_peak = max(fds_peak, watched.num_fds())
            except psutil.Error:
                break
            time.sleep(_SAMPLE_EVERY)
        process.wait()
        reader.join(30)
    text = b"".join(out).decode(errors="replace")
    result_lines = [line for line in text.splitlines() if line.startswith(_RESULT_MARK)]
    if process.returncode != 0 or not result_lines:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise ChildRunError(
            f"{target} exited {process.returncode} without a result; log {log_path}:\n{tail}"
        )
    result: dict[str, Any] = json.loads(result_lines[-1][len(_RESULT_MARK) :])
    result["rss_peak_sampled"] = rss_peak
    result["fds_peak"] = fds_peak
    return result


# --------------------------------------------------------------------------- records


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _free() -> str:
    free = shutil.which("free")
    if free is None:
        return f"{psutil.virtual_memory().total / 2**30:.1f} GiB total"
    return subprocess.run([free, "-h"], capture_output=True, text=True, check=False).stdout.strip()


def machine() -> dict[str, Any]:
    """The machine a run happened on: cores, memory, CPU model, Python, load."""
    memory = psutil.virtual_memory()
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "memory_total_gib": round(memory.total / 2**30, 1),
        "free_h": _free(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def command_line(scenario: int, *, quick: bool) -> str:
    """The command that reproduces one scenario's figures."""
    return f"python -m benchmarks{' --quick' if quick else ''} --only {scenario}"


def parse_time(stamp: str) -> float:
    """Epoch seconds of the emulator's RFC 3339 times (nanoseconds, `Z`)."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return seconds.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)


def now_iso() -> str:
    """Now, UTC, to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def write_result(out: Path, name: str, data: Mapping[str, Any]) -> Path:
    """`out/<name>.json`, written atomically."""
    return atomic_write_text(out / f"{name}.json", json.dumps(data, indent=2, sort_keys=False))


def load_results(out: Path) -> dict[str, dict[str, Any]]:
    """Every `<name>.json` in `out`, by name."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob("*.json")):
        try:
            found[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
    return found
