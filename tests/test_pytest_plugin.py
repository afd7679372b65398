"""The pytest plugin as a user meets it: a fresh folder, no pytest configuration.

The user test files below are written into a temporary folder and run by
pytest in a subprocess, with a timeout: a fixture that deadlocks fails these
tests, it does not block the suite. The plugin is found through the installed
entry point. One run per asyncio mode (auto, strict) keeps the cost down; each
test here checks the outcome of its own file in that run's JUnit report.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import pytest

import aioupstage_ocr

pytestmark = pytest.mark.slow

#: Generous for a loaded 2-core machine; a deadlock still ends as a failure.
SUBPROCESS_TIMEOUT = 120.0

#: Where the package under test lives (the subprocess imports the same one).
PROJECT = Path(aioupstage_ocr.__file__).resolve().parents[1]

#: Shared by the user test files below.
PRELUDE = '''
import asyncio
import json
import urllib.error
import urllib.request

import pytest

from aioupstage_ocr import AsyncUpstageOCR, RateLimitError
from aioupstage_ocr.testing import make_image, make_pdf, set_testing


def post_image(base_url, seed=0):
    """One sync OCR call with nothing but the standard library: (status, body)."""
    boundary = "emulator-boundary"
    body = (
        f"--{boundary}\\r\\nContent-Disposition: form-data; name=\\"model\\"\\r\\n\\r\\nocr\\r\\n"
        f"--{boundary}\\r\\nContent-Disposition: form-data; name=\\"document\\"; "
        f"filename=\\"a.png\\"\\r\\nContent-Type: image/png\\r\\n\\r\\n"
    ).encode() + make_image(seed=seed) + f"\\r\\n--{boundary}--\\r\\n".encode()
    request = urllib.request.Request(
        f"{base_url}/document-digitization",
        data=body,
        headers={
            "Authorization": "Bearer any-key",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
'''


#: The user's test files, by name: run with `--asyncio-mode=auto`.
AUTO_MODE = {
    "test_auto.py": """
        async def test_my_code(upstage_emulator):
            async with AsyncUpstageOCR("k", base_url=upstage_emulator.base_url) as c:
                assert (await c.ocr(make_pdf(3), filename="x.pdf")).num_pages == 3
            assert upstage_emulator.stats.uploads == 1

        async def test_the_client_fixture(upstage_client, upstage_emulator):
            result = await upstage_client.ocr(make_pdf(2), filename="y.pdf", mode="async")
            assert result.num_pages == 2
            assert len(upstage_emulator.request_ids()) == 1

        async def test_the_next_test_starts_afresh(upstage_emulator):
            assert upstage_emulator.stats.uploads == 0
            assert upstage_emulator.request_ids() == []
        """,
    "test_marker.py": """
        @pytest.mark.upstage_emulator(rps=1)
        def test_a_rate_limit_the_test_observes(upstage_emulator):
            assert upstage_emulator.config.rps == 1
            first, _ = post_image(upstage_emulator.base_url, seed=1)
            second, body = post_image(upstage_emulator.base_url, seed=2)
            assert (first, second) == (200, 429), body
            assert upstage_emulator.stats.rate_limited == 1

        @pytest.mark.upstage_emulator(rps=1)
        async def test_in_an_async_test_too(upstage_client, upstage_emulator):
            await upstage_client.ocr(make_image(seed=3), filename="a.png")
            with set_testing(True, attempts=1), pytest.raises(RateLimitError):
                await upstage_client.ocr(make_image(seed=4), filename="b.png")
            assert upstage_emulator.stats.rate_limited == 1

        def test_the_next_test_has_the_defaults(upstage_emulator):
            assert upstage_emulator.config.rps is None
        """,
    "test_sync.py": """
        def test_sync(upstage_emulator):
            status, body = post_image(upstage_emulator.base_url)
            assert status == 200
            assert body["pages"]
            assert upstage_emulator.stats.requests["sync"] == 1

        def test_the_client_fixture_is_for_async_tests(upstage_client):
            pass
        """,
}

#: Run with `--asyncio-mode=strict` (pytest-asyncio's default).
STRICT_MODE = {
    "test_strict.py": """
        @pytest.mark.asyncio
        async def test_my_code(upstage_emulator):
            async with AsyncUpstageOCR("k", base_url=upstage_emulator.base_url) as c:
                assert (await c.ocr(make_pdf(3), filename="x.pdf")).num_pages == 3

        @pytest.mark.asyncio
        async def test_the_client_fixture(upstage_client):
            assert (await upstage_client.ocr(make_pdf(1), filename="y.pdf")).num_pages == 1

        class TestInAClass:
            @pytest.mark.asyncio
            async def test_method(self, upstage_client, upstage_emulator):
                assert (await upstage_client.ocr(make_pdf(1), filename="z.pdf")).num_pages == 1
                assert upstage_emulator.stats.uploads == 1
        """,
    "test_anyio.py": """
        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.mark.anyio
        async def test_with_anyio(upstage_emulator, upstage_client):
            async with AsyncUpstageOCR("k", base_url=upstage_emulator.base_url) as c:
                assert (await c.ocr(make_pdf(2), filename="x.pdf")).num_pages == 2
            assert (await upstage_client.ocr(make_pdf(1), filename="y.pdf")).num_pages == 1
            assert upstage_emulator.stats.uploads == 2
        """,
    "test_loop_scopes.py": """
        PORTS = set()
        """
    + "".join(
        f"""
        @pytest.mark.asyncio(loop_scope="{scope}")
        async def test_{scope}_loop(upstage_emulator, upstage_client):
            assert (await upstage_client.ocr(make_pdf(2), filename="a.pdf")).num_pages == 2
            async with AsyncUpstageOCR("k", base_url=upstage_emulator.base_url) as c:
                await c.ocr(make_pdf(1), filename="b.pdf", mode="async")
            await upstage_emulator.wait_idle()
            assert upstage_emulator.stats.uploads == 2
            PORTS.add(upstage_emulator.port)

        def test_sync_after_{scope}(upstage_emulator):
            assert post_image(upstage_emulator.base_url)[0] == 200
            PORTS.add(upstage_emulator.port)
        """
        for scope in ("function", "module", "session")
    )
    + """
        def test_one_emulator_served_them_all():
            assert len(PORTS) == 1
        """,
}


@dataclass(frozen=True)
class Outcome:
    """One user test's result in a run's JUnit report."""

    result: str  # passed, failed, error, skipped
    message: str


def run_pytest(folder: Path, files: dict[str, str], *args: str) -> dict[str, Outcome]:
    """pytest on `files` in `folder`, as a user would run it: each test's outcome by node id."""
    folder.mkdir()
    for name, tests in files.items():
        (folder / name).write_text(PRELUDE + textwrap.dedent(tests))
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
    plugin = ["-p", "aioupstage_ocr.testing.pytest_plugin"]
    if importlib.metadata.entry_points(group="pytest11", name="aioupstage_ocr"):
        plugin = []  # found through the entry point, as in a user's environment
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--junitxml=report.xml",
        "-o", "faulthandler_timeout=60", *plugin, *args,
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command,
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"pytest hung for {SUBPROCESS_TIMEOUT:g} s:\n{out[-3000:]}\n{err[-3000:]}")
    assert "configfile:" not in done.stdout, "the temporary folder must have no pytest config"
    report = folder / "report.xml"
    assert report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        module, *within = case.get("classname", "").split(".")  # the files are top-level
        problem = next(iter(case), None)
        result = "passed" if problem is None else problem.tag.replace("failure", "failed")
        text = "" if problem is None else f"{problem.get('message')}\n{problem.text}"
        outcomes["::".join([f"{module}.py", *within, case.get("name", "")])] = Outcome(result, text)
    return outcomes


