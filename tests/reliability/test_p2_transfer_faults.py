"""Part 2: transfer faults. A slice download or an upload part cut mid-stream is retried, resuming where the provider
allows, and the result is byte-identical.

Where the fault is injected (real enough, and why): file storage is a separate server (moto S3, Azurite, the GCS
emulator), so the cut is made in the client's own HTTP connection, in process, with the component's real transfer
code (``storage_api.transfer``) and the provider SDKs underneath:
- download, and the source read of a copy (all three providers): the urllib3 response under the SDK's GET delivers
  part of a slice, then closes the connection and raises urllib3's ProtocolError ("connection broken"), exactly
  what a server dying mid-body produces. urllib3 is the HTTP layer of botocore, azure-core and google-auth alike,
  so one injection (``HttpCuts`` of the transfer unit tests) serves the three;
- upload (S3): ``AWSConnection.send`` (the socket write of botocore's HTTP connection) sends part of an UploadPart
  body, then shuts the socket down and raises ConnectionResetError, so the S3 server really receives a truncated
  request on a dead connection; botocore sees a broken connection as it would on a network cut.
What resumes (asserted): a cut read reopens the slice with a ranged GET starting exactly at the cut byte, pinned to
the version it started with (If-Match / ifGenerationMatch), and no byte is fetched twice; a copy whose source read
is cut resumes that read while the destination upload keeps streaming; a multipart upload sends only the cut part
again. A copy whose destination request is cut (S3) restarts the slice: its source is read again from byte 0.
"""

from __future__ import annotations

import hashlib
import random
import socket
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSConnection

from emulator import Emulator
from emulator.filestorage.azure import azurite_binary
from storage_api import StorageClient
from storage_api.transfer import TransferManager
from storage_api.transfer import s3 as s3mod
from tests.integration.transfer_support import install_http_cuts
from tests.reliability.conftest import CAMPAIGN, new_project, variants

MB = 2**20
PROVIDERS = [
    "aws",
    pytest.param("azure", marks=pytest.mark.skipif(azurite_binary() is None, reason="Azurite is not installed")),
    "gcp",
]


class UploadCuts:
    """Cuts the ``upload_part_to_cut``-th UploadPart (a single PutObject counts as part 1) mid-body once; counts
    the parts sent (``parts_sent``) and the requests really cut (``cut``)."""

    def __init__(self, offset: int):
        self.offset = offset
        self.local = threading.local()
        self.lock = threading.Lock()
        self.upload_part_to_cut: int | None = None
        self.done = 0  # armed requests
        self.cut = 0
        self.parts_sent: Counter = Counter()

    def before_send(self, request, **kwargs):
        url = urlsplit(request.url)
        if url.path.endswith("manifest"):
            self.local.cut_after = None
            return
        part = int(parse_qs(url.query).get("partNumber", ["1"])[0])
        with self.lock:
            self.parts_sent[part] += 1
            cut = part == self.upload_part_to_cut and not self.done
            if cut:
                self.done += 1
        self.local.cut_after = self.offset if cut else None
        self.local.sent = 0

    def send(self, conn, original, data):
        limit = getattr(self.local, "cut_after", None)
        if limit is None:
            return original(conn, data)
        if hasattr(data, "read"):
            while block := data.read(64 * 1024):
                self.send(conn, original, block)
            return None
        if self.local.sent + len(data) <= limit:
            self.local.sent += len(data)
            return original(conn, data)
        original(conn, data[: max(0, limit - self.local.sent)])
        self.local.cut_after = None
        with self.lock:
            self.cut += 1
        conn.sock.shutdown(socket.SHUT_RDWR)
        raise ConnectionResetError("injected: connection cut in the middle of the request body")


@pytest.fixture(scope="module")
def other_stacks(tmp_path_factory):
    """Azure and GCP stacks of this module, started on first use (the AWS one is the session's ``emu``)."""
    started: dict[str, Emulator] = {}
    yield started
    for emulator in started.values():
        emulator.stop()


