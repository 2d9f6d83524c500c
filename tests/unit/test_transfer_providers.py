"""TransferManager + Azure / GCS adapters against the emulator's file storages (Azurite, gcp-storage-emulator).

The files are shaped like the Storage API answers (``detail_block`` / ``prepare_block`` of the emulator storage):
the Azure adapter reaches Azurite through the SAS connection string alone, the GCS adapter through
``STORAGE_EMULATOR_HOST`` and the bearer token. The GCS emulator checks tokens (expiry, read/write, key prefix),
so the credential-refresh tests run against real rejections.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import threading
from pathlib import Path

import pytest

from emulator.filestorage import create_file_storage
from emulator.filestorage.azure import azurite_binary
from storage_api import TransferError
from storage_api.transfer import TransferManager
from storage_api.transfer.azure import AzureAdapter, AzureReader, parse_abs_url
from storage_api.transfer.azure import is_transient as azure_transient
from storage_api.transfer.gcs import GcsAdapter, KbcTokenCredentials, parse_gs_url, token_from

MB = 2**20
_ids = itertools.count(5000)

AZURITE_MISSING = azurite_binary() is None
PROVIDERS = [
    pytest.param(
        "azure",
        marks=pytest.mark.skipif(
            AZURITE_MISSING, reason="Azurite is not installed (node_modules/.bin/azurite-blob; run `npm ci`)"
        ),
    ),
    "gcp",
]

# small blocks / chunks so block uploads, resumable chunks and ranged reads all run on small test data
SMALL_ADAPTERS = {
    "azure": lambda: AzureAdapter(block_size=1 * MB, max_concurrency=2),
    "gcp": lambda: GcsAdapter(chunk_size=1 * MB),
}


@pytest.fixture(scope="module")
def storages(tmp_path_factory):
    started = {}
    yield started
    for storage in started.values():
        storage.stop()


@pytest.fixture(params=PROVIDERS)
def fs(request, storages, tmp_path_factory, monkeypatch):
    """The started file storage of the provider (one per module); its env applied like in a client process."""
    provider = request.param
    if provider not in storages:
        storage = create_file_storage(provider, tmp_path_factory.mktemp(f"files-{provider}"))
        storage.start()
        storages[provider] = storage
    storage = storages[provider]
    for name, value in storage.env.items():
        monkeypatch.setenv(name, value)
    return storage


@pytest.fixture
def gcs(storages, tmp_path_factory, monkeypatch):
    if "gcp" not in storages:
        storage = create_file_storage("gcp", tmp_path_factory.mktemp("files-gcp"))
        storage.start()
        storages["gcp"] = storage
    storage = storages["gcp"]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage.env["STORAGE_EMULATOR_HOST"])
    return storage


@pytest.fixture
def manager(fs):
    with TransferManager(max_workers=4, adapters={fs.provider: SMALL_ADAPTERS[fs.provider]()}, retry_wait=0.01) as tm:
        yield tm


def _key() -> str:
    return f"exp-2/{next(_ids)}/table-exports/in/c-main/data."


def stored_file(fs, key: str, *, sliced: bool, size: int | None = None) -> dict:
    """What GET files/{id}?federationToken=1 returns on this provider's stack."""
    return {
        "id": next(_ids),
        "provider": fs.provider,
        "isSliced": sliced,
        "sizeBytes": size,
        "url": fs.url(key, sliced=sliced),
        **fs.detail_block(key, sliced=sliced),
    }


def prepared_file(fs, key: str, *, sliced: bool) -> dict:
    """What POST files/prepare returns on this provider's stack."""
    return {
        "id": next(_ids),
        "provider": fs.provider,
        "isSliced": sliced,
        **fs.prepare_block(key, name="data.csv", sliced=sliced, encrypted=True),
    }


def put_sliced(fs, key: str, slices: dict[str, bytes]) -> None:
    for name, data in slices.items():
        fs.put_bytes(key + name, data)
    entries = [{"url": fs.entry_url(key + name)} for name in slices]
    fs.put_bytes(key + "manifest", json.dumps({"entries": entries}).encode())


def fetched(fs, key: str, tmp_path: Path) -> bytes:
    target = tmp_path / f"fetched-{next(_ids)}"
    fs.fetch(key, target)
    return target.read_bytes()


def slice_data(count: int) -> list[bytes]:
    return [gzip.compress(f"{i},row\n".encode() * (20_000 + i * 9_973), compresslevel=1) for i in range(count)]


