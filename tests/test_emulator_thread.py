"""EmulatorThread: the emulator on its own thread and loop, driven from any thread."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from aioupstage_ocr import AsyncUpstageOCR, ConfigurationError
from aioupstage_ocr.testing import EmulatorStats, EmulatorThread, make_image, make_pdf


def post(base_url: str, data: bytes, filename: str = "a.png") -> requests.Response:
    return requests.post(
        f"{base_url}/document-digitization",
        headers={"Authorization": "Bearer k"},
        files={"document": (filename, data)},
        data={"model": "ocr"},
        timeout=30,
    )


def emulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "upstage-emulator"]


def test_a_bad_config_field_raises_at_once_with_the_reason() -> None:
    for changes, reason in (({"rps": -1}, "rps"), ({"no_such_field": 1}, "no_such_field")):
        runner = EmulatorThread(**changes)
        with pytest.raises(ConfigurationError, match=reason):
            runner.start()
        assert runner._thread is not None
        runner._thread.join(10)
        assert not runner._thread.is_alive()  # the failed thread ends by itself


def test_a_taken_port_raises_at_once() -> None:
    with EmulatorThread() as first, pytest.raises(OSError, match="address already in use"):
        EmulatorThread(port=first.port).start()


def test_stop_ends_the_thread_and_the_emulator() -> None:
    runner = EmulatorThread().start()
    port = runner.port
    (thread,) = [t for t in emulator_threads() if t is runner._thread]
    runner.stop()
    runner.stop()  # twice is harmless
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="not running"):
        _ = runner.base_url
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/_emulator/stats", timeout=5)


def test_stop_is_bounded_when_closing_hangs() -> None:
    runner = EmulatorThread(timeout=0.3).start()
    release = threading.Event()
    close = runner.emulator.close

    async def stuck_close() -> None:
        await asyncio.to_thread(release.wait, 30)
        await close()

    runner.call(lambda emulator: setattr(emulator, "close", stuck_close))
    with pytest.raises(TimeoutError, match="did not end within"):
        runner.stop()
    release.set()
    runner.timeout = 30.0
    runner.stop()
    assert runner._thread is not None
    assert not runner._thread.is_alive()


def test_driven_from_many_threads_at_once() -> None:
    """Posts, stats and configure from eight threads: every count adds up."""
    images = [make_image(seed=n) for n in range(16)]
    with EmulatorThread() as emulator:

        def work(image: bytes) -> int:
            emulator.configure(sync_latency=0.0)
            status = post(emulator.base_url, image).status_code
            assert emulator.stats.uploads >= 1
            return status

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(work, images))
        assert statuses == [200] * 16
        stats = emulator.stats
        assert stats.uploads == 16
        assert stats.statuses[200] == 16
        assert stats.submissions(hashlib.sha256(images[0]).hexdigest()) == 1


def test_stats_are_live_and_snapshots_are_not() -> None:
    with EmulatorThread() as emulator:
        stats = emulator.stats
        frozen = stats.snapshot()
        assert stats == EmulatorStats() == frozen
        assert post(emulator.base_url, make_image(seed=1)).status_code == 200
        assert stats.uploads == 1
        assert stats.requests["sync"] == 1
        assert stats.as_dict()["uploads"] == 1
        assert frozen.uploads == 0
        assert stats != frozen
        emulator.reset()
        assert stats.uploads == 0
        with pytest.raises(AttributeError):
            _ = stats.no_such_counter


def test_a_stuck_loop_is_an_error_not_a_hang() -> None:
    with EmulatorThread(timeout=0.2) as emulator:
        with pytest.raises(TimeoutError, match="did not answer within"):
            emulator.call(lambda _: time.sleep(1.0))  # blocks the emulator's loop
        emulator.timeout = 10.0
        assert emulator.request_ids() == []  # answers again once the loop is free


def test_outage_and_links_from_sync_code() -> None:
    with EmulatorThread() as emulator:
        emulator.outage(30)
        assert emulator.in_outage
        with pytest.raises(requests.ConnectionError):
            post(emulator.base_url, make_image())
        emulator.reset()  # ends the outage
        assert not emulator.in_outage
        emulator.expire_links()


def test_wait_idle_from_another_loop() -> None:
    """A client in a loop of its own; wait_idle awaits the emulator's loop from it."""

    async def main(emulator: EmulatorThread) -> None:
        async with AsyncUpstageOCR("k", base_url=emulator.base_url) as client:
            request_id = await client.submit(make_pdf(12), filename="a.pdf")
        async with asyncio.timeout(30):
            await emulator.wait_idle()
        assert emulator.request_ids() == [request_id]

    with EmulatorThread(batch_latency=0.01) as emulator:
        asyncio.run(main(emulator))


def test_the_fixture_in_a_sync_test(upstage_emulator: EmulatorThread) -> None:
    """This suite's async tests share a session loop; a sync test uses the same emulator."""
    assert post(upstage_emulator.base_url, make_pdf(2), "a.pdf").status_code == 200
    assert upstage_emulator.stats.uploads == 1


@pytest.mark.upstage_emulator(rps=1)
def test_the_marker_in_a_sync_test(upstage_emulator: EmulatorThread) -> None:
    statuses = [post(upstage_emulator.base_url, make_image(seed=n)).status_code for n in (1, 2)]
    assert statuses == [200, 429]
