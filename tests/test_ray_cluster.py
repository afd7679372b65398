"""`aioupstage_ocr.ray` on a real local Ray cluster, with S3 (moto) and the emulator.

The emulator runs in a process of its own (Ray's actors are other processes);
the cluster is started once for the module (2 CPUs, no dashboard) and shut down
after. Keep these few and small: a cluster on a loaded machine is slow to start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("s3fs")

from _s3 import S3Server, seed_objects  # noqa: E402 - after the skips

from aioupstage_ocr import DocumentLimits, RateLimit  # noqa: E402 - after the skips
from aioupstage_ocr._storage import read_bytes  # noqa: E402 - after the skips
from aioupstage_ocr.ray import list_documents, ocr_dataset  # noqa: E402 - after the skips
from aioupstage_ocr.ray._budget import NAMESPACE, budget_name  # noqa: E402 - after the skips
from aioupstage_ocr.testing import make_pdf  # noqa: E402 - after the skips
from benchmarks._harness import API_KEY, EmulatorProcess  # noqa: E402 - after the skips
from benchmarks.ray_cluster import map_workers  # noqa: E402 - after the skips


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    """The emulator in its own process, for the module; reset by each test that needs it."""
    with EmulatorProcess(batch_latency=0.02) as process:
        yield process


@pytest.fixture(scope="module")
def cluster(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A local Ray cluster for the module; its workers see the S3 server's environment."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=150 * 1024 * 1024,
        runtime_env={"env_vars": dict(s3_server.env)},
    )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


def _ocr(ds: Any, base_url: str, bucket: str, prefix: str, out: str, **settings: Any) -> Any:
    """`ocr_dataset` of `ds` against the emulator at `base_url`: documents under
    `bucket/prefix`, outputs under `bucket/out`."""
    return ocr_dataset(
        ds,
        api_key=API_KEY,
        base_url=base_url,
        output=f"{bucket}/{out}",
        input_prefix=f"{bucket}/{prefix}",
        **settings,
    )


def test_dataset_from_s3_to_s3(cluster: None, emulator: EmulatorProcess, s3_bucket: str) -> None:
    """Documents listed from S3 are OCRed by actors; each output lands whole beside its key."""
    emulator.reset()
    docs = {f"in/{i % 3}/doc{i:02d}.pdf": make_pdf([f"cluster doc {i}"]) for i in range(24)}
    docs["in/broken.pdf"] = b"%PDF-1.4 but nothing after"
    seed_objects(s3_bucket, docs)
    urls = list(list_documents(f"{s3_bucket}/in"))
    assert len(urls) == 25
    ds = ray.data.from_items([{"path": url} for url in urls])

    out = _ocr(
        ds,
        emulator.base_url,
        s3_bucket,
        "in",
        "out",
        rate=RateLimit(rps=50),
        concurrency=2,
        batch_size=5,
        batches_per_actor=1,  # so both actors get batches, and both lease
    )
    rows = {row["path"]: row for row in out.take_all()}

    assert sorted(rows) == sorted(urls)
    broken = rows.pop(f"{s3_bucket}/in/broken.pdf")
    assert broken["status"] == "failed"
    assert "broken.pdf" in broken["error"]
    for url, row in rows.items():
        i = int(url.rsplit("doc", 1)[1].removesuffix(".pdf"))
        assert row["status"] == "ok", row["error"]
        assert row["text"] == f"cluster doc {i}"
        assert row["output"] == url.replace("/in/", "/out/", 1) + ".ocr.json"
        assert read_bytes(row["output"]).decode() == row["result"]
    stats = emulator.stats()
    assert sum(stats["sync_submissions"].values()) == 24
    # Both actors paced with the one budget actor of this key, in blocks.
    budget = ray.get_actor(budget_name(API_KEY, "ocr", emulator.base_url), namespace=NAMESPACE)
    holders = ray.get(budget.stats.remote())["holders"]
    assert len(holders) == 2
    granted = sum(h["granted"] for h in holders.values())
    assert granted >= 24
    assert sum(h["leases"] for h in holders.values()) < granted


def test_an_actor_runs_several_batches_at_once(cluster: None, s3_bucket: str) -> None:
    """One actor, four blocks of 3 documents, 0.4 s a call: its batches overlap on the
    actor's event loop (`batches_per_actor`), so more than one batch is at the service."""
    docs = {f"par/doc{i:02d}.pdf": make_pdf([f"overlap doc {i}"]) for i in range(12)}
    seed_objects(s3_bucket, docs)
    with EmulatorProcess(sync_latency=0.4) as slow:
        items = [{"path": f"{s3_bucket}/{key}"} for key in docs]
        out = _ocr(
            ray.data.from_items(items, override_num_blocks=4),
            slow.base_url,
            s3_bucket,
            "par",
            "out-par",
            rate=RateLimit(rps=100),
            concurrency=1,
            batch_size=3,
        )
        rows = out.take_all()
        assert sorted(row["status"] for row in rows) == ["ok"] * 12
        assert slow.stats()["peak_concurrency"] >= 6  # one batch at a time: 3 (4 at most)


