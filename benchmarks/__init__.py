"""Benchmarks of aioupstage-ocr against the bundled emulator, run in its own process.

`python -m benchmarks` (or `nox -s bench`) runs every scenario and writes
`benchmarks/results/`: one JSON per scenario, `results.md` (regenerated from
every JSON present) and PNG plots. `--quick` runs each scenario small (a smoke
test of the scripts, not a measurement); `--only N` runs scenario N.

- `s1_rate_limit`: sync bulk under the server's RPS limit, against the usual
  `requests` loops and an unbounded `asyncio.gather`.
- `s2_async_bulk`: large PDFs through the async endpoint, against the
  submit / poll-every-5-s / download loop.
- `s3_overhead`: client CPU per document against a bare aiohttp loop, profiled.
- `s4_scale`: peak RSS and open files at 1,000 to 50,000 inputs.
- `s5_concurrency`: throughput against the concurrency setting (Little's law).
- `s6_outputs`: pages per second written for each output format.

Every measured run (this client or a baseline) runs in a child process of its
own (`benchmarks._child`), against a fresh emulator process (`_harness`).
"""
