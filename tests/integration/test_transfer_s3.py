"""TransferManager + S3 adapter against a local moto S3 server (reached through AWS_ENDPOINT_URL_S3).

What needs no server (ResumingReader on made-up answers, the base of the adapters) is in tests/unit/test_transfer.py;
resumed reads on real servers (S3 included) in test_transfer_providers.py."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ConnectionClosedError
from moto.server import ThreadedMotoServer

from storage_api import TransferError
from storage_api.transfer import MB, TransferManager
from storage_api.transfer.s3 import S3Adapter, S3Reader, stream_upload_config
from tests.integration.transfer_support import Totals

REGION = "us-east-1"
SOURCE, DESTINATION = "kbc-source-files", "kbc-destination-files"
CREDENTIALS = {"AccessKeyId": "ASIATEST", "SecretAccessKey": "secret", "SessionToken": "session"}
_ids = itertools.count(1000)

# Small multipart sizes (S3's minimum part is 5 MiB) so multipart code paths run on small test data.
SMALL_PARTS = S3Adapter(
    file_config=TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB, max_concurrency=2),
    stream_config=stream_upload_config(chunk_size=5 * MB, chunks_in_memory=2),
)


@pytest.fixture(scope="module")
def s3_endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    admin = boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="a", aws_secret_access_key="b"
    )
    for bucket in (SOURCE, DESTINATION):
        admin.create_bucket(Bucket=bucket)
    yield endpoint, admin
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    endpoint, admin = s3_endpoint
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)  # what boto3 honours; the adapter passes no endpoint
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    return admin


@pytest.fixture
def manager():
    with TransferManager(max_workers=4, adapters={"aws": SMALL_PARTS}, retry_wait=0.01) as transfer:
        yield transfer


def _prefix() -> str:
    return f"exp-2/{next(_ids)}/table."


def stored_file(bucket: str, key: str, *, sliced: bool, url: str | None = None) -> dict:
    """What GET files/{id}?federationToken=1 returns on an AWS stack."""
    return {
        "id": next(_ids),
        "provider": "aws",
        "region": REGION,
        "isSliced": sliced,
        "url": url,
        "s3Path": {"bucket": bucket, "key": key},
        "credentials": CREDENTIALS,
    }


def prepared_file(bucket: str, key: str, *, sliced: bool) -> dict:
    """What POST files/prepare returns on an AWS stack."""
    return {
        "id": next(_ids),
        "provider": "aws",
        "region": REGION,
        "isSliced": sliced,
        "uploadParams": {
            "bucket": bucket,
            "key": key,
            "acl": "private",
            "credentials": CREDENTIALS,
            "x-amz-server-side-encryption": "AES256",
        },
    }


def put_sliced(admin, bucket: str, key: str, slices: dict[str, bytes]) -> None:
    """Slices at key + name and the manifest listing them in the dict's order."""
    for name, data in slices.items():
        admin.put_object(Bucket=bucket, Key=key + name, Body=data)
    entries = [{"url": f"s3://{bucket}/{key}{name}"} for name in slices]
    admin.put_object(Bucket=bucket, Key=key + "manifest", Body=json.dumps({"entries": entries}).encode())


def read(admin, bucket: str, key: str) -> bytes:
    return admin.get_object(Bucket=bucket, Key=key)["Body"].read()


