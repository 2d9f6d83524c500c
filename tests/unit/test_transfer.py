"""The transfer layer without a server: ResumingReader on made-up answers, and what the adapters share in
``transfer/base.py`` (slice list and manifest, transient-error walk, object size). The adapters against real
file storages: tests/integration/test_transfer_s3.py and test_transfer_providers.py."""

from __future__ import annotations

import io
import json
import os

import pytest

from storage_api import TransferError
from storage_api.transfer import (
    FileReader,
    PreparedFileWriter,
    RangeStream,
    ResumingReader,
    Slice,
    StorageErrors,
    StoredFileReader,
    TransferManager,
)
from storage_api.transfer.base import SliceCut, object_size


# resuming reader: what no real server produces (resumed cuts on real servers: tests/integration) ---------------
class BytesReader(FileReader):
    """A reader over bytes; ``answers`` shape its GETs: (bytes delivered before the body ends cleanly or None,
    the size announced or None for the real one); ``versions`` the version each GET answers (then "v1")."""

    def __init__(self, data: bytes, *answers, versions=()):
        self.data, self.answers, self.opened, self.versions = data, list(answers), [], list(versions)

    def slices(self) -> list[Slice]:
        return [Slice("mem://slice")]

    def open_range(self, part, offset, version):
        self.opened.append((offset, version))
        delivered, announced = self.answers.pop(0) if self.answers else (None, None)
        end = None if delivered is None else offset + delivered
        answered = self.versions.pop(0) if self.versions else "v1"
        return RangeStream(io.BytesIO(self.data[offset:end]), announced or len(self.data), answered)


def test_a_body_ending_early_without_an_error_is_resumed():
    data = os.urandom(5000)
    reader = BytesReader(data, (1000, None), (1500, None))
    assert ResumingReader(reader, Slice("mem://slice"), wait=0).read() == data
    assert reader.opened == [(0, None), (1000, "v1"), (2500, "v1")]


def test_a_body_longer_than_announced_fails_clearly():
    reader = BytesReader(b"x" * 100, (None, 90))
    with pytest.raises(TransferError, match="longer than the 90 bytes its GET announced"):
        ResumingReader(reader, Slice("mem://slice"), label="Slice 1 of 1", wait=0).read()


def test_resuming_gives_up_after_attempts_without_a_byte():
    reader = BytesReader(b"y" * 100, (10, None), (0, None), (0, None), (0, None))
    stream = ResumingReader(reader, Slice("mem://slice"), attempts=3, wait=0)
    assert stream.read(50) == b"y" * 10  # what came before the failure, then the failure
    with pytest.raises(SliceCut, match="ended at byte 10 of 100"):
        stream.read(50)
    assert reader.opened == [(0, None), (10, "v1"), (10, "v1")]


@pytest.mark.parametrize(
    "answers, versions, detail",
    [
        (((10, None), (None, None)), ("v1", "v2"), "version v2; it was 100 bytes, v1"),  # a server ignoring If-Match
        (((10, None), (None, 120)), ("v1", "v1"), "now 120 bytes"),
    ],
)
def test_a_resumed_answer_of_another_version_or_size_is_never_spliced(answers, versions, detail):
    """What the adapters no longer check themselves: every resumed answer is compared with the first one."""
    reader = BytesReader(b"z" * 100, *answers, versions=versions)
    stream = ResumingReader(reader, Slice("mem://slice"), label="Slice 1 of 1", wait=0)
    assert stream.read(50) == b"z" * 10
    with pytest.raises(TransferError, match="changed in the file storage while it was being read") as caught:
        stream.read(50)
    assert "cut at byte 10 of 100" in str(caught.value) and detail in str(caught.value)


# what the adapters share ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "offset, length, content_range, stored, size",
    [
        (0, 93, None, None, 93),
        (0, None, None, None, 0),
        (0, "93", None, "100", 93),  # a full GET: its Content-Length
        (0, None, None, "100", 100),  # GCS without Content-Length (chunked): the stored length
        (7, "93", "bytes 7-99/100", None, 100),  # a ranged GET: the Content-Range total
        (7, "93", "bytes 7-99/*", "100", 100),
        (7, "93", None, None, 100),
        (7, None, "", None, 7),
    ],
)
def test_object_size_of_a_full_or_ranged_answer(offset, length, content_range, stored, size):
    assert object_size(offset, length, content_range, stored) == size


class Refused(Exception):
    pass


class Answer(Exception):
    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


class ExampleErrors(StorageErrors):
    transient_errors = (ConnectionError, TimeoutError)
    permanent_errors = (Refused,)

    def transient_answer(self, exc):
        return exc.status >= 500 if isinstance(exc, Answer) else None


def _wrapped(inner: BaseException, *, cause: bool = True) -> Exception:
    outer = RuntimeError("wrapped by an SDK")
    if cause:
        outer.__cause__ = inner
    else:
        outer.__context__ = inner
    return outer


