"""TransferManager + Azure / GCS adapters against the emulator's file storages (Azurite, gcp-storage-emulator).

The files are shaped like the Storage API answers (``detail_block`` / ``prepare_block`` of the emulator storage):
the Azure adapter reaches Azurite through the SAS connection string alone, the GCS adapter through
``STORAGE_EMULATOR_HOST`` and the bearer token. The GCS emulator checks tokens (expiry, read/write, key prefix),
so the credential-refresh tests run against real rejections.

The resumption tests (cut reads) run on all three providers, S3 (moto) included: ``HttpCuts`` cuts a GET mid-body
in urllib3, the HTTP layer botocore, azure-core and google-auth's requests share, and records every GET of the
object (Range, version condition, the version answered).
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import urllib3
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.response import HTTPResponse

from emulator.filestorage import create_file_storage
from emulator.filestorage.azure import azurite_binary
from storage_api import TransferError
from storage_api.transfer import TransferManager
from storage_api.transfer.azure import AzureAdapter, AzureReader, parse_abs_url
from storage_api.transfer.azure import is_transient as azure_transient
from storage_api.transfer.gcs import GcsAdapter, KbcTokenCredentials, parse_gs_url, token_from
from storage_api.transfer.s3 import S3Adapter

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
ALL_PROVIDERS = ["aws", *PROVIDERS]  # for what every adapter implements alike (resumed reads)

# small blocks / chunks so block uploads, resumable chunks and ranged reads all run on small test data
SMALL_ADAPTERS = {
    "aws": lambda: S3Adapter(),
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


class Deltas(Totals):
    """Progress total plus every delta (a negative one: a restarted slice took its bytes back)."""

    def __init__(self):
        super().__init__()
        self.deltas: list[int] = []

    def __call__(self, amount: int) -> None:
        with self.lock:
            self.total += amount
            self.deltas.append(amount)


@dataclass
class Get:
    """One GET of a watched object, as sent and as answered."""

    path: str
    range: str | None  # Range (S3, GCS) or x-ms-range (Azure) header
    condition: str | None  # If-Match (S3, Azure) or ifGenerationMatch (GCS) of the request
    status: int
    version: str | None  # ETag / X-Goog-Generation of the answer
    length: int | None  # Content-Length of the answer
    start: int  # first byte of the answer
    cut_at: int | None = None  # absolute offset where its body was cut


class HttpCuts:
    """Cuts GET bodies mid-stream in urllib3 and records the GETs of the objects it watches.

    urllib3 is the HTTP layer under botocore, azure-core (requests) and google-auth's AuthorizedSession (requests)
    alike, so one injection serves the three SDKs. ``arm(match, *cuts)`` watches the GETs whose (unquoted) URL
    path ``match`` accepts: the next watched GET whose body is longer than ``cuts[0]`` bytes delivers that many
    bytes, then closes its connection and raises urllib3's ProtocolError ("connection broken"), what a server dying
    mid-body produces; the following one takes ``cuts[1]``, and so on. ``on_cut`` runs at the moment of each cut
    (e.g. to overwrite the object before the client resumes); ``flip`` corrupts the byte at that offset of the
    next watched GET instead. ``writes`` counts the other requests (PUT, POST ...) sent while armed.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.disarm()

    def arm(self, match, *cuts: int, on_cut=None, flip: int | None = None) -> None:
        with self.lock:
            self.match, self.cuts, self.on_cut, self.flip = match, list(cuts), on_cut, flip
            self.gets: list[Get] = []
            self.writes = 0

    def disarm(self) -> None:
        self.arm(lambda path: False)
        self.match = None

    @property
    def ranges(self) -> list[str | None]:
        return [get.range for get in self.gets]

    # urllib3 hooks ------------------------------------------------------------------------------------------------
    def urlopen(self, original, pool, method, url, body=None, headers=None, *args, **kwargs):
        response = original(pool, method, url, body, headers, *args, **kwargs)
        if self.match is None:
            return response
        parts = urlsplit(url)
        sent = {str(k).lower(): v.decode() if isinstance(v, bytes) else v for k, v in (headers or {}).items()}
        with self.lock:
            if method != "GET":
                if method != "HEAD":
                    self.writes += 1
                return response
            if not self.match(unquote(parts.path)):
                return response
            answered = response.headers
            length = answered.get("Content-Length")
            start = (
                int(answered.get("Content-Range", "bytes 0-").split()[1].split("-")[0]) if response.status == 206 else 0
            )
            get = Get(
                path=unquote(parts.path),
                range=sent.get("range") or sent.get("x-ms-range"),
                condition=sent.get("if-match") or (parse_qs(parts.query).get("ifGenerationMatch") or [None])[0],
                status=response.status,
                version=answered.get("ETag") or answered.get("X-Goog-Generation"),
                length=int(length) if length is not None else None,
                start=start,
            )
            self.gets.append(get)
            if response.status in (200, 206) and get.length is not None:
                if self.flip is not None and self.flip < get.length:
                    response._test_flip, self.flip = self.flip, None
                elif self.cuts and self.cuts[0] < get.length:
                    response._test_cut_left = self.cuts.pop(0)
                    response._test_get = get
        return response

    def read(self, original, response, amt=None, *args, **kwargs):
        left = getattr(response, "_test_cut_left", None)
        flip = getattr(response, "_test_flip", None)
        if left is None and flip is None:
            return original(response, amt, *args, **kwargs)
        if flip is not None:
            data = original(response, amt, *args, **kwargs)
            done = getattr(response, "_test_read", 0)
            response._test_read = done + len(data)
            if done <= flip < done + len(data):
                data = data[: flip - done] + bytes([data[flip - done] ^ 0xFF]) + data[flip - done + 1 :]
                response._test_flip = None
            return data
        if left <= 0:
            response._test_cut_left = None
            get = response._test_get
            get.cut_at = get.start + getattr(response, "_test_read", 0)
            if self.on_cut is not None:
                self.on_cut()
            response.close()  # the connection dies with the server
            raise urllib3.exceptions.ProtocolError("Connection broken: injected cut in the middle of the body")
        data = original(response, left if amt is None or amt < 0 else min(amt, left), *args, **kwargs)
        response._test_cut_left = left - len(data)
        response._test_read = getattr(response, "_test_read", 0) + len(data)
        return data


