"""Object storage (`_storage`) against a real S3 API on loopback (moto) and local files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from _s3 import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, seed_objects

from aioupstage_ocr._exceptions import DocumentNotFoundError
from aioupstage_ocr._storage import (
    StorageError,
    exists,
    is_url,
    iter_prefix,
    join,
    open_document,
    output_url,
    read_bytes,
    safe_url,
    write_whole,
)
from aioupstage_ocr.testing import make_pdf

s3fs = pytest.importorskip("s3fs")


def test_is_url() -> None:
    assert is_url("s3://bucket/key")
    assert is_url("file:///tmp/x.pdf")
    assert is_url("gs://b/k")
    assert not is_url("scan.pdf")
    assert not is_url("C:\\scans\\a.pdf")
    assert not is_url("/abs/path.pdf")
    assert not is_url(b"s3://bytes")


def test_safe_url_drops_credentials_and_query() -> None:
    url = "s3://AKIA:secret@bucket/a.pdf?X-Amz-Signature=abc#frag"
    assert safe_url(url) == "s3://bucket/a.pdf"
    assert safe_url("local/path.pdf") == "local/path.pdf"


def test_output_url_mirrors_keys() -> None:
    assert output_url("s3://in/scans/a/x.pdf", "s3://in/scans", "s3://out/ocr") == (
        "s3://out/ocr/a/x.pdf.ocr.json"
    )
    assert output_url("s3://in/x.pdf", "s3://in/", "s3://out") == "s3://out/x.pdf.ocr.json"
    assert output_url("s3://other/y.png", "s3://in/scans", "s3://out") == (
        "s3://out/_root/other/y.png.ocr.json"
    )
    assert join("s3://out/", "a", "b.json") == "s3://out/a/b.json"


def test_listing_streams_pages_of_keys(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = s3fs.S3FileSystem()
    # 2,500 keys: three listing pages of at most 1,000.
    names = [f"scans/{i // 100:02d}/doc{i:04d}.pdf" for i in range(2500)]
    seed_objects(
        s3_bucket,
        {
            **dict.fromkeys(names, b"%PDF-1.4 tiny"),
            "scans/notes.txt": b"not a document",
            "elsewhere/a.pdf": b"%PDF",
        },
    )

    calls: list[dict[str, object]] = []
    original = fs._call_s3

    async def counting(method: str, *args: object, **kwargs: object) -> object:
        if method == "list_objects_v2":
            calls.append(kwargs)
        return await original(method, *args, **kwargs)

    monkeypatch.setattr(fs, "_call_s3", counting)
    listing = iter_prefix(f"{s3_bucket}/scans")
    first = next(listing)
    assert first == f"{s3_bucket}/{names[0]}"
    assert len(calls) == 1  # one page read so far, not the whole prefix
    rest = list(listing)
    assert [first, *rest] == [f"{s3_bucket}/{n}" for n in names]
    assert len(calls) == 3


def test_listing_a_missing_bucket_names_it(s3_server: object) -> None:
    with pytest.raises(DocumentNotFoundError, match="s3://no-such-bucket-x1/p"):
        list(iter_prefix("s3://no-such-bucket-x1/p"))


def test_listing_local_folders(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.png").write_bytes(b"x")
    (tmp_path / "1.pdf").write_bytes(b"x")
    (tmp_path / "skip.txt").write_bytes(b"x")
    found = list(iter_prefix(f"file://{tmp_path}"))
    assert sorted(found) == sorted([f"file://{tmp_path}/1.pdf", f"file://{tmp_path}/b/2.png"])


def test_read_small_whole_and_large_as_a_file(s3_bucket: str) -> None:
    small = make_pdf(1)
    large = make_pdf(3) + b"\n%" + b"x" * 300_000
    write_whole(f"{s3_bucket}/small.pdf", small)
    write_whole(f"{s3_bucket}/large.pdf", large)
    assert open_document(f"{s3_bucket}/small.pdf") == small
    handle = open_document(f"{s3_bucket}/large.pdf", small=100_000)
    assert not isinstance(handle, bytes)
    with handle:
        assert handle.read(5) == b"%PDF-"
        handle.seek(0)
        assert handle.read() == large
    assert read_bytes(f"{s3_bucket}/small.pdf") == small


def test_missing_object_is_a_document_error(s3_bucket: str) -> None:
    with pytest.raises(DocumentNotFoundError, match=f"{s3_bucket}/nope.pdf: no such object"):
        open_document(f"{s3_bucket}/nope.pdf")
    with pytest.raises(DocumentNotFoundError):
        read_bytes(f"{s3_bucket}/nope.json")
    assert not exists(f"{s3_bucket}/nope.json")


def test_a_read_is_one_get(s3_bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    """Reading an object whole (a ledger entry, a stored output) is one GET, found or
    not: no HEAD for its size, no LIST to tell a missing key from a folder."""
    write_whole(f"{s3_bucket}/entry.json", b"{}")
    with caplog.at_level(logging.DEBUG, logger="s3fs"):
        assert read_bytes(f"{s3_bucket}/entry.json") == b"{}"
        with pytest.raises(DocumentNotFoundError):
            read_bytes(f"{s3_bucket}/missing.json")
    calls = [r.getMessage().split()[1].rstrip(",") for r in caplog.records]
    calls = [c for c in calls if c.endswith("_object") or c.startswith("list_")]
    assert calls == ["get_object", "get_object"]


def test_write_is_one_whole_put(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = s3fs.S3FileSystem()
    methods: list[str] = []
    original = fs._call_s3

    async def recording(method: str, *args: object, **kwargs: object) -> object:
        methods.append(method)
        return await original(method, *args, **kwargs)

    monkeypatch.setattr(fs, "_call_s3", recording)
    data = b"{" + b"x" * 1_000_000 + b"}"
    assert write_whole(f"{s3_bucket}/out/a.ocr.json", data) == f"{s3_bucket}/out/a.ocr.json"
    assert methods == ["put_object"]
    assert read_bytes(f"{s3_bucket}/out/a.ocr.json") == data
    assert exists(f"{s3_bucket}/out/a.ocr.json")


def test_local_writes_are_atomic(tmp_path: Path) -> None:
    target = tmp_path / "x" / "a.ocr.json"
    assert write_whole(str(target), b"{}") == str(target)
    assert target.read_bytes() == b"{}"
    assert write_whole(f"file://{tmp_path}/y.json", b"[]").endswith("/y.json")
    assert (tmp_path / "y.json").read_bytes() == b"[]"
    assert [p.name for p in target.parent.iterdir()] == ["a.ocr.json"]


def test_errors_never_show_credentials(
    s3_server: object, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + FAKE_SECRET_KEY)
    s3fs.S3FileSystem.clear_instance_cache()
    url = f"s3://{FAKE_ACCESS_KEY}:{FAKE_SECRET_KEY}@no-such-bucket-y2/a.pdf?sig=zzz"
    with pytest.raises(StorageError, match="credentials in a URL are refused") as refused:
        read_bytes(url)
    # A store that refuses the (wrong) credentials from the environment:
    with pytest.raises((StorageError, DocumentNotFoundError)) as failed:
        read_bytes("s3://no-such-bucket-y2/a.pdf")
    s3fs.S3FileSystem.clear_instance_cache()
    for error in (refused.value, failed.value):
        message = str(error)
        assert "no-such-bucket-y2/a.pdf" in message
        for secret in (FAKE_SECRET_KEY, FAKE_ACCESS_KEY, "sig=zzz"):
            assert secret not in message
    for secret in (FAKE_SECRET_KEY, "sig=zzz"):
        assert secret not in caplog.text
