"""The emulator from the outside: command line, control routes, pytest fixture, settings."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from test_emulator import Api

from aioupstage_ocr import ConfigurationError
from aioupstage_ocr._cli import build_parser
from aioupstage_ocr.testing import (
    EmulatorConfig,
    EmulatorStats,
    EmulatorThread,
    UpstageEmulator,
    make_pdf,
)
from aioupstage_ocr.testing._cli import add_arguments, config_from_args
from aioupstage_ocr.testing._faults import GCRA
from aioupstage_ocr.testing._ocr import content_cache, inspect_bytes, read_content


@pytest.fixture
async def api(upstage_emulator: EmulatorThread) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, upstage_emulator)


@pytest.mark.slow
async def test_cli_serves_until_sigterm() -> None:
    """`aioupstage-ocr emulator --port 0` prints its URL, answers, and exits 0 on SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioupstage_ocr._cli", "emulator", "--port", "0",
        "--rps", "50", "--no-retry-after", "--error-statuses", "503", "--api-key", "k1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith("emulator listening on http://127.0.0.1:")
        base_url = line.split()[3]
        assert base_url.endswith("/v1")
        assert "(storage http://127.0.0.1:" in line
        async with aiohttp.ClientSession() as session:
            url = base_url + "/document-digitization/requests"
            async with session.get(url, headers={"Authorization": "Bearer k1"}) as response:
                assert response.status == 200
                assert await response.json() == {"requests": []}
            async with session.get(url, headers={"Authorization": "Bearer k2"}) as response:
                assert response.status == 401
            stats_url = base_url.removesuffix("/v1") + "/_emulator/stats"
            async with session.get(stats_url) as response:
                stats = await response.json()
                assert stats["requests"] == {"list": 2}
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_cli_takes_every_config_field() -> None:
    """Every EmulatorConfig field is an option; no options give the defaults."""
    parser = build_parser()
    args = parser.parse_args(["emulator"])
    assert args.handler.__name__ == "run"
    assert config_from_args(args) == EmulatorConfig()
    alone = argparse.ArgumentParser()
    add_arguments(alone)
    options = {action.dest for action in alone._actions}
    assert {f.name for f in dataclasses.fields(EmulatorConfig)} <= options
    args = parser.parse_args(
        ["emulator", "--seed", "3", "--rps", "2.5", "--no-shuffle-batches", "--shape", "seed",
         "--error-statuses", "500,503", "--fault-routes", "sync,download", "--page-ids",
         "document", "--max-bytes", "100"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.seed == 3
    assert config.rps == 2.5
    assert config.shuffle_batches is False
    assert config.shape == "seed"
    assert config.error_statuses == (500, 503)
    assert config.fault_routes == ("sync", "download")
    assert config.page_ids == "document"
    assert config.max_bytes == 100


def test_cli_refuses_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    """An out-of-range option exits 2 with a message."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--error-rate", "2"])
    from aioupstage_ocr.testing._cli import run

    assert run(args) == 2
    assert "error_rate" in capsys.readouterr().err


def test_config_validation() -> None:
    """Bad settings raise ConfigurationError; the key stays out of the repr."""
    with pytest.raises(ConfigurationError):
        EmulatorConfig(error_rate=1.5)
    with pytest.raises(ConfigurationError):
        EmulatorConfig(workers=0)
    with pytest.raises(ConfigurationError):
        EmulatorConfig(fault_routes=("everything",))
    with pytest.raises(ConfigurationError):
        EmulatorConfig(error_shape="xml")
    with pytest.raises(ConfigurationError, match="'live', 'seed'"):
        EmulatorConfig(shape="alt")
    with pytest.raises(ConfigurationError, match="no field"):
        EmulatorConfig().replace(speed=3)
    assert "hidden-key" not in repr(EmulatorConfig(api_key="hidden-key"))


async def test_control_routes(api: Api, upstage_emulator: EmulatorThread) -> None:
    """Another process can read stats, configure, expire links and reset over HTTP."""
    root = upstage_emulator.base_url.removesuffix("/v1") + "/_emulator"
    session = api.session
    async with session.post(root + "/configure", data=orjson.dumps({"rps": 1})) as response:
        assert response.status == 200
        assert (await response.json())["config"]["rps"] == 1
        assert "api_key" not in (await response.json())["config"]
    configured = upstage_emulator.config
    assert configured.rps == 1
    async with session.post(root + "/configure", data=b'{"nope": 1}') as response:
        assert response.status == 400
    await api.requests()
    async with session.get(root + "/stats") as response:
        assert (await response.json())["requests"] == {"list": 1}
    async with session.post(root + "/expire-links") as response:
        assert response.status == 200
    async with session.post(root + "/reset") as response:
        assert response.status == 200
    assert upstage_emulator.config.rps is None
    assert upstage_emulator.stats.requests == {}


async def test_control_outage(api: Api, upstage_emulator: EmulatorThread) -> None:
    """The outage control route answers, then the port refuses for a while."""
    root = upstage_emulator.base_url.removesuffix("/v1") + "/_emulator"
    async with api.session.post(root + "/outage?seconds=0.3") as response:
        assert response.status == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.requests()
    await asyncio.sleep(0.45)
    assert (await api.requests()).status == 200


@pytest.mark.upstage_emulator(rps=7, shape="seed")
async def test_fixture_marker_configures(upstage_emulator: EmulatorThread) -> None:
    """The marker sets config fields for one test."""
    assert upstage_emulator.config.rps == 7
    assert upstage_emulator.config.shape == "seed"


async def test_fixture_resets_between_tests(upstage_emulator: EmulatorThread) -> None:
    """The next test starts from the defaults, with zeroed stats and no requests."""
    assert upstage_emulator.config == EmulatorConfig()
    assert upstage_emulator.stats == EmulatorStats()
    assert upstage_emulator.request_ids() == []
    assert upstage_emulator.base_url.startswith("http://127.0.0.1:")


async def test_reset_forgets_requests(api: Api, upstage_emulator: EmulatorThread) -> None:
    """reset() forgets requests (404 after) and zeroes stats."""
    request_id = await api.submit(make_pdf(1))
    upstage_emulator.configure(seed=5)
    upstage_emulator.reset()
    assert upstage_emulator.config.seed == 0
    assert (await api.status(request_id)).status == 404
    assert upstage_emulator.stats.polls == {request_id: 1}


async def test_not_started() -> None:
    """Using the URLs before start is a clear error."""
    emulator = UpstageEmulator()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.base_url


def test_gcra_admits_a_burst_then_the_rate() -> None:
    """The RPS limiter: `burst` at once, then one every 1/rate s; refusals say how long."""
    limiter = GCRA(rate=2.0, burst=2)
    assert [limiter.acquire(10.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]
    assert limiter.acquire(10.5) == 0.0
    assert limiter.acquire(10.6) == pytest.approx(0.4)
    pages = GCRA(rate=10 / 60, burst=10)  # 10 pages per minute
    assert pages.acquire(0.0, cost=6) == 0.0
    assert pages.acquire(0.0, cost=6) == pytest.approx(12.0)
    assert pages.acquire(0.0, cost=50) == pytest.approx(36.0)  # larger than a burst: needs it full


def test_content_cache_evicts_least_recent() -> None:
    """The content cache keeps a bounded number of words, least recently used out first."""
    cache = content_cache(max_words=60)
    contents = {}
    for n in range(4):
        data = make_pdf(1 + n % 2)
        contents[n] = read_content(data, inspect_bytes(data, "x"), f"sha{n}")  # type: ignore[arg-type]
        cache.put(f"sha{n}", contents[n])
        cache.get("sha0")
    assert cache.get("sha0") is contents[0]
    assert cache.get("sha1") is None
    assert cache.get("sha3") is contents[3]


async def test_wait_idle(api: Api, upstage_emulator: EmulatorThread) -> None:
    """wait_idle returns once every async request has ended."""
    upstage_emulator.configure(batch_latency=0.05)
    ids = [await api.submit(make_pdf(n)) for n in (5, 15)]
    async with asyncio.timeout(5):
        await upstage_emulator.wait_idle()
    for request_id in ids:
        assert (await api.status(request_id)).json()["status"] == "completed"
