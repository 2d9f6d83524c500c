"""Azure (Azurite) and GCP (gcp-storage-emulator) file storages of the emulator, used directly and through the
provider SDKs with only the credentials the API hands out (as a client process would)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psutil
import pytest
import requests

from emulator.errors import ValidationError
from emulator.filestorage import create_file_storage
from emulator.filestorage.azure import azurite_binary

MB = 2**20
NEEDS_AZURITE = pytest.mark.skipif(
    azurite_binary() is None, reason="Azurite is not installed (node_modules/.bin/azurite-blob; run `npm ci`)"
)
PROVIDERS = [pytest.param("azure", marks=NEEDS_AZURITE), "gcp"]


@pytest.fixture(autouse=True)
def _reset_emulator():
    """These tests need no Storage API emulator: override the package conftest's autouse fixture that starts one."""
    yield


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    storages = {}
    yield storages
    for storage in storages.values():
        storage.stop()


@pytest.fixture(params=PROVIDERS)
def fs(request, started, tmp_path_factory):
    provider = request.param
    if provider not in started:
        storage = create_file_storage(provider, tmp_path_factory.mktemp(provider))
        storage.start()
        started[provider] = storage
    return started[provider]


def _started(started, tmp_path_factory, provider):
    if provider not in started:
        storage = create_file_storage(provider, tmp_path_factory.mktemp(provider))
        storage.start()
        started[provider] = storage
    return started[provider]


@pytest.fixture
def azure(started, tmp_path_factory):
    if azurite_binary() is None:
        pytest.skip("Azurite is not installed (node_modules/.bin/azurite-blob; run `npm ci`)")
    return _started(started, tmp_path_factory, "azure")


@pytest.fixture
def gcp(started, tmp_path_factory, monkeypatch):
    storage = _started(started, tmp_path_factory, "gcp")
    for name, value in storage.env.items():
        monkeypatch.setenv(name, value)
    return storage


_counter = iter(range(10**6))


def _key(suffix: str = "csv") -> str:
    return f"exp-2/{next(_counter)}/in/c-main/table.{suffix}"


