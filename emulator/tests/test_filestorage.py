"""S3FileStorage against a real moto server subprocess, and clients that only know ``env`` + API credentials."""

from __future__ import annotations

import json
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests

from emulator.errors import ValidationError
from emulator.filestorage import FileStorage, create_file_storage
from emulator.filestorage.s3 import S3FileStorage


@pytest.fixture(autouse=True)
def _reset_emulator():
    """Overrides the package conftest's autouse fixture: these tests need no Emulator, only the file storage."""
    yield


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    fs = create_file_storage("aws", tmp_path_factory.mktemp("s3"))
    fs.start()
    yield fs
    fs.stop()


@pytest.fixture
def client_env(storage, monkeypatch):
    """A client process: the storage's env, and no AWS credentials of its own."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in storage.env.items():
        monkeypatch.setenv(key, value)
    return storage.env


def _client(credentials: dict, region: str):
    # exactly what kbcstorage does: credentials + region, no endpoint_url (it comes from AWS_ENDPOINT_URL_S3)
    return boto3.session.Session().client(
        "s3",
        region_name=region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def test_is_a_file_storage(storage):
    assert isinstance(storage, FileStorage)
    assert storage.provider == "aws"
    assert storage.env["AWS_ENDPOINT_URL_S3"].startswith("http://127.0.0.1:")
    assert storage.env["AWS_DEFAULT_REGION"] == "us-east-1"


def test_put_file_fetch_round_trip_is_binary_exact(storage, tmp_path):
    data = os.urandom(6 * 2**20 + 123)  # above moto's in-memory buffer: lands in a temp file
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    storage.put_file("test/round/trip.bin", src)
    dest = tmp_path / "dest.bin"
    storage.fetch("test/round/trip.bin", dest)
    assert dest.read_bytes() == data
    storage.put_bytes("test/round/small", b"\x00\x01gz\xff")
    assert storage.read_bytes("test/round/small") == b"\x00\x01gz\xff"


def test_exists_and_size(storage, tmp_path):
    storage.put_bytes("test/exists/a.csv", b"a,b\n1,2\n")
    assert storage.exists("test/exists/a.csv")
    assert storage.size("test/exists/a.csv") == 8
    assert not storage.exists("test/exists/missing.csv")
    assert storage.size("test/exists/missing.csv") is None
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("test/exists/missing.csv")
    with pytest.raises(FileNotFoundError):
        storage.fetch("test/exists/missing.csv", tmp_path / "x")


def test_presigned_url_is_readable_with_plain_requests(storage):
    storage.put_bytes("test/url/file.csv", b"x,y\n")
    storage.put_bytes("test/url/sliced.csvmanifest", b'{"entries": []}')
    resp = requests.get(storage.url("test/url/file.csv", sliced=False), timeout=10)
    assert resp.status_code == 200 and resp.content == b"x,y\n"
    url = storage.url("test/url/sliced.csv", sliced=True)
    assert url.split("?")[0].endswith("sliced.csvmanifest")
    assert "X-Amz-Expires=3600" in url
    assert requests.get(url, timeout=10).json() == {"entries": []}


def test_prepare_block_shape(storage):
    block = storage.prepare_block("exp/1/f.csv", name="f.csv", sliced=False, encrypted=True)
    params = block["uploadParams"]
    assert block["region"] == "us-east-1"
    assert params["key"] == "exp/1/f.csv" and params["bucket"] == storage.bucket and params["acl"] == "private"
    assert params["x-amz-server-side-encryption"] == "AES256"
    creds = params["credentials"]
    assert set(creds) == {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    expires = datetime.fromisoformat(creds["Expiration"])
    assert timedelta(hours=11, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=12)
    plain = storage.prepare_block("exp/1/g.csv", name="g.csv", sliced=True, encrypted=False)
    assert "x-amz-server-side-encryption" not in plain["uploadParams"]
    detail = storage.detail_block("exp/1/f.csv", sliced=False)
    assert detail["s3Path"] == {"bucket": storage.bucket, "key": "exp/1/f.csv"}
    assert set(detail["credentials"]) == set(creds) and detail["region"] == "us-east-1"


def test_client_with_env_and_federation_credentials_only(storage, client_env, tmp_path):
    # upload like kbcstorage Files.upload_file: uploadParams only
    prepare = storage.prepare_block("upload/7/data.csv", name="data.csv", sliced=False, encrypted=True)
    params = prepare["uploadParams"]
    s3 = _client(params["credentials"], prepare["region"])
    s3.put_object(
        Bucket=params["bucket"],
        Key=params["key"],
        Body=b"id,name\n1,a\n",
        ACL=params["acl"],
        ContentDisposition="attachment; filename=data.csv;",
        ServerSideEncryption=params["x-amz-server-side-encryption"],
    )
    assert storage.read_bytes("upload/7/data.csv") == b"id,name\n1,a\n"
    assert storage.client.head_object(Bucket=storage.bucket, Key="upload/7/data.csv")["ServerSideEncryption"] == (
        "AES256"
    )

    # sliced upload: slices at key + name, manifest at key + "manifest" with s3:// entries
    prepare = storage.prepare_block("upload/8/sliced.csv", name="sliced.csv", sliced=True, encrypted=True)
    params = prepare["uploadParams"]
    s3 = _client(params["credentials"], prepare["region"])
    entries = []
    for part in ("part0", "part1"):
        s3.put_object(
            Bucket=params["bucket"], Key=params["key"] + part, Body=part.encode(), ServerSideEncryption="AES256"
        )
        entries.append({"url": f"s3://{params['bucket']}/{params['key']}{part}"})
    s3.put_object(Bucket=params["bucket"], Key=params["key"] + "manifest", Body=json.dumps({"entries": entries}))
    manifest = json.loads(storage.read_bytes("upload/8/sliced.csvmanifest"))
    assert [storage.entry_key(e["url"]) for e in manifest["entries"]] == [
        "upload/8/sliced.csvpart0",
        "upload/8/sliced.csvpart1",
    ]

    # download like kbcstorage Files.download: s3Path + credentials, manifest via the presigned url
    detail = storage.detail_block("upload/8/sliced.csv", sliced=True)
    s3 = _client(detail["credentials"], detail["region"])
    listed = s3.list_objects_v2(Bucket=detail["s3Path"]["bucket"], Prefix=detail["s3Path"]["key"])
    assert sorted(o["Key"] for o in listed["Contents"]) == [
        "upload/8/sliced.csvmanifest",
        "upload/8/sliced.csvpart0",
        "upload/8/sliced.csvpart1",
    ]
    manifest = requests.get(storage.url("upload/8/sliced.csv", sliced=True), timeout=10).json()
    for entry in manifest["entries"]:
        key = "/".join(entry["url"].split("/")[3:])
        s3.download_file(detail["s3Path"]["bucket"], key, str(tmp_path / "slice"))
        assert (tmp_path / "slice").read_bytes() == key[-5:].encode()


def test_entry_url_round_trip_and_foreign_urls(storage):
    url = storage.entry_url("exp/2/t.csv0000_part_00")
    assert url == f"s3://{storage.bucket}/exp/2/t.csv0000_part_00"
    assert storage.entry_key(url) == "exp/2/t.csv0000_part_00"
    for foreign in (
        "s3://other-bucket/exp/2/t.csv",
        f"gs://{storage.bucket}/exp/2/t.csv",
        f"https://{storage.bucket}.s3.amazonaws.com/exp/2/t.csv",
        f"s3://{storage.bucket}/",
        "",
    ):
        with pytest.raises(ValidationError) as info:
            storage.entry_key(foreign)
        assert info.value.code == "storage.importFileMissing"


def test_parallel_use(storage):
    def work(i: int) -> bytes:
        storage.put_bytes(f"test/parallel/{i}", str(i).encode() * 1000)
        return storage.read_bytes(f"test/parallel/{i}")

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(work, range(48)))
    assert results == [str(i).encode() * 1000 for i in range(48)]


def test_stop_ends_the_subprocess(tmp_path):
    fs = S3FileStorage(tmp_path)
    fs.start()
    proc, port = fs._proc, fs.port
    assert fs.running
    fs.stop()
    assert proc.poll() is not None and not fs.running
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    fs.stop()  # idempotent
    assert (tmp_path / "moto-s3.log").exists()


def test_provider_registry(tmp_path):
    assert create_file_storage("azure", tmp_path).provider == "azure"
    assert create_file_storage("gcp", tmp_path).provider == "gcp"
    with pytest.raises(ValueError, match="Unknown file storage provider"):
        create_file_storage("ftp", tmp_path)
    assert isinstance(create_file_storage("aws", tmp_path), S3FileStorage)