@pytest.fixture(params=PROVIDERS)
def stack(request, other_stacks, tmp_path_factory, monkeypatch) -> Emulator:
    provider = request.param
    if provider == "aws":
        emulator = request.getfixturevalue("emu")
    else:
        if provider not in other_stacks:
            workdir = tmp_path_factory.mktemp(f"reliability-{provider}")
            other_stacks[provider] = Emulator(provider=provider, seed=20240601, workdir=workdir).start()
        emulator = other_stacks[provider]
    for key, value in emulator.env.items():
        monkeypatch.setenv(key, value)
    return emulator


@pytest.fixture
def http_cuts(monkeypatch):
    return install_http_cuts(monkeypatch)


@pytest.fixture
def upload_cuts(monkeypatch):
    cuts = UploadCuts(MB)
    session = boto3.session.Session()
    session.events.register("before-send.s3.UploadPart", cuts.before_send)
    session.events.register("before-send.s3.PutObject", cuts.before_send)
    monkeypatch.setattr(s3mod, "_session", session)
    original = AWSConnection.send
    monkeypatch.setattr(AWSConnection, "send", lambda conn, data: cuts.send(conn, original, data))
    return cuts


def _client(emu, project) -> StorageClient:
    client = StorageClient(emu.url, project.token)
    small_parts = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB, max_concurrency=2)
    client.transfer.close()
    adapters = {"aws": s3mod.S3Adapter(file_config=small_parts, stream_config=s3mod.stream_upload_config(5 * MB, 2))}
    client.transfer = TransferManager(2, adapters=adapters, retry_wait=0.2, refresh_credentials=client.files.refresh)
    return client


def _sha(path_or_bytes) -> str:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return hashlib.sha256(data).hexdigest()


def _big_table(emu, seed):
    project = new_project(emu, "xfer")
    emu.create_bucket(project.id, "xfer")
    rng = random.Random(seed)
    lines = "".join(f"{i},{rng.getrandbits(480):0120x}\n" for i in range(90_000))  # ~11 MB, ~6 MB gzipped
    emu.create_table(project.id, "in.c-xfer.big", "id,blob\n" + lines)
    return project


def _slices_of(file: dict):
    """``HttpCuts`` match: the GETs of the file's slices (not its manifest), whatever URL shape the SDK uses."""
    prefix = (file.get("s3Path") or file.get("gcsPath") or {}).get("key") or file["absPath"]["name"]
    return lambda path: prefix in path and not path.endswith("manifest")


def _resumed(cuts) -> tuple:
    """(the cut GET, the GETs of the same slice after it); asserts that exactly one GET was cut."""
    (cut,) = [get for get in cuts.gets if get.cut_at is not None]
    after = [get for get in cuts.gets[cuts.gets.index(cut) + 1 :] if get.path == cut.path]
    return cut, after


def _assert_resumed_at_the_cut(cut, resumed, size: int | None = None) -> None:
    assert resumed.range == f"bytes={cut.cut_at}-", (cut, resumed)  # from the cut byte, not from 0
    assert resumed.condition is not None and resumed.condition.strip('"') == cut.version.strip('"')  # pinned
    assert resumed.start == cut.cut_at and resumed.version == cut.version
    if size is not None:
        assert resumed.length == size - cut.cut_at  # nothing fetched twice