class Totals:
    def __init__(self):
        self.total = 0
        self.lock = threading.Lock()

    def __call__(self, amount: int) -> None:
        with self.lock:
            self.total += amount


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# downloads ------------------------------------------------------------------------------------------------------
def test_sliced_download_keeps_manifest_order_and_bytes(fs, manager, tmp_path):
    key = _key()
    data = slice_data(8) + [b""]  # an empty slice too
    names = [f"{8 - i:04d}_part_00.csv.gz" for i in range(9)]  # manifest order differs from lexical order
    put_sliced(fs, key, dict(zip(names, data)))
    progress = Totals()

    paths = manager.download(stored_file(fs, key, sliced=True), tmp_path / "out", progress)

    assert [p.name for p in paths] == [f"part_{i:05d}.csv.gz" for i in range(9)]
    assert [p.read_bytes() for p in paths] == data
    assert progress.total == sum(map(len, data))


def test_non_sliced_download_of_a_multi_chunk_object(fs, manager, tmp_path):
    key = _key() + "csv"
    source = tmp_path / "source.csv"
    source.write_bytes(os.urandom(5 * MB + 123))  # several 1 MiB ranged GETs on Azure
    fs.put_file(key, source)
    progress = Totals()

    (path,) = manager.download(stored_file(fs, key, sliced=False, size=source.stat().st_size), tmp_path / "o", progress)

    assert path.name == "part_00000.csv" and path.read_bytes() == source.read_bytes()
    assert progress.total == source.stat().st_size


def test_missing_slice_fails_naming_it(fs, manager, tmp_path):
    key = _key()
    put_sliced(fs, key, {"0000_part_00.gz": b"x"})
    entries = [{"url": fs.entry_url(key + "0000_part_00.gz")}, {"url": fs.entry_url(key + "0001_part_00.gz")}]
    fs.put_bytes(key + "manifest", json.dumps({"entries": entries}).encode())
    with pytest.raises(TransferError) as caught:
        manager.download(stored_file(fs, key, sliced=True), tmp_path)
    assert "slice 2 of 2" in str(caught.value) and fs.entry_url(key + "0001_part_00.gz") in str(caught.value)


def test_foreign_manifest_entry_is_refused(fs, manager, tmp_path):
    key = _key()
    fs.put_bytes(key + "manifest", json.dumps({"entries": [{"url": "s3://other-bucket/x"}]}).encode())
    with pytest.raises(TransferError, match="manifest"):
        manager.download(stored_file(fs, key, sliced=True), tmp_path)


def test_reader_open_streams_a_slice(fs, tmp_path):
    key = _key() + "csv"
    data = os.urandom(3 * MB + 5)
    source = tmp_path / "s"
    source.write_bytes(data)
    fs.put_file(key, source)
    adapter = SMALL_ADAPTERS[fs.provider]()
    reader = adapter.reader(stored_file(fs, key, sliced=False))
    (part,) = reader.slices()
    with reader.open(part) as stream:
        first = stream.read(1000)
        rest = stream.read()
    assert len(first) == 1000 and first + rest == data


# uploads --------------------------------------------------------------------------------------------------------
def test_single_file_upload_in_chunks(fs, manager, tmp_path):
    key = _key() + "csv.gz"
    source = tmp_path / "data.csv.gz"
    source.write_bytes(os.urandom(9 * MB + 77))  # above 8 MiB: block upload / resumable upload in 1 MiB chunks
    progress = Totals()

    manager.upload(prepared_file(fs, key, sliced=False), source, progress)

    assert fetched(fs, key, tmp_path) == source.read_bytes()
    assert progress.total == source.stat().st_size
    assert not fs.exists(key + "manifest")


def test_sliced_upload_writes_slices_and_a_manifest_with_the_provider_scheme(fs, manager, tmp_path):
    key = _key()
    data = slice_data(3) + [b""]
    paths = []
    for i, content in enumerate(data):
        path = tmp_path / f"{i:04d}_part_00.csv.gz"
        path.write_bytes(content)
        paths.append(path)

    manager.upload_slices(prepared_file(fs, key, sliced=True), paths)

    manifest = json.loads(fs.read_bytes(key + "manifest"))
    scheme = {"azure": "azure://devstoreaccount1.blob.core.windows.net/", "gcp": "gs://"}[fs.provider]
    assert [entry["url"] for entry in manifest["entries"]] == [fs.entry_url(key + p.name) for p in paths]
    assert all(entry["url"].startswith(scheme) and entry["mandatory"] is True for entry in manifest["entries"])
    assert [fs.entry_key(entry["url"]) for entry in manifest["entries"]] == [key + p.name for p in paths]
    assert [fetched(fs, key + p.name, tmp_path) for p in paths] == data


