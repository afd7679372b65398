"""A real S3 API on loopback for tests: moto in server mode, on a free port.

`s3_server` (session) starts `moto.server.ThreadedMotoServer` on 127.0.0.1,
points `AWS_ENDPOINT_URL` and fake credentials at it for the whole session,
and stops it at the end; `s3_bucket` gives each test a fresh bucket URL.
Both skip where s3fs or moto is not installed (the `[s3]` extra and moto).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

#: Fake credentials, distinctive enough to search for in messages and logs.
FAKE_ACCESS_KEY = "AKIATESTFAKE7F3A9C1E"
FAKE_SECRET_KEY = "fake-secret-5b2d4680-do-not-leak"


@dataclass(frozen=True, slots=True)
class S3Server:
    """The running server: its endpoint and the environment that reaches it."""

    endpoint: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Moto's S3 on a free loopback port, for the session; the environment points at it."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    import s3fs

    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            yield S3Server(endpoint, env)
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket for the test, as `s3://name`."""
    import s3fs

    name = f"test-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem()
    fs.mkdir(name)
    fs.invalidate_cache()
    return f"s3://{name}"


def seed_objects(bucket_url: str, objects: dict[str, bytes]) -> None:
    """Put many objects straight into the in-process moto backend (no HTTP: thousands fast).

    Reads still go through the S3 API; this only saves the test thousands of PUTs.
    """
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    backend = get_backend("s3")[DEFAULT_ACCOUNT_ID]["global"]
    bucket = bucket_url.removeprefix("s3://")
    for key, value in objects.items():
        backend.put_object(bucket, key, value)