def _killed_run(
    emulator: EmulatorProcess,
    s3_bucket: str,
    docs: dict[str, bytes],
    prefix: str,
    kill: Callable[[dict[str, Any]], bool],
    **settings: Any,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Run `docs` (seeded under `prefix`) through 2 actors at 8 RPS while a thread
    polls the emulator's stats: `kill(stats)` kills an actor and says True once it
    did. The rows, and the errors of the rows that failed (each an ambiguous
    submit: only those that cannot be told apart may fail, never be sent again)."""
    import threading
    import time

    emulator.reset()
    seed_objects(s3_bucket, docs)
    ds = ray.data.from_items([{"path": f"{s3_bucket}/{key}"} for key in docs])
    out = _ocr(
        ds,
        emulator.base_url,
        s3_bucket,
        prefix,
        f"out-{prefix}",
        rate=RateLimit(rps=8),
        concurrency=2,
        batch_size=8,
        **settings,
    )

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not kill(emulator.stats()):
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    rows = out.take_all()
    thread.join()
    assert len(rows) == len(docs)
    failed = [row["error"] for row in rows if row["status"] != "ok"]
    assert all(error.startswith("AmbiguousSubmitError") for error in failed), failed
    return rows, failed


def _number(row: dict[str, Any]) -> int:
    return int(row["path"].rsplit("doc", 1)[1].removesuffix(".pdf"))


@pytest.mark.slow
def test_an_actor_killed_mid_run_pays_nothing_twice(
    cluster: None, emulator: EmulatorProcess, s3_bucket: str
) -> None:
    """SIGKILL one actor while async submits go out: Ray runs its batches again; the
    ledger adopts their request ids, so every document is submitted once and every row is ok."""
    import os
    import signal

    killed: list[int] = []

    def kill(stats: dict[str, Any]) -> bool:
        if sum(stats["async_submissions"].values()) < 12:
            return False
        workers = map_workers()
        if workers:
            killed.append(workers[0].pid)
            os.kill(workers[0].pid, signal.SIGKILL)
        return True

    docs = {f"in/doc{i:02d}.pdf": make_pdf([f"killed run doc {i}"]) for i in range(48)}
    rows, ambiguous = _killed_run(emulator, s3_bucket, docs, "in", kill, mode="async")

    assert killed, "no actor was killed"
    for row in rows:
        if row["status"] == "ok":
            assert row["text"] == f"killed run doc {_number(row)}"
    submissions = emulator.stats()["async_submissions"]
    assert max(submissions.values()) == 1
    assert 48 - len(ambiguous) <= len(submissions) <= 48


@pytest.mark.slow
def test_ray_kill_mid_run_sync_at_most_once_more_async_once(
    cluster: None, emulator: EmulatorProcess, s3_bucket: str
) -> None:
    """`ray.kill` one actor (Ray restarts it) while sync and async documents go out:
    the run finishes, no async document is submitted twice, a sync one at most once more."""
    budget_of = partial(ray.get_actor, budget_name(API_KEY, "ocr", emulator.base_url))
    earlier: set[str] = set()  # earlier tests' actors (gone by now)
    killed: list[tuple[int, int]] = []  # (actors joined, documents submitted) at the kill

    def kill(stats: dict[str, Any]) -> bool:
        if sum(stats["async_submissions"].values()) < 6:
            return False
        actors = ray.get(budget_of(namespace=NAMESPACE).actors.remote())
        ours = sorted(set(actors) - earlier)
        if not ours:
            return False
        submitted = sum(stats["async_submissions"].values()) + sum(
            stats["sync_submissions"].values()
        )
        ray.kill(actors[ours[0]], no_restart=False)
        killed.append((len(actors), submitted))
        return True

    with contextlib.suppress(ValueError):  # no budget yet: no earlier actors
        earlier.update(ray.get(budget_of(namespace=NAMESPACE).actors.remote()))
    # One-page PDFs go sync, two-page ones async (`sync_max_pages=1`), alternating.
    docs = {f"mixed/doc{i:02d}.pdf": make_pdf([f"mixed doc {i}"] * (1 + i % 2)) for i in range(48)}
    rows, ambiguous = _killed_run(
        emulator, s3_bucket, docs, "mixed", kill, document_limits=DocumentLimits(sync_max_pages=1)
    )

    assert killed, "no actor was killed"
    assert killed[0][1] < len(docs), "the kill came after every document was sent"
    for row in rows:
        if row["status"] == "ok":
            assert f"mixed doc {_number(row)}" in row["text"]
            assert row["pages"] == 1 + _number(row) % 2
    stats = emulator.stats()
    sync, asynchronous = stats["sync_submissions"], stats["async_submissions"]
    assert max(asynchronous.values()) == 1, "an async document was submitted twice"
    assert len(sync) == 24
    assert max(sync.values()) <= 2, "a sync document was sent twice more"
    assert 24 - len(ambiguous) <= len(asynchronous) <= 24
    # Ray restarted the killed actor, which paced with the budget again (a new holder).
    assert len(ray.get(budget_of(namespace=NAMESPACE).actors.remote())) > killed[0][0]