def test_transient_errors_are_looked_for_along_the_causes():
    errors = ExampleErrors()
    assert errors.is_transient(ConnectionResetError()) and errors.is_transient(Answer(503))
    assert not errors.is_transient(Answer(403)) and not errors.is_transient(ValueError())
    assert errors.is_transient(_wrapped(TimeoutError())) and errors.is_transient(_wrapped(Answer(500), cause=False))
    assert not errors.is_transient(None)
    looped = RuntimeError("a")
    looped.__context__ = _wrapped(looped)
    assert not errors.is_transient(looped)  # a cycle of contexts ends the walk


def test_the_first_exception_of_the_chain_that_decides_wins_permanent_errors_first():
    errors = ExampleErrors()
    refused = Refused()
    refused.__cause__ = ConnectionError()
    assert not errors.is_transient(refused)  # a permanent error is not retried, whatever it wraps
    answer = Answer(404)
    answer.__cause__ = ConnectionError()
    assert not errors.is_transient(answer)  # the answer decides before its cause
    assert errors.is_transient(_wrapped(_wrapped(ConnectionError())))


class Manifested(StoredFileReader):
    """A reader of made-up objects: ``manifest`` is what reading key + "manifest" gives (an exception: raised)."""

    storage_name = "Made-up"
    manifest_errors = (Refused,)

    def __init__(self, file: dict, manifest):
        super().__init__(file, readable="path" in file)
        self.path, self._manifest = file.get("path"), manifest

    @staticmethod
    def parse_url(url: str) -> tuple[str, str]:
        if not url.startswith("made://"):
            raise TransferError(f"Unexpected manifest entry {url!r}")
        return tuple(url[7:].split("/", 1))

    def file_url(self) -> str:
        return f"made://{self.path}"

    def read_manifest(self) -> bytes:
        if isinstance(self._manifest, BaseException):
            raise self._manifest
        return self._manifest

    def open_range(self, part, offset, version):  # pragma: no cover - not read here
        raise NotImplementedError


def test_stored_file_reader_lists_a_whole_file_or_the_manifest_entries_in_order():
    whole = Manifested({"id": 1, "path": "b/k.csv", "sizeBytes": 12}, b"")
    assert whole.slices() == [Slice("made://b/k.csv", 12)] and whole.file_id == 1
    manifest = json.dumps({"entries": [{"url": "made://b/k2"}, {"url": "made://b/k1"}]}).encode()
    assert [part.url for part in Manifested({"path": "b/k", "isSliced": True}, manifest).slices()] == [
        "made://b/k2",
        "made://b/k1",
    ]
    assert Manifested({"path": "b/k", "isSliced": True}, b'{"entries": []}').slices() == []
    foreign = json.dumps({"entries": [{"url": "s3://b/k"}]}).encode()
    with pytest.raises(TransferError, match="Unexpected manifest entry"):
        Manifested({"path": "b/k", "isSliced": True}, foreign).slices()


def test_a_refused_manifest_read_without_a_presigned_url_is_raised():
    with pytest.raises(Refused):
        Manifested({"path": "b/k", "isSliced": True}, Refused()).slices()
    with pytest.raises(ValueError):  # not one of manifest_errors: no fallback even with a url
        Manifested({"path": "b/k", "isSliced": True, "url": "http://127.0.0.1:9/m"}, ValueError()).slices()


def test_missing_credentials_name_the_storage_and_the_federation_token():
    with pytest.raises(
        TransferError, match=r"gave no Made-up credentials \(files/\{id\}\?federationToken=1\) for file 7"
    ):
        Manifested({"id": 7}, b"")


class Collecting(PreparedFileWriter):
    storage_name = "Made-up"

    def __init__(self, prepared: dict):
        super().__init__(prepared, writable="key" in prepared)
        self.key, self.manifests = prepared.get("key"), []

    def slice_url(self, name: str) -> str:
        return f"made://b/{self.key}{name}"

    def put_manifest(self, body: bytes) -> None:
        self.manifests.append(json.loads(body))

    def upload(self, path, name, progress):  # pragma: no cover - not uploaded here
        raise NotImplementedError

    def upload_stream(self, stream, name, progress, size=None):  # pragma: no cover
        raise NotImplementedError


def test_prepared_file_writer_writes_the_manifest_of_the_slices_in_order():
    writer = Collecting({"id": 3, "key": "exp/1.", "isSliced": True})
    writer.write_manifest(["b.gz", "a.gz"])
    assert writer.sliced and writer.file_id == 3
    assert writer.manifests == [
        {
            "entries": [
                {"url": "made://b/exp/1.b.gz", "mandatory": True},
                {"url": "made://b/exp/1.a.gz", "mandatory": True},
            ]
        }
    ]
    with pytest.raises(
        TransferError, match=r"gave no Made-up upload parameters \(files/prepare with federationToken\) for file 4"
    ):
        Collecting({"id": 4})


# manager --------------------------------------------------------------------------------------------------------
def test_unknown_provider_is_a_clear_error(tmp_path):
    provider = "oracle"
    file = {"id": 5, "provider": provider, "isSliced": True}
    with TransferManager(max_workers=1) as manager, pytest.raises(TransferError) as caught:
        manager.download(file, tmp_path)
    assert "not supported" in str(caught.value) and provider in str(caught.value)
    assert caught.value.is_user_error