# the FileStorage interface -------------------------------------------------------------------------------------
def test_put_file_fetch_round_trip_exists_and_size(fs, tmp_path):
    key = _key()
    source = tmp_path / "source"
    source.write_bytes(os.urandom(3 * MB + 17))
    fs.put_file(key, source)
    assert fs.exists(key) and fs.size(key) == source.stat().st_size
    fs.fetch(key, tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == source.read_bytes()

    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    fs.put_file(key + "empty", empty)
    assert fs.size(key + "empty") == 0
    fs.fetch(key + "empty", tmp_path / "empty-back")
    assert (tmp_path / "empty-back").read_bytes() == b""


def test_put_bytes_overwrite_and_read_bytes(fs):
    key = _key("json")
    fs.put_bytes(key, b'{"entries": []}')
    fs.put_bytes(key, b'{"entries": [1]}')
    assert fs.read_bytes(key) == b'{"entries": [1]}'


def test_missing_objects(fs, tmp_path):
    key = _key()
    assert not fs.exists(key) and fs.size(key) is None
    with pytest.raises(FileNotFoundError):
        fs.fetch(key, tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        fs.read_bytes(key)


def test_url_is_readable_with_plain_requests(fs):
    key = _key()
    fs.put_bytes(key, b"a,b\n1,2\n")
    fs.put_bytes(key + "manifest", b'{"entries": []}')

    assert requests.get(fs.url(key, sliced=False), timeout=10).content == b"a,b\n1,2\n"
    sliced = requests.get(fs.url(key, sliced=True), timeout=10)
    assert sliced.status_code == 200 and sliced.json() == {"entries": []}

    unsigned = fs.url(key, sliced=False).split("?")[0]
    assert requests.get(unsigned, timeout=10).status_code in (401, 403, 404)


def test_entry_url_and_entry_key(fs):
    key = _key()
    url = fs.entry_url(key)
    expected = {"azure": "azure://devstoreaccount1.blob.core.windows.net/", "gcp": "gs://"}[fs.provider]
    assert url.startswith(expected) and url.endswith("/" + key)
    assert fs.entry_key(url) == key
    for foreign in ("s3://kbc-sapi-files/" + key, "gs://other-bucket/" + key, "", f"{expected}"):
        with pytest.raises(ValidationError) as caught:
            fs.entry_key(foreign)
        assert caught.value.code == "storage.importFileMissing"


def test_detail_block_issues_new_credentials_every_time(fs):
    first, second = fs.detail_block("k", sliced=False), fs.detail_block("k", sliced=False)
    if fs.provider == "azure":
        assert first["absPath"] == {"container": "kbc-sapi-files", "name": "k"}
        assert set(first["absCredentials"]) == {"SASConnectionString", "expiration"}
    else:
        assert first["gcsPath"] == {"bucket": "kbc-sapi-files", "key": "k"}
        credentials = first["gcsCredentials"]
        assert set(credentials) == {"projectId", "access_token", "token_type", "expires_in"}
        assert credentials["token_type"] == "Bearer" and credentials["expires_in"] == 3599
        assert credentials["access_token"] != second["gcsCredentials"]["access_token"]


def test_prepare_block_shape(fs):
    block = fs.prepare_block("exp/1/x.csv", name="x.csv", sliced=True, encrypted=True)
    if fs.provider == "azure":
        params = block["absUploadParams"]
        assert params["blobName"] == "exp/1/x.csv" and params["accountName"] == "devstoreaccount1"
        assert params["container"] == "kbc-sapi-files"
        assert set(params["absCredentials"]) == {"SASConnectionString", "expiration"}
    else:
        params = block["gcsUploadParams"]
        assert {k: params[k] for k in ("bucket", "key", "expires_in", "token_type")} == {
            "bucket": "kbc-sapi-files",
            "key": "exp/1/x.csv",
            "expires_in": 3599,
            "token_type": "Bearer",
        }
        assert params["projectId"] and params["access_token"]


# Azure: a client with only the SAS connection string ------------------------------------------------------------
def _sas(connection_string: str) -> dict:
    endpoint, sas = connection_string.split(";SharedAccessSignature=")
    assert endpoint.startswith("BlobEndpoint=http://127.0.0.1:")
    return parse_qs(sas)


def test_azure_upload_sas_writes_and_download_sas_reads(azure):
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import BlobServiceClient

    key = _key()
    upload = azure.prepare_block(key, name="table.csv", sliced=False, encrypted=True)["absUploadParams"]
    upload_cs = upload["absCredentials"]["SASConnectionString"]
    permissions = _sas(upload_cs)["sp"][0]
    assert {"c", "w"} <= set(permissions) and "r" not in permissions  # keboola/cli#131: not a read-only SAS
    uploader = BlobServiceClient.from_connection_string(upload_cs)
    blob = uploader.get_blob_client(upload["container"], upload["blobName"])
    blob.upload_blob(os.urandom(3 * MB), overwrite=True, max_concurrency=2)  # block upload (stage + commit)
    blob.upload_blob(b"a,b\n", overwrite=True)
    with pytest.raises(HttpResponseError) as caught:
        blob.download_blob().readall()
    assert caught.value.status_code == 403

    detail = azure.detail_block(key, sliced=False)
    download_cs = detail["absCredentials"]["SASConnectionString"]
    assert set(_sas(download_cs)["sp"][0]) == {"r", "l"}
    reader = BlobServiceClient.from_connection_string(download_cs)
    path = detail["absPath"]
    assert reader.get_blob_client(path["container"], path["name"]).download_blob().readall() == b"a,b\n"
    with pytest.raises(HttpResponseError) as caught:
        reader.get_blob_client(path["container"], path["name"]).upload_blob(b"x", overwrite=True)
    assert caught.value.status_code == 403
    assert azure.read_bytes(key) == b"a,b\n"


def test_azure_entry_key_accepts_https_and_emulator_urls(azure):
    assert azure.entry_key("https://devstoreaccount1.blob.core.windows.net/kbc-sapi-files/a/b%20c.csv") == "a/b c.csv"
    assert azure.entry_key(f"{azure.endpoint}/kbc-sapi-files/a/b.csv") == "a/b.csv"
    with pytest.raises(ValidationError):
        azure.entry_key("azure://otheraccount.blob.core.windows.net/kbc-sapi-files/a.csv")


# GCP: a client with only the access token and STORAGE_EMULATOR_HOST ---------------------------------------------
def _gcs_client(params: dict):
    from google.cloud import storage
    from google.oauth2.credentials import Credentials

    return storage.Client(project=params["projectId"], credentials=Credentials(token=params["access_token"]))


def test_gcp_env_names_the_emulator(gcp):
    assert gcp.env == {"STORAGE_EMULATOR_HOST": gcp.endpoint}


def test_gcp_upload_token_writes_and_download_token_reads(gcp, tmp_path):
    from google.api_core.exceptions import Forbidden

    key = _key()
    upload = gcp.prepare_block(key, name="table.csv", sliced=True, encrypted=True)["gcsUploadParams"]
    bucket = _gcs_client(upload).bucket(upload["bucket"])
    big = tmp_path / "big"
    big.write_bytes(os.urandom(9 * MB))  # above 8 MiB: resumable upload in chunks
    slice_blob = bucket.blob(upload["key"] + "0000_part_00", chunk_size=1 * MB)
    slice_blob.upload_from_filename(str(big))
    bucket.blob(upload["key"] + "manifest").upload_from_string(json.dumps({"entries": []}))
    with pytest.raises(Forbidden):  # the token is scoped to the file's key prefix
        bucket.blob("exp-2/elsewhere.csv").upload_from_string(b"x")

    detail = gcp.detail_block(key, sliced=True)
    reader = _gcs_client(detail["gcsCredentials"]).bucket(detail["gcsPath"]["bucket"])
    back = tmp_path / "back"
    reader.blob(detail["gcsPath"]["key"] + "0000_part_00").download_to_filename(str(back))
    assert back.read_bytes() == big.read_bytes()
    assert [b.name for b in reader.list_blobs(prefix=key)] == [key + "0000_part_00", key + "manifest"]
    with pytest.raises(Forbidden):  # read-only token
        reader.blob(key + "0001_part_00").upload_from_string(b"x")
    with pytest.raises(Forbidden):  # listing outside the prefix
        list(reader.list_blobs(prefix="exp-2/"))


def test_gcp_rejects_missing_forged_and_expired_tokens(gcp):
    from google.api_core.exceptions import Unauthorized
    from google.auth.exceptions import RefreshError

    key = _key()
    gcp.put_bytes(key, b"data")
    media = f"{gcp.endpoint}/download/storage/v1/b/kbc-sapi-files/o/{requests.utils.quote(key, safe='')}?alt=media"
    assert requests.get(media, timeout=10).status_code == 401
    good = gcp.access_token(key, write=False)
    assert requests.get(media, headers={"Authorization": f"Bearer {good}"}, timeout=10).content == b"data"
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert requests.get(media, headers={"Authorization": f"Bearer {forged}"}, timeout=10).status_code == 401
    expired = gcp.access_token(key, write=False, ttl=-1)
    answer = requests.get(media, headers={"Authorization": f"Bearer {expired}"}, timeout=10)
    assert answer.status_code == 401 and "expired" in answer.json()["error"]["message"]
    with pytest.raises((Unauthorized, RefreshError)):  # google-auth tries to refresh a plain token after a 401
        _gcs_client({"projectId": "p", "access_token": expired}).bucket("kbc-sapi-files").blob(key).download_as_bytes()


def test_gcp_ranged_reads_stream_from_disk(gcp, tmp_path):
    key = _key()
    data = os.urandom(2 * MB + 3)
    source = tmp_path / "s"
    source.write_bytes(data)
    gcp.put_file(key, source)
    url = gcp.url(key, sliced=False)
    part = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    tail = requests.get(url, headers={"Range": "bytes=-10"}, timeout=10)
    assert tail.content == data[-10:]
    assert requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=10).status_code == 416
    whole = requests.get(url, timeout=10)
    assert whole.content == data and "crc32c=" in whole.headers["X-Goog-Hash"]


def test_gcp_signed_url_is_checked(gcp):
    key = _key()
    gcp.put_bytes(key, b"x")
    url = gcp.url(key, sliced=False)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    tampered = url.replace(query["X-Goog-Signature"][0], "0" * 64)
    assert requests.get(tampered, timeout=10).status_code == 403
    other = url.replace(parts.path, parts.path + "x")
    assert requests.get(other, timeout=10).status_code == 403


# lifecycle ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_stop_ends_the_subprocess_and_frees_the_port(provider, tmp_path):
    storage = create_file_storage(provider, tmp_path / provider)
    storage.start()
    port = storage.port
    process = psutil.Process(storage._proc.pid)
    family = [process, *process.children(recursive=True)]  # Azurite: the launcher and node
    storage.stop()
    storage.stop()  # idempotent
    _gone, alive = psutil.wait_procs(family, timeout=10)
    assert not alive and not storage.running
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_put_file_does_not_read_the_file_into_memory(fs, tmp_path):
    """A 128 MiB upload and download grow this process by far less than the file (streamed both ways)."""
    key = _key()
    source = tmp_path / "big"
    with open(source, "wb") as out:
        out.writelines(os.urandom(MB) for _ in range(128))
    fs.put_bytes(_key(), b"warm-up")  # SDK clients, pools and imports are not what is measured
    process = psutil.Process()
    before = process.memory_info().rss
    fs.put_file(key, source)
    fs.fetch(key, tmp_path / "back")
    grown = process.memory_info().rss - before
    assert Path(tmp_path / "back").stat().st_size == 128 * MB
    # bounded buffers only (Azure: 2 ranged GETs of 8 MiB in flight, plus per-thread allocator arenas)
    assert grown < 64 * MB, f"RSS grew by {grown / MB:.0f} MiB"


@pytest.mark.skipif(
    not os.environ.get("FILESTORAGE_BENCH_MB"), reason="throughput benchmark: set FILESTORAGE_BENCH_MB=200 to run"
)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_throughput(provider, tmp_path):
    """``FILESTORAGE_BENCH_MB=200 pytest emulator/tests/test_filestorage_providers.py -k throughput -s``"""
    import hashlib
    import time

    size = int(os.environ["FILESTORAGE_BENCH_MB"])
    source = tmp_path / "bench.bin"
    digest = hashlib.sha256()
    with open(source, "wb") as out:
        for _ in range(size):
            block = os.urandom(MB)
            digest.update(block)
            out.write(block)
    storage = create_file_storage(provider, tmp_path / provider)
    storage.start()
    try:
        started = time.perf_counter()
        storage.put_file("bench/file.bin", source)
        upload = time.perf_counter() - started
        started = time.perf_counter()
        storage.fetch("bench/file.bin", tmp_path / "back.bin")
        download = time.perf_counter() - started
    finally:
        storage.stop()
    back = hashlib.sha256()
    with open(tmp_path / "back.bin", "rb") as stream:
        while block := stream.read(MB):
            back.update(block)
    assert back.digest() == digest.digest()
    print(f"\n{provider}: {size} MB put_file {size / upload:.0f} MB/s, fetch {size / download:.0f} MB/s")