def install_http_cuts(monkeypatch) -> HttpCuts:
    """An ``HttpCuts`` hooked into urllib3 (undone with ``monkeypatch``); also used by the reliability campaign."""
    cuts = HttpCuts()
    urlopen, read = HTTPConnectionPool.urlopen, HTTPResponse.read
    monkeypatch.setattr(HTTPConnectionPool, "urlopen", lambda pool, *a, **kw: cuts.urlopen(urlopen, pool, *a, **kw))
    monkeypatch.setattr(HTTPResponse, "read", lambda response, *a, **kw: cuts.read(read, response, *a, **kw))
    return cuts


@pytest.fixture
def http_cuts(monkeypatch):
    return install_http_cuts(monkeypatch)


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


# resumed reads (all three providers) ------------------------------------------------------------------------------
def _object(fs, key: str):
    """``match`` of an HttpCuts watch: the GETs of the object at ``key`` (whatever URL shape the SDK uses)."""
    return lambda path: path.endswith("/" + key)


def _pinned(fs, get: Get, first: Get) -> bool:
    """The resumed GET was conditional on the version the first GET answered."""
    return get.condition is not None and get.condition.strip('"') == first.version.strip('"')


@pytest.mark.parametrize("fs", ALL_PROVIDERS, indirect=True)
def test_cut_slice_download_resumes_at_the_cut_byte(fs, manager, http_cuts, tmp_path, caplog):
    key = _key()
    data = [os.urandom(3 * MB + 17), *slice_data(1)]
    names = ["0000_part_00.gz", "0001_part_00.gz"]
    put_sliced(fs, key, dict(zip(names, data)))
    offset = random.Random(f"{fs.provider} download").randrange(1, len(data[0]))
    file = stored_file(fs, key, sliced=True)
    http_cuts.arm(_object(fs, key + names[0]), offset)
    progress = Deltas()

    with caplog.at_level(logging.WARNING, logger="storage_api.transfer.base"):
        paths = manager.download(file, tmp_path / "out", progress)

    assert [p.read_bytes() for p in paths] == data, f"cut at {offset}"
    first, resumed = http_cuts.gets
    assert first.cut_at == offset and first.range is None and first.condition is None
    assert resumed.range == f"bytes={offset}-" and resumed.status == 206  # resumed at the cut byte, not at 0
    assert _pinned(fs, resumed, first) and resumed.version == first.version
    assert resumed.length == len(data[0]) - offset  # no byte sent twice
    assert progress.total == sum(map(len, data)) and min(progress.deltas) > 0  # nothing taken back: no restart
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part_00000.gz", "part_00001.gz"]  # no .part
    (warning,) = [r.getMessage() for r in caplog.records if "cut at byte" in r.getMessage()]
    url = fs.entry_url(key + names[0])
    assert warning.startswith(f"Slice 1 of 2 ({url}) of file {file['id']} cut at byte {offset:,} of {len(data[0]):,}")
    assert "resuming" in warning


