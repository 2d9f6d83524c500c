"""TransferManager + Azure / GCS adapters against the emulator's file storages (Azurite, gcp-storage-emulator).

The files are shaped like the Storage API answers (``detail_block`` / ``prepare_block`` of the emulator storage):
the Azure adapter reaches Azurite through the SAS connection string alone, the GCS adapter through
``STORAGE_EMULATOR_HOST`` and the bearer token. The GCS emulator checks tokens (expiry, read/write, key prefix),
so the credential-refresh tests run against real rejections.

The resumption tests (cut reads) run on all three providers, S3 (moto) included: ``HttpCuts``
(transfer_support.py) cuts a GET mid-body in urllib3, the HTTP layer botocore, azure-core and google-auth's
requests share, and records every GET of the object (Range, version condition, the version answered).
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import os
import random
from pathlib import Path

import pytest

from storage_api import TransferError
from storage_api.transfer import MB, TransferManager
from storage_api.transfer.azure import AzureAdapter
from storage_api.transfer.gcs import GcsAdapter
from storage_api.transfer.s3 import S3Adapter
from tests.integration.transfer_support import ALL_PROVIDERS, Deltas, Get, Totals

_ids = itertools.count(5000)

# small blocks / chunks so block uploads, resumable chunks and ranged reads all run on small test data
SMALL_ADAPTERS = {
    "aws": lambda: S3Adapter(),
    "azure": lambda: AzureAdapter(block_size=1 * MB, max_concurrency=2),
    "gcp": lambda: GcsAdapter(chunk_size=1 * MB),
}


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


# GCS credential refresh -----------------------------------------------------------------------------------------
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