def test_copy_streams_slices_into_a_new_sliced_file(fs, manager, tmp_path):
    """Reader stream -> writer stream on the same storage (on GCS both directions at once: no server deadlock)."""
    source_key, target_key = _key(), _key()
    data = slice_data(3) + [os.urandom(3 * MB)]
    put_sliced(fs, source_key, {f"{i:04d}_part_00.gz": d for i, d in enumerate(data)})
    progress = Totals()

    manager.copy(stored_file(fs, source_key, sliced=True), prepared_file(fs, target_key, sliced=True), progress)

    manifest = json.loads(fs.read_bytes(target_key + "manifest"))
    keys = [fs.entry_key(entry["url"]) for entry in manifest["entries"]]
    assert keys == [f"{target_key}part_{i:05d}.gz" for i in range(4)]
    assert [fetched(fs, k, tmp_path) for k in keys] == data
    assert progress.total == sum(map(len, data))


def test_download_credentials_cannot_upload(fs, tmp_path):
    key = _key() + "csv"
    source = tmp_path / "x.csv"
    source.write_bytes(b"a,b\n")
    read_only = dict(stored_file(fs, key, sliced=False), isSliced=False)
    # a prepared file whose credentials are the read-only ones of a file detail
    if fs.provider == "azure":
        blocked = {
            "id": 1,
            "provider": "azure",
            "absUploadParams": {
                "blobName": key,
                "container": read_only["absPath"]["container"],
                "accountName": "devstoreaccount1",
                "absCredentials": read_only["absCredentials"],
            },
        }
    else:
        blocked = {
            "id": 1,
            "provider": "gcp",
            "gcsUploadParams": {**read_only["gcsCredentials"], "bucket": "kbc-sapi-files", "key": key},
        }
    tm = TransferManager(max_workers=1, adapters={fs.provider: SMALL_ADAPTERS[fs.provider]()}, retry_wait=0.01)
    with tm, pytest.raises(TransferError) as caught:
        tm.upload(blocked, source)
    assert "403" in str(caught.value) or "not authorized" in str(caught.value).lower()
    assert not fs.exists(key)


def test_missing_credentials_ask_for_a_federation_token(fs, manager, tmp_path):
    plain = {"id": 7, "provider": fs.provider, "isSliced": False}
    with pytest.raises(TransferError, match="federationToken"):
        manager.download(plain, tmp_path)


# url parsing ----------------------------------------------------------------------------------------------------
def test_parse_abs_url_accepts_azure_https_and_path_style_urls():
    assert parse_abs_url("azure://acct.blob.core.windows.net/kbc-files/exp-2/1/a.csv0000_part_00") == (
        "kbc-files",
        "exp-2/1/a.csv0000_part_00",
    )
    assert parse_abs_url("https://acct.blob.core.windows.net/kbc-files/exp-2/a%20b.csv") == (
        "kbc-files",
        "exp-2/a b.csv",
    )
    assert parse_abs_url("http://127.0.0.1:10000/devstoreaccount1/kbc-files/x/y") == ("kbc-files", "x/y")
    for bad in ("s3://bucket/key", "azure://acct.blob.core.windows.net/only-container", "gs://b/k", ""):
        with pytest.raises(TransferError):
            parse_abs_url(bad)


def test_parse_gs_url():
    assert parse_gs_url("gs://kbc-files/exp-2/1/a.csv0000_part_00") == ("kbc-files", "exp-2/1/a.csv0000_part_00")
    for bad in ("s3://bucket/key", "gs://bucket", "gs://bucket/", "https://storage.googleapis.com/b/k"):
        with pytest.raises(TransferError):
            parse_gs_url(bad)


def test_azure_transient_errors():
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    assert azure_transient(ServiceRequestError("connection refused"))
    busy, denied = HttpResponseError("busy"), HttpResponseError("denied")
    busy.status_code, denied.status_code = 503, 403
    assert azure_transient(busy) and not azure_transient(denied)


def test_azure_reader_uses_the_connection_string_account_for_a_whole_file():
    file = {
        "id": 1,
        "isSliced": False,
        "absPath": {"container": "c", "name": "n.csv"},
        "absCredentials": {
            "SASConnectionString": "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=x&sig=y",
            "expiration": "2030-01-01T00:00:00+0000",
        },
    }
    (part,) = AzureReader(file).slices()
    assert part.url == "azure://acct.blob.core.windows.net/c/n.csv"


# GCS credential refresh -----------------------------------------------------------------------------------------
def test_token_credentials_renew_only_when_less_than_the_margin_remains():
    clock = FakeClock()
    answers = iter([{"gcsUploadParams": {"access_token": "second", "expires_in": 3599}}])
    calls = []

    def renew():
        calls.append(clock.now)
        return next(answers)

    credentials = KbcTokenCredentials("first", 3599, refresh=renew, clock=clock, margin=300)
    clock.now += 3599 - 301
    assert credentials.valid and credentials.token == "first"
    clock.now += 2  # 299 s left
    assert credentials.expired
    credentials.before_request(None, "GET", "http://x", {})
    assert calls == [clock.now] and credentials.token == "second" and credentials.valid
    assert credentials.expires_at == clock.now + 3599