@pytest.mark.parametrize("fs", ALL_PROVIDERS, indirect=True)
def test_repeated_cuts_resume_from_each_new_offset_then_restart_when_no_byte_comes(fs, http_cuts, tmp_path):
    """Cut at o1, then the resumed GET cut after o2 more bytes (progress: the count starts again), then two
    reopenings that deliver nothing: with 3 attempts the read gives up and the manager restarts the slice from 0."""
    key = _key()
    data = os.urandom(2 * MB + 3)
    put_sliced(fs, key, {"0000_part_00.gz": data})
    o1, o2 = 700_001, 300_007
    http_cuts.arm(_object(fs, key + "0000_part_00.gz"), o1, o2, 0, 0)
    progress = Deltas()
    adapter = SMALL_ADAPTERS[fs.provider]()
    with TransferManager(max_workers=1, adapters={fs.provider: adapter}, slice_attempts=3, retry_wait=0.01) as tm:
        (path,) = tm.download(stored_file(fs, key, sliced=True), tmp_path / "out", progress)

    assert path.read_bytes() == data
    resumed_at = f"bytes={o1 + o2}-"
    assert http_cuts.ranges == [None, f"bytes={o1}-", resumed_at, resumed_at, None]
    assert [get.cut_at for get in http_cuts.gets] == [o1, o1 + o2, o1 + o2, o1 + o2, None]
    assert progress.total == len(data) and -(o1 + o2) in progress.deltas  # the restart took its bytes back
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["part_00000.gz"]


@pytest.mark.parametrize("fs", ALL_PROVIDERS, indirect=True)
def test_slice_changed_between_cut_and_resume_fails_clearly(fs, manager, http_cuts, tmp_path):
    """The object is overwritten between the cut and the resumed GET: S3 and Azurite answer 412 to the If-Match,
    GCS to the ifGenerationMatch; nothing is spliced."""
    key = _key()
    name = "0000_part_00.gz"
    data, newer = os.urandom(2 * MB + 5), os.urandom(2 * MB + 999)
    put_sliced(fs, key, {name: data})
    offset = random.Random(f"{fs.provider} changed").randrange(1, len(data))
    http_cuts.arm(_object(fs, key + name), offset, on_cut=lambda: fs.put_bytes(key + name, newer))

    with pytest.raises(TransferError) as caught:
        manager.download(stored_file(fs, key, sliced=True), tmp_path / "out")

    message = str(caught.value)
    assert "changed in the file storage while it was being read" in message
    assert f"cut at byte {offset:,} of {len(data):,}" in message and fs.entry_url(key + name) in message
    first, resumed = http_cuts.gets  # not retried from byte 0 either: a changed slice is a verdict
    assert resumed.range == f"bytes={offset}-" and _pinned(fs, resumed, first)
    assert resumed.status == 412
    assert list((tmp_path / "out").iterdir()) == []  # neither the slice nor its .part


@pytest.mark.parametrize("fs", ALL_PROVIDERS, indirect=True)
def test_cut_copy_source_resumes_while_the_upload_keeps_streaming(fs, manager, http_cuts, tmp_path):
    source_key = _key()
    data = os.urandom(3 * MB + 11)
    put_sliced(fs, source_key, {"0000_part_00.gz": data})
    source = stored_file(fs, source_key, sliced=True)

    http_cuts.arm(_object(fs, source_key + "0000_part_00.gz"))  # a clean copy: how many upload requests
    manager.copy(source, prepared_file(fs, _key(), sliced=True))
    clean_writes = http_cuts.writes

    target_key = _key()
    offset = random.Random(f"{fs.provider} copy").randrange(1, len(data))
    http_cuts.arm(_object(fs, source_key + "0000_part_00.gz"), offset)
    progress = Deltas()
    manager.copy(source, prepared_file(fs, target_key, sliced=True), progress)

    assert fetched(fs, target_key + "part_00000.gz", tmp_path) == data
    assert http_cuts.ranges == [None, f"bytes={offset}-"] and http_cuts.gets[0].cut_at == offset
    assert http_cuts.writes == clean_writes  # the destination upload went on: no request re-sent
    assert progress.total == len(data) and min(progress.deltas) > 0


def test_gcs_crc32c_catches_a_corrupted_read_and_the_slice_is_read_again(gcs, http_cuts, tmp_path):
    key = _key()
    data = os.urandom(2 * MB + 1)
    put_sliced(gcs, key, {"0000_part_00.gz": data})
    http_cuts.arm(_object(gcs, key + "0000_part_00.gz"), flip=1_234_567)
    progress = Deltas()
    with TransferManager(max_workers=1, adapters={"gcp": GcsAdapter()}, retry_wait=0.01) as tm:
        (path,) = tm.download(stored_file(gcs, key, sliced=True), tmp_path / "out", progress)
    assert path.read_bytes() == data
    assert http_cuts.ranges == [None, None]  # the corrupted read was detected at its end and restarted
    assert progress.total == len(data) and min(progress.deltas) < 0  # what the bad read had reported was taken back


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