def slice_data(count: int, size: int = 300_000) -> list[bytes]:
    return [gzip.compress(f"{i},row\n".encode() * (size // 6 + i * 997), compresslevel=1) for i in range(count)]


# downloads ------------------------------------------------------------------------------------------------------
def test_sliced_download_is_parallel_ordered_and_exact(s3, manager, tmp_path, monkeypatch):
    key = _prefix()
    data = slice_data(10)
    # manifest order deliberately differs from the lexical order of the keys
    names = [f"{9 - i:04d}_part_00.gz" for i in range(10)]
    put_sliced(s3, SOURCE, key, dict(zip(names, data)))

    running, peak, lock = 0, 0, threading.Lock()
    original = S3Reader.download

    def tracked(self, part, dest, progress, **kwargs):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.05)
            original(self, part, dest, progress, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(S3Reader, "download", tracked)
    progress = Totals()
    paths = manager.download(stored_file(SOURCE, key, sliced=True), tmp_path / "out", progress)

    assert [p.name for p in paths] == [f"part_{i:05d}.gz" for i in range(10)]
    assert [p.read_bytes() for p in paths] == data
    assert sorted(paths) == paths
    assert 1 < peak <= 4
    assert progress.total == sum(map(len, data))


def test_non_sliced_download(s3, manager, tmp_path):
    key = _prefix() + "csv.gz"
    s3.put_object(Bucket=SOURCE, Key=key, Body=b"abc" * 1000)
    paths = manager.download(stored_file(SOURCE, key, sliced=False), tmp_path)
    assert [p.name for p in paths] == ["part_00000.csv.gz"] and paths[0].read_bytes() == b"abc" * 1000


def test_manifest_falls_back_to_the_presigned_url(s3, manager, tmp_path):
    key = _prefix()
    put_sliced(s3, SOURCE, key, {"0000_part_00": b"a,b\n"})
    url = s3.generate_presigned_url("get_object", Params={"Bucket": SOURCE, "Key": key + "manifest"})
    elsewhere = stored_file(SOURCE, "elsewhere/no-manifest-here.", sliced=True, url=url)
    (path,) = manager.download(elsewhere, tmp_path)
    assert path.read_bytes() == b"a,b\n"


def test_empty_sliced_file_downloads_nothing(s3, manager, tmp_path):
    key = _prefix()
    put_sliced(s3, SOURCE, key, {})
    assert manager.download(stored_file(SOURCE, key, sliced=True), tmp_path) == []


def test_missing_slice_fails_naming_the_slice(s3, manager, tmp_path):
    key = _prefix()
    put_sliced(s3, SOURCE, key, {"0000_part_00.gz": b"x", "0001_part_00.gz": b"y"})
    s3.delete_object(Bucket=SOURCE, Key=key + "0001_part_00.gz")
    with pytest.raises(TransferError) as caught:
        manager.download(stored_file(SOURCE, key, sliced=True), tmp_path)
    assert "slice 2 of 2" in str(caught.value) and f"s3://{SOURCE}/{key}0001_part_00.gz" in str(caught.value)


def test_transient_slice_failure_is_retried_and_progress_stays_exact(s3, manager, tmp_path, monkeypatch):
    key = _prefix()
    data = slice_data(3)
    put_sliced(s3, SOURCE, key, {f"{i:04d}_part_00.gz": d for i, d in enumerate(data)})
    original = S3Reader.download
    failures = {"left": 1}

    def flaky(self, part, dest, progress, **kwargs):
        if part.url.endswith("0001_part_00.gz") and failures["left"]:
            failures["left"] -= 1
            progress(1234)  # bytes that will not count: the slice restarts
            raise ConnectionClosedError(endpoint_url="http://s3")
        original(self, part, dest, progress, **kwargs)

    monkeypatch.setattr(S3Reader, "download", flaky)
    progress = Totals()
    paths = manager.download(stored_file(SOURCE, key, sliced=True), tmp_path, progress)
    assert [p.read_bytes() for p in paths] == data
    assert progress.total == sum(map(len, data)) and failures["left"] == 0


# uploads --------------------------------------------------------------------------------------------------------
def test_upload_single_file_multipart_with_encryption(s3, manager, tmp_path):
    source = tmp_path / "big.csv.gz"
    source.write_bytes(os.urandom(12 * MB + 123))  # 3 parts of the 5 MiB test part size
    key = _prefix() + "csv.gz"
    progress = Totals()
    manager.upload(prepared_file(DESTINATION, key, sliced=False), source, progress)

    assert read(s3, DESTINATION, key) == source.read_bytes()
    head = s3.head_object(Bucket=DESTINATION, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ETag"].strip('"').endswith("-3")  # multipart
    assert progress.total == source.stat().st_size


def test_upload_slices_and_manifest(s3, manager, tmp_path):
    paths = []
    for i, data in enumerate(slice_data(4)):
        path = tmp_path / f"slice_{i:03d}.csv.gz"
        path.write_bytes(data)
        paths.append(path)
    key = _prefix()
    progress = Totals()
    manager.upload_slices(prepared_file(DESTINATION, key, sliced=True), paths, progress)

    manifest = json.loads(read(s3, DESTINATION, key + "manifest"))
    assert manifest == {"entries": [{"url": f"s3://{DESTINATION}/{key}{p.name}", "mandatory": True} for p in paths]}
    assert [read(s3, DESTINATION, key + p.name) for p in paths] == [p.read_bytes() for p in paths]
    assert progress.total == sum(p.stat().st_size for p in paths)


def test_upload_slices_needs_a_sliced_prepared_file(s3, manager, tmp_path):
    """A caller's mistake, not a Storage failure: a plain error (exit 2), not a TransferError (a user's exit 1)."""
    path = tmp_path / "a.csv"
    path.write_text("a\n")
    with pytest.raises(ValueError, match="prepared without isSliced; slices need sliced=True"):
        manager.upload_slices(prepared_file(DESTINATION, _prefix(), sliced=False), [path])


# copy -----------------------------------------------------------------------------------------------------------
def test_copy_streams_slices_between_buckets(s3, manager):
    source_key, target_key = _prefix(), _prefix()
    data = slice_data(5)
    data[2] = os.urandom(11 * MB)  # one slice large enough for a multipart stream upload
    put_sliced(s3, SOURCE, source_key, {f"{i:04d}_part_00.gz": d for i, d in enumerate(data)})
    progress = Totals()
    manager.copy(
        stored_file(SOURCE, source_key, sliced=True), prepared_file(DESTINATION, target_key, sliced=True), progress
    )

    names = [f"part_{i:05d}.gz" for i in range(5)]
    manifest = json.loads(read(s3, DESTINATION, target_key + "manifest"))
    assert [entry["url"] for entry in manifest["entries"]] == [f"s3://{DESTINATION}/{target_key}{n}" for n in names]
    assert [read(s3, DESTINATION, target_key + n) for n in names] == data  # bytes kept, gz not decompressed
    assert s3.head_object(Bucket=DESTINATION, Key=target_key + names[2])["ServerSideEncryption"] == "AES256"
    assert progress.total == sum(map(len, data))


def test_copy_non_sliced_source_within_one_bucket(s3, manager):
    source_key = _prefix() + "csv"
    s3.put_object(Bucket=SOURCE, Key=source_key, Body=b'"a","b"\n')
    target_key = _prefix()
    manager.copy(stored_file(SOURCE, source_key, sliced=False), prepared_file(SOURCE, target_key, sliced=True))
    assert read(s3, SOURCE, target_key + "part_00000.csv") == b'"a","b"\n'
    assert json.loads(read(s3, SOURCE, target_key + "manifest"))["entries"][0]["url"].endswith("part_00000.csv")


# providers ------------------------------------------------------------------------------------------------------
def test_default_adapter_is_loaded_for_aws(s3, tmp_path):
    key = _prefix() + "csv"
    s3.put_object(Bucket=SOURCE, Key=key, Body=b"x")
    with TransferManager(max_workers=2) as transfer:
        assert Path(transfer.download(stored_file(SOURCE, key, sliced=False), tmp_path)[0]).read_bytes() == b"x"


def test_upload_to_a_sliced_prepared_file_writes_one_slice_and_the_manifest(s3, manager, tmp_path):
    path = tmp_path / "data.csv.gz"
    path.write_bytes(b"\x1f\x8b compressed")
    key = _prefix()
    manager.upload(prepared_file(DESTINATION, key, sliced=True), path)
    assert read(s3, DESTINATION, key + "data.csv.gz") == path.read_bytes()
    assert json.loads(read(s3, DESTINATION, key + "manifest"))["entries"] == [
        {"url": f"s3://{DESTINATION}/{key}data.csv.gz", "mandatory": True}
    ]
