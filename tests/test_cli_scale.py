"""Many paths on stdin: every one written, memory flat while they stream through."""

from __future__ import annotations

import asyncio
import struct
import sys
import zlib
from pathlib import Path

import pytest
from test_cli import read_report, start_cli

from aioupstage_ocr.testing import EmulatorThread, make_image

#: Paths fed on stdin (10,000 measured by hand: see the command line's notes in README).
COUNT = 2000


def png_variants(count: int) -> list[bytes]:
    """`count` distinct tiny PNGs: one image, a different tEXt chunk in each."""
    base = make_image("png", seed=0, width=32, height=24)
    header = 8 + 25  # signature, IHDR chunk
    out = []
    for n in range(count):
        data = b"Comment\x00" + str(n).encode()
        crc = zlib.crc32(b"tEXt" + data) & 0xFFFFFFFF
        chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", crc)
        out.append(base[:header] + chunk + base[header:])
    return out


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of a live process, in kB; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (KeyError, ValueError):
        return None


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for memory")
@pytest.mark.upstage_emulator(batch_latency=0.0)
async def test_thousands_of_stdin_paths_with_flat_memory(
    upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """COUNT paths on stdin: exit 0, a path and a row each; RSS at the end ~ RSS early on."""
    docs, out, report = tmp_path / "docs", tmp_path / "out", tmp_path / "report.jsonl"
    paths = []
    for n, data in enumerate(png_variants(COUNT)):
        path = docs / f"{n // 250:02d}" / f"scan-{n:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    # Relative to the working folder (docs), as `find . -name '*.png' | ...` gives them.
    listing = b"".join(bytes(path.relative_to(docs)) + b"\n" for path in paths)

    proc = await start_cli(
        "ocr", "-", "-o", out, "--report", report, "--quiet",
        "--base-url", upstage_emulator.base_url, stdin=True, cwd=docs,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(listing)
    proc.stdin.close()
    printed: list[bytes] = []
    samples: list[tuple[int, int, int]] = []  # (outputs printed, rss, hwm)

    async def read() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            printed.append(line)

    async def sample() -> None:
        while proc.returncode is None:
            memory = memory_kb(proc.pid)
            if memory is not None:
                samples.append((len(printed), *memory))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    await asyncio.wait_for(read(), 120)
    stderr = await proc.stderr.read() if proc.stderr else b""
    await proc.wait()
    await sampler
    assert proc.returncode == 0, stderr.decode()

    assert sorted(line.decode().strip() for line in printed) == sorted(
        str(out / path.relative_to(docs).with_suffix(".ocr.json")) for path in paths
    )
    rows = read_report(report)
    assert len(rows) == COUNT
    assert {row["status"] for row in rows.values()} == {"ok"}
    assert upstage_emulator.stats.uploads == COUNT

    early = max(rss for done, rss, _ in samples if done <= COUNT // 4)
    peak = max(hwm for _, _, hwm in samples)
    print(f"\n{COUNT} stdin paths: RSS {early} kB after a quarter, peak {peak} kB")
    assert peak < 200_000  # kB
    assert peak - early < 20_000  # flat: a few MB at most over the last three quarters
