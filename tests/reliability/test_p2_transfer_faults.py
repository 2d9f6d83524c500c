"""Part 2: transfer faults. A slice download or an upload part cut mid-stream is retried and the result is
byte-identical.

Where the fault is injected (real enough, and why): file storage is a separate server (moto S3), so the cut is
made in the client's own HTTP connection, in process, with the component's real transfer code
(``storage_api.transfer``) and boto3 / s3transfer underneath:
- upload: ``AWSConnection.send`` (the socket write of botocore's HTTP connection) sends part of an UploadPart
  body, then shuts the socket down and raises ConnectionResetError, so the S3 server really receives a truncated
  request on a dead connection; botocore sees a broken connection as it would on a network cut;
- download: the urllib3 response under a GetObject body delivers part of the object, then closes the connection
  and raises urllib3's ProtocolError ("connection broken"), exactly what a server dying mid-body produces.
Multipart uploads resume: only the cut part is sent again (asserted). A cut slice download is restarted from its
first byte (one streamed GET per slice; s3transfer rewrites from offset 0), and a cut copy restarts the slice.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import urllib3
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSConnection

from storage_api import StorageClient
from storage_api.transfer import TransferManager
from storage_api.transfer import s3 as s3mod
from tests.reliability.conftest import CAMPAIGN, new_project, variants

MB = 2**20


class Cuts:
    """Cuts the ``target``-th UploadPart / GetObject of a slice mid-stream once; counts what was sent."""

    def __init__(self, offset: int):
        self.offset = offset
        self.local = threading.local()
        self.lock = threading.Lock()
        self.upload_part_to_cut: int | None = None
        self.cut_get = False
        self.done = Counter()
        self.parts_sent: Counter = Counter()

    # upload ---------------------------------------------------------------------------------------------------
    def before_send(self, request, **kwargs):
        url = urlsplit(request.url)
        if url.path.endswith("manifest"):
            self.local.cut_after = None
            return
        part = int(parse_qs(url.query).get("partNumber", ["1"])[0])  # a single PutObject counts as part 1
        with self.lock:
            self.parts_sent[part] += 1
            cut = part == self.upload_part_to_cut and not self.done["upload"]
            if cut:
                self.done["upload"] += 1
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
        conn.sock.shutdown(socket.SHUT_RDWR)
        raise ConnectionResetError("injected: connection cut in the middle of the request body")

    # download -------------------------------------------------------------------------------------------------
    def after_get(self, http_response, parsed, **kwargs):
        if http_response.url.split("?")[0].endswith("manifest") or "Body" not in parsed:
            return
        with self.lock:
            if not self.cut_get or self.done["download"]:
                return
            self.done["download"] += 1
        body = parsed["Body"]
        body._raw_stream = _CutStream(body._raw_stream, self.offset)


class _CutStream:
    def __init__(self, raw, limit):
        self._raw, self._left = raw, limit

    def read(self, amt=None, **kwargs):
        if self._left <= 0:
            self._raw.close()  # the connection dies
            raise urllib3.exceptions.ProtocolError("Connection broken: injected cut in the middle of the body")
        data = self._raw.read(min(amt or self._left, self._left), **kwargs)
        self._left -= len(data)
        return data

    def __getattr__(self, name):
        return getattr(self._raw, name)


@pytest.fixture
def cuts(monkeypatch, emu):
    for key, value in emu.env.items():
        monkeypatch.setenv(key, value)
    offset = random.Random(os.environ.get("PYTEST_CURRENT_TEST")).randrange(MB // 2, 4 * MB)
    cuts = Cuts(offset)
    session = boto3.session.Session()
    session.events.register("before-send.s3.UploadPart", cuts.before_send)
    session.events.register("before-send.s3.PutObject", cuts.before_send)
    session.events.register("after-call.s3.GetObject", cuts.after_get)
    monkeypatch.setattr(s3mod, "_session", session)
    original = AWSConnection.send
    monkeypatch.setattr(AWSConnection, "send", lambda conn, data: cuts.send(conn, original, data))
    return cuts


def _client(emu, project) -> StorageClient:
    client = StorageClient(emu.url, project.token)
    small_parts = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB, max_concurrency=2)
    client.transfer.close()
    client.transfer = TransferManager(
        2,
        adapters={"aws": s3mod.S3Adapter(file_config=small_parts, stream_config=s3mod.stream_upload_config(5 * MB, 2))},
        retry_wait=0.2,
    )
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


@pytest.mark.parametrize("runs", variants(1, 5))
def test_cut_transfers_are_retried_and_byte_identical(emu, cuts, tmp_path, runs):
    for seed in range(runs):
        cuts.done.clear()
        cuts.offset = random.Random(seed).randrange(MB // 2, 4 * MB)
        project = _big_table(emu, seed)
        client = _client(emu, project)
        try:
            export = client.tables.export("in.c-xfer.big", gzip=True)
            file = client.files.detail(export.file_id)

            # download: the first slice GET is cut mid-body
            clean = client.transfer.download(file, tmp_path / f"clean-{seed}")
            cuts.cut_get = True
            cut = client.transfer.download(file, tmp_path / f"cut-{seed}")
            cuts.cut_get = False
            assert cuts.done["download"] == 1
            assert [_sha(p) for p in cut] == [_sha(p) for p in clean]

            # upload: a 12 MB file in three 5 MB parts, part 2 cut mid-body; only part 2 is sent again
            local = tmp_path / f"upload-{seed}.bin"
            local.write_bytes(random.Random(seed).randbytes(12 * MB))
            prepared = client.files.prepare("upload.bin", size_bytes=local.stat().st_size)
            cuts.parts_sent.clear()
            cuts.upload_part_to_cut = 2
            client.transfer.upload(prepared, local)
            assert cuts.done["upload"] == 1
            assert cuts.parts_sent == Counter({1: 1, 2: 2, 3: 1}), cuts.parts_sent
            key = prepared["uploadParams"]["key"]
            assert _sha(emu.storage.read_bytes(key)) == _sha(local)

            # copy (sync's path): source slice read cut mid-stream, and the destination upload (part 1, or the
            # single streamed PUT) cut mid-body
            cuts.done.clear()
            cuts.cut_get = True
            cuts.upload_part_to_cut = 1
            target = client.files.prepare("copy.csv.gz", sliced=True)
            client.transfer.copy(file, target)
            cuts.cut_get = False
            assert cuts.done["download"] == 1 and cuts.done["upload"] == 1
            copied = client.files.detail(target["id"])
            copy_dir = client.transfer.download(copied, tmp_path / f"copied-{seed}")
            assert [_sha(p) for p in copy_dir] == [_sha(p) for p in clean]
        finally:
            client.close()
    CAMPAIGN.add("2 transfer faults", runs=runs, cut_downloads=2 * runs, cut_upload_parts=2 * runs)
