"""The benchmark scripts run: `python -m benchmarks --quick` once (that they work, not timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMES = (
    "s1_rate_limit",
    "s2_async_bulk",
    "s3_overhead",
    "s4_scale",
    "s5_concurrency",
    "s6_outputs",
    "s7_peers",
)


@pytest.mark.slow
def test_quick_mode_runs_every_scenario(tmp_path: Path) -> None:
    """Quick mode exits 0 and writes each scenario's JSON, the plots and results.md."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(tmp_path / "results.md")
    for name in NAMES:
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert data["quick"] is True
        assert data["command"].startswith("python -m benchmarks --quick --only ")
        assert data["machine"]["nproc"] >= 1
        assert data["variants"]
        for variant in data["variants"]:
            assert "error" not in variant, variant["error"]
            assert variant["figures"]["ok"] >= 1
            assert variant["figures"].get("failed", 0) == 0
            assert variant["emulator_command"].startswith("aioupstage-ocr emulator --port 0")
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    report = (tmp_path / "results.md").read_text()
    assert "Quick mode" in report
    for title in (
        "Sync bulk",
        "Async bulk",
        "CPU overhead",
        "Memory and open files",
        "Throughput against concurrency",
        "Outputs: pages per second per format",
    ):
        assert title in report
    assert "Hot path of this client (pyinstrument" in report
    assert "Where the event-loop thread's time goes under the profiler, by library" in report
    for profile in ("s3_overhead_profile.txt", "s3_overhead_profile_bare.txt"):
        assert (tmp_path / profile).stat().st_size > 0
