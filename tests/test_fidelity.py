"""The emulator and the outputs against the live service's recorded answers (`../shared/real-ocr`).

Tests that read the recordings skip where they are absent.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from test_emulator import Api

from aioupstage_ocr import AsyncUpstageOCR, OCRResult
from aioupstage_ocr.testing import EmulatorThread, make_image, make_pdf

#: The live shape's keys, at each level, as every recorded answer has them.
LIVE_TOP = {
    "apiVersion", "confidence", "metadata", "mimeType", "modelVersion", "numBilledPages",
    "pages", "stored", "text",
}  # fmt: skip


def shape_of(value: Any, path: str = "") -> set[tuple[str, str]]:
    """(path, what) for every node: a dict's key set, a leaf's JSON type; list items as `[]`."""
    if isinstance(value, dict):
        out = {(path, "keys " + ",".join(sorted(value)))}
        for key, item in value.items():
            out |= shape_of(item, f"{path}.{key}")
        return out
    if isinstance(value, list):
        out = {(path, "list")}
        for item in value:
            out |= shape_of(item, f"{path}[]")
        return out
    return {(path, type(value).__name__)}


def recordings(folder: Path) -> list[tuple[Path, Path]]:
    """(document, recorded answer) pairs of a real-ocr folder."""
    pairs = []
    for answer in sorted(folder.glob("*.response.json")):
        stem = answer.name.removesuffix(".response.json")
        (document,) = [p for p in folder.glob(stem + ".*") if p != answer]
        pairs.append((document, answer))
    return pairs


@pytest.fixture
async def api(upstage_emulator: EmulatorThread) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, upstage_emulator)


async def test_emulator_answers_in_the_recorded_shape(api: Api, real_ocr: Path) -> None:
    """Each real document: the emulator's answer has the recording's keys, types and page sizes."""
    for document, answer in recordings(real_ocr):
        recorded = orjson.loads(answer.read_bytes())
        reply = await api.post(document.read_bytes(), filename=document.name)
        assert reply.status == 200, (document.name, reply.body[:200])
        emulated = reply.json()
        assert shape_of(emulated) == shape_of(recorded), document.name
        assert emulated["metadata"] == {"pages": [{**m} for m in recorded["metadata"]["pages"]]}, (
            document.name
        )
        sizes = [(p["width"], p["height"]) for p in emulated["pages"]]
        assert sizes == [(p["width"], p["height"]) for p in recorded["pages"]], document.name
        assert emulated["text"] == "".join(p["text"] for p in emulated["pages"])
        assert emulated["confidence"] == min(p["confidence"] for p in emulated["pages"])
        ids = [w["id"] for p in emulated["pages"] for w in p["words"]]
        assert ids == list(range(len(ids))), document.name
        assert (emulated["mimeType"], emulated["stored"]) == (
            recorded["mimeType"], recorded["stored"]
        )  # fmt: skip


@pytest.mark.parametrize("page_ids", ["batch", "document"])
@pytest.mark.parametrize("shape", ["live", "seed"])
async def test_async_merged_equals_sync(
    api: Api, client: AsyncUpstageOCR, upstage_emulator: EmulatorThread, shape: str, page_ids: str
) -> None:
    """35 pages through the async endpoint, merged, are the sync answer as JSON, in both shapes."""
    upstage_emulator.configure(shape=shape, page_ids=page_ids, batch_latency=0.01)
    data = make_pdf(35)
    reply = await api.post(data, filename="long.pdf")
    assert reply.status == 200
    merged = await client.ocr(data, filename="long.pdf", mode="async")
    assert upstage_emulator.stats.async_submissions  # it did go through the async endpoint
    assert orjson.loads(merged.to_json()) == reply.json()
    assert OCRResult.from_json(reply.body) == merged


async def test_seed_shape_saves_in_its_own_shape(
    client: AsyncUpstageOCR, upstage_emulator: EmulatorThread, tmp_path: Path
) -> None:
    """A seed-shape answer parses, merges and saves as the seed shape, not as the live one."""
    upstage_emulator.configure(shape="seed", batch_latency=0.01)
    for mode in ("sync", "async"):
        result = await client.ocr(make_pdf(12), filename="seed.pdf", mode=mode)
        saved = orjson.loads(result.save(tmp_path / f"{mode}.ocr.json").read_bytes())
        assert set(saved) == {"api", "model", "pages", "usage"}, mode
        assert saved["usage"] == {"pages": 12}
        words = [w for p in saved["pages"] for w in p["words"]]
        assert all(set(w) == {"id", "text", "bounding_box", "confidence"} for w in words)


async def test_cli_ocr_on_the_emulator_writes_the_live_shape(tmp_path: Path) -> None:
    """`aioupstage-ocr ocr ... --emulator` writes what the service sends, in its shape."""
    scan = tmp_path / "scan.png"
    scan.write_bytes(make_image("png", seed=3))
    (tmp_path / "report.pdf").write_bytes(make_pdf(12))
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPSTAGE_")}
    proc = await _run(
        "ocr", tmp_path / "scan.png", tmp_path / "report.pdf", "-o", tmp_path / "out",
        "--emulator", "--quiet", env=env,
    )  # fmt: skip
    assert proc == 0
    for name, pages in (("scan.ocr.json", 1), ("report.ocr.json", 12)):
        written = orjson.loads((tmp_path / "out" / name).read_bytes())
        assert set(written) == LIVE_TOP, name
        assert written["numBilledPages"] == pages
        for page in written["pages"]:
            assert set(page) == {"confidence", "height", "id", "text", "width", "words"}
            for word in page["words"]:
                assert set(word) == {"boundingBox", "confidence", "id", "text"}
                assert all(type(v["x"]) is int for v in word["boundingBox"]["vertices"])


async def _run(*args: str | os.PathLike[str], env: dict[str, str]) -> int:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioupstage_ocr", *map(os.fspath, args),
        stdin=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    return await asyncio.wait_for(proc.wait(), 120)


# --------------------------------------------------------------------------- replay


async def test_replay_answers_the_recording_itself(
    api: Api, upstage_emulator: EmulatorThread, real_ocr: Path
) -> None:
    """With `recordings=`, a recorded document's sync answer is the recorded file, byte for byte."""
    upstage_emulator.configure(recordings=real_ocr)
    for document, answer in recordings(real_ocr):
        reply = await api.post(document.read_bytes(), filename=document.name)
        assert reply.status == 200, document.name
        assert reply.body == answer.read_bytes(), document.name
    other = (await api.post(make_pdf(2))).json()  # an unrecorded document: read as usual
    assert other["numBilledPages"] == 2
    assert other["modelVersion"] == upstage_emulator.config.model_version