@pytest.fixture(scope="module")
def auto_mode(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return run_pytest(tmp_path_factory.mktemp("user") / "auto", AUTO_MODE, "--asyncio-mode=auto")


@pytest.fixture(scope="module")
def strict_mode(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    return run_pytest(
        tmp_path_factory.mktemp("user") / "strict", STRICT_MODE, "--asyncio-mode=strict"
    )


def results(outcomes: dict[str, Outcome], name: str) -> dict[str, str]:
    """The tests of one user file: name -> result, every failure's message in the assert."""
    mine = {
        node.split("::", 1)[1]: o for node, o in outcomes.items() if node.startswith(f"{name}::")
    }
    problems = "\n".join(f"{test}: {o.message}" for test, o in mine.items() if o.message)
    assert mine, f"no test of {name} ran: {outcomes}"
    return {test: o.result for test, o in mine.items()} | ({"": problems} if problems else {})


def test_auto_mode_with_the_default_loop_scope(auto_mode: dict[str, Outcome]) -> None:
    """The issue's own example: auto mode, a function-scoped loop, no settings."""
    assert results(auto_mode, "test_auto.py") == {
        "test_my_code": "passed",
        "test_the_client_fixture": "passed",
        "test_the_next_test_starts_afresh": "passed",
    }


def test_strict_mode_with_the_asyncio_marker(strict_mode: dict[str, Outcome]) -> None:
    """Strict mode (pytest-asyncio's default): `@pytest.mark.asyncio` tests."""
    assert results(strict_mode, "test_strict.py") == {
        "test_my_code": "passed",
        "test_the_client_fixture": "passed",
        "TestInAClass::test_method": "passed",
    }


def test_the_marker_configures_the_emulator_for_one_test(auto_mode: dict[str, Outcome]) -> None:
    """`@pytest.mark.upstage_emulator(rps=1)`: the second call at once is throttled; then reset."""
    assert results(auto_mode, "test_marker.py") == {
        "test_a_rate_limit_the_test_observes": "passed",
        "test_in_an_async_test_too": "passed",
        "test_the_next_test_has_the_defaults": "passed",
    }


def test_a_sync_test_posts_with_urllib(auto_mode: dict[str, Outcome]) -> None:
    """No event loop in the test at all: the emulator answers from its own thread."""
    found = results(auto_mode, "test_sync.py")
    problems = found.pop("")
    assert found == {"test_sync": "passed", "test_the_client_fixture_is_for_async_tests": "error"}
    assert "upstage_client is an async client" in problems


def test_anyio_plugin_with_the_asyncio_backend(strict_mode: dict[str, Outcome]) -> None:
    """anyio's pytest plugin runs the test (and the client fixture) in its own loop."""
    assert results(strict_mode, "test_anyio.py") == {"test_with_anyio": "passed"}


def test_function_module_and_session_loops_share_the_emulator(
    strict_mode: dict[str, Outcome],
) -> None:
    """Tests in three loop scopes, and sync ones, in one run: one emulator, no hang."""
    scopes = ("function", "module", "session")
    assert results(strict_mode, "test_loop_scopes.py") == {
        **{f"test_{scope}_loop": "passed" for scope in scopes},
        **{f"test_sync_after_{scope}": "passed" for scope in scopes},
        "test_one_emulator_served_them_all": "passed",
    }