def test_token_without_refresh_callback_is_used_as_is():
    clock = FakeClock()
    credentials = KbcTokenCredentials("only", 3599, clock=clock)
    clock.now += 10_000
    headers = {}
    credentials.before_request(None, "GET", "http://x", headers)
    assert headers["authorization"] == "Bearer only"


def test_token_from_reads_upload_params_credentials_or_a_bare_block():
    assert token_from({"gcsUploadParams": {"access_token": "a", "expires_in": 100}}) == ("a", 100.0)
    assert token_from({"gcsCredentials": {"access_token": "b"}}) == ("b", 3599.0)
    assert token_from({"access_token": "c", "expires_in": 60}) == ("c", 60.0)
    with pytest.raises(TransferError):
        token_from({"id": 1})


def test_long_gcs_upload_refreshes_credentials_between_chunks(gcs, tmp_path):
    """Every 1 MiB chunk takes "20 minutes": the token is renewed through the refresh callback before it expires,
    and the emulator, which rejects expired tokens, accepts every chunk."""
    key = _key() + "csv"
    clock = FakeClock()
    refreshed = []

    def refresh(file_id):
        refreshed.append(file_id)
        return {"id": file_id, **gcs.prepare_block(key, name="data.csv", sliced=False, encrypted=True)}

    prepared = prepared_file(gcs, key, sliced=False)

    def slow(amount):
        clock.now += 1200 if amount > 0 else 0

    adapter = GcsAdapter(chunk_size=1 * MB, clock=clock)
    with TransferManager(max_workers=1, adapters={"gcp": adapter}, refresh_credentials=refresh) as tm:
        assert adapter.refresh_credentials is None  # set on first use
        source = tmp_path / "long.csv"
        source.write_bytes(os.urandom(10 * MB))
        tm.upload(prepared, source, slow)
        assert adapter.refresh_credentials is refresh
    assert len(refreshed) >= 3 and set(refreshed) == {prepared["id"]}
    assert fetched(gcs, key, tmp_path) == source.read_bytes()


def test_expired_gcs_token_is_refreshed_after_a_401(gcs, tmp_path):
    key = _key() + "csv"
    prepared = prepared_file(gcs, key, sliced=False)
    prepared["gcsUploadParams"]["access_token"] = gcs.access_token(key, write=True, ttl=-1)  # already expired
    refreshed = []

    def refresh(file_id):
        refreshed.append(file_id)
        return gcs.prepare_block(key, name="data.csv", sliced=False, encrypted=True)

    source = tmp_path / "a.csv"
    source.write_bytes(b"a,b\n1,2\n")
    with TransferManager(max_workers=1, adapters={"gcp": GcsAdapter()}, refresh_credentials=refresh) as tm:
        tm.upload(prepared, source)
    assert refreshed == [prepared["id"]]
    assert fetched(gcs, key, tmp_path) == source.read_bytes()


def test_expired_gcs_token_without_refresh_fails_clearly(gcs, tmp_path):
    key = _key() + "csv"
    prepared = prepared_file(gcs, key, sliced=False)
    prepared["gcsUploadParams"]["access_token"] = gcs.access_token(key, write=True, ttl=-1)
    source = tmp_path / "a.csv"
    source.write_bytes(b"a,b\n")
    tm = TransferManager(max_workers=1, adapters={"gcp": GcsAdapter()}, retry_wait=0.01)
    with tm, pytest.raises(TransferError, match="cannot be refreshed|401"):
        tm.upload(prepared, source)
    assert not gcs.exists(key)


def test_gcs_download_refreshes_near_expiry(gcs, tmp_path):
    key = _key()
    data = slice_data(3)
    put_sliced(gcs, key, {f"{i:04d}_part_00.gz": d for i, d in enumerate(data)})
    refreshed = []

    def refresh(file_id):
        refreshed.append(file_id)
        return gcs.detail_block(key, sliced=True)

    file = stored_file(gcs, key, sliced=True)
    file["gcsCredentials"]["access_token"] = gcs.access_token(key, write=False, ttl=-1)  # rejected if used
    ticks = iter([0.0])  # the reader is created at 0; every later request sees 3400 s: less than 5 minutes left
    adapter = GcsAdapter(clock=lambda: next(ticks, 3400.0))
    with TransferManager(max_workers=2, adapters={"gcp": adapter}, refresh_credentials=refresh) as tm:
        paths = tm.download(file, tmp_path / "out")
    assert [p.read_bytes() for p in paths] == data
    assert refreshed == [file["id"]]  # once for the reader, shared by the parallel slices