@pytest.mark.parametrize("page_ids", ["batch", "document"])
async def test_replay_async_batches_merge_back(
    api: Api,
    client: AsyncUpstageOCR,
    upstage_emulator: EmulatorThread,
    real_ocr: Path,
    page_ids: str,
) -> None:
    """Async replay: one-page batches, each a live-shape answer, merging back to the recording."""
    upstage_emulator.configure(
        recordings=real_ocr, batch_size=1, batch_latency=0.01, page_ids=page_ids
    )
    for document, answer in recordings(real_ocr):
        recorded = orjson.loads(answer.read_bytes())
        result = await client.ocr(document, mode="async")
        assert orjson.loads(result.to_json()) == recorded, document.name
        assert result == OCRResult.load(answer)
    done = await api.wait(await api.submit((real_ocr / "multi_page.pdf").read_bytes()))
    assert len(done["batches"]) == 3
    for batch in done["batches"]:
        body = (await api.download(batch["download_url"])).json()
        assert set(body) == LIVE_TOP
        assert body["numBilledPages"] == 1
        assert body["text"] == body["pages"][0]["text"]
        assert body["confidence"] == body["pages"][0]["confidence"]
        number = batch["start_page"] if page_ids == "document" else 1
        assert body["metadata"]["pages"][0]["page"] == number
        assert body["pages"][0]["id"] == number - 1


def test_recordings_option(tmp_path: Path) -> None:
    """`emulator --recordings DIR` sets the folder (absolute); a missing one is refused."""
    import argparse

    from aioupstage_ocr import ConfigurationError
    from aioupstage_ocr.testing import EmulatorConfig
    from aioupstage_ocr.testing._cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["--recordings", os.fspath(tmp_path)]))
    assert config.recordings == os.fspath(tmp_path.absolute())
    assert config_from_args(parser.parse_args([])).recordings is None
    with pytest.raises(ConfigurationError, match="not a folder"):
        EmulatorConfig(recordings=tmp_path / "missing")
    assert EmulatorConfig(recordings=tmp_path) == config