@pytest.mark.parametrize("runs", variants(1, 5))
def test_cut_downloads_and_copies_resume_and_are_byte_identical(stack, http_cuts, upload_cuts, tmp_path, runs):
    provider = stack.provider
    for seed in range(runs):
        offset = random.Random(seed).randrange(MB // 2, 4 * MB)
        project = _big_table(stack, seed)
        client = _client(stack, project)
        try:
            export = client.tables.export("in.c-xfer.big", gzip=True)
            file = client.files.detail(export.file_id)
            clean = client.transfer.download(file, tmp_path / f"clean-{seed}")
            sizes = {p.stat().st_size for p in clean}

            # download: the first slice GET longer than the offset is cut mid-body, then resumed at the cut byte
            http_cuts.arm(_slices_of(file), offset)
            cut_paths = client.transfer.download(file, tmp_path / f"cut-{seed}")
            cut, after = _resumed(http_cuts)
            assert cut.cut_at == offset and len(after) == 1, http_cuts.gets
            _assert_resumed_at_the_cut(cut, after[0])
            assert cut.length in sizes and after[0].length == cut.length - offset
            assert [_sha(p) for p in cut_paths] == [_sha(p) for p in clean]
            assert not list((tmp_path / f"cut-{seed}").glob("*.part"))

            # copy (sync's path): the source read is cut mid-stream and resumed while the destination upload goes
            # on; on S3 the destination request (part 1, or the single streamed PUT) is cut too, which restarts the
            # slice: its source is read again from byte 0
            http_cuts.arm(_slices_of(file), offset)
            upload_cuts.done, upload_cuts.cut, upload_cuts.offset = 0, 0, offset
            upload_cuts.upload_part_to_cut = 1 if provider == "aws" else None
            target = client.files.prepare("copy.csv.gz", sliced=True)
            client.transfer.copy(file, target)
            upload_cuts.upload_part_to_cut = None
            cut, after = _resumed(http_cuts)
            assert cut.cut_at == offset, http_cuts.gets
            _assert_resumed_at_the_cut(cut, after[0], cut.length)
            if provider == "aws":
                assert upload_cuts.cut == 1 and [get.range for get in after] == [f"bytes={offset}-", None]
            else:
                assert len(after) == 1
            http_cuts.disarm()
            copied = client.files.detail(target["id"])
            copy_dir = client.transfer.download(copied, tmp_path / f"copied-{seed}")
            assert [_sha(p) for p in copy_dir] == [_sha(p) for p in clean]
        finally:
            http_cuts.disarm()
            client.close()
    figures = {f"{provider}_runs": runs, f"{provider}_cut_downloads_resumed": runs}
    figures[f"{provider}_cut_copy_reads_resumed"] = runs
    if provider == "aws":
        figures["aws_cut_copy_uploads_restarted"] = runs
    CAMPAIGN.add("2 transfer faults", **figures)


@pytest.mark.parametrize("runs", variants(1, 5))
def test_cut_upload_part_is_sent_again_alone(emu, upload_cuts, tmp_path, monkeypatch, runs):
    """S3 multipart: a 12 MB file in three 5 MB parts, part 2 cut mid-body; only part 2 is sent again."""
    for key, value in emu.env.items():
        monkeypatch.setenv(key, value)
    project = new_project(emu, "xfer-up")
    client = _client(emu, project)
    try:
        for seed in range(runs):
            upload_cuts.offset = random.Random(seed).randrange(MB // 2, 4 * MB)
            local = tmp_path / f"upload-{seed}.bin"
            local.write_bytes(random.Random(seed).randbytes(12 * MB))
            prepared = client.files.prepare("upload.bin", size_bytes=local.stat().st_size)
            upload_cuts.done = upload_cuts.cut = 0
            upload_cuts.parts_sent.clear()
            upload_cuts.upload_part_to_cut = 2
            client.transfer.upload(prepared, local)
            upload_cuts.upload_part_to_cut = None
            assert upload_cuts.cut == 1
            assert upload_cuts.parts_sent == Counter({1: 1, 2: 2, 3: 1}), upload_cuts.parts_sent
            assert _sha(emu.storage.read_bytes(prepared["uploadParams"]["key"])) == _sha(local)
    finally:
        client.close()
    CAMPAIGN.add("2 transfer faults", aws_upload_runs=runs, aws_cut_upload_parts_resent_alone=runs)
