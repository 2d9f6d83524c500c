"""The provider-neutral interface of file transfers, and what the three provider adapters share.

- ``FileReader`` reads a stored file (GET files/{id}?federationToken=1): its slices in manifest order. An adapter
  only opens a streamed GET of one object from a byte offset, pinned to one version of it (``open_range``);
  ``ResumingReader`` turns that into a file-like stream of the slice that resumes where a connection was cut;
- ``FileWriter`` writes a prepared file (POST files/prepare): a local file, a stream, slices and the manifest;
- ``StorageAdapter`` builds both for one provider; ``manager.TransferManager`` runs them.

What every adapter would otherwise repeat lives here: ``StoredFileReader`` (the file detail's fields, the slice
list, the manifest read with the file's credentials or else through its presigned url), ``PreparedFileWriter``
(the manifest written last), ``StorageErrors`` (the walk along an exception's causes deciding whether a failure is
transient, over error types each provider declares as data) and ``object_size`` (Content-Length / Content-Range).
An adapter module keeps only its SDK calls.

What resumes after a connection is cut mid-body (a slice is retried from its first byte only when resuming fails):
- downloads and the source side of copies, on all three providers: ``ResumingReader`` reopens the slice with a
  ranged GET from the first byte it has not received, conditional on the version it started with (S3 If-Match on
  the ETag, Azure If-Match on the ETag, GCS ifGenerationMatch), so a resumed read never splices two versions of an
  object: a slice that changed fails clearly instead (a 412 to the condition, or an answer of another version or
  size, which ``ResumingReader`` checks for every adapter). Bytes and progress are counted once; a download is
  written to ``<name>.part`` and renamed when complete, so no partial file is left behind;
- uploads of local files: multipart / block / resumable-chunk uploads re-send only the part that was cut (the
  provider SDK retries the request of that part, block or chunk); a streamed upload (a copy's destination) whose
  request is cut restarts the slice, its source read included.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, NamedTuple, Self

import requests
import urllib3

from ..errors import TransferError

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]  # receives byte deltas (negative when a failed slice is restarted)

MB = 2**20
DOWNLOAD_CHUNK = 1 * MB  # a download copies the slice stream to disk in pieces of this size
MANIFEST_TIMEOUT = (30, 300)  # (connect, read) seconds of the manifest GET through the presigned url
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CHANGED_STATUS = (412, 416)  # answers to a GET conditional on a version the object no longer has
_KEPT_SUFFIXES = (".csv.gz", ".gz", ".csv", ".parquet", ".zst", ".json")
_CONTENT_RANGE_TOTAL = re.compile(r"/\s*(\d+)\s*$")

# Network trouble as the HTTP layer under every SDK (urllib3, requests, http.client) raises it, wrapped or not.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    requests.ConnectionError,
    requests.Timeout,
    urllib3.exceptions.ProtocolError,  # a connection broken mid-body
    http.client.IncompleteRead,
)


@dataclass(frozen=True)
class Slice:
    """One stored object of a file: the whole file, or one entry of a sliced file's manifest."""

    url: str  # provider url as in manifests, e.g. s3://bucket/key (never a presigned https url)
    size: int | None = None

    def local_name(self, index: int) -> str:
        """``part_00000`` plus the original suffix (.gz, .csv ...), so sorting names keeps manifest order."""
        lowered = self.url.lower()
        suffix = next((s for s in _KEPT_SUFFIXES if lowered.endswith(s)), "")
        return f"part_{index:05d}{suffix}"


class SliceChanged(Exception):
    """Raised by ``FileReader.open_range``: the object is no longer the version a read started with (HTTP 412 or
    416 to the version condition). ``ResumingReader`` also checks the version and size of every answer."""


class SliceCut(ConnectionError):
    """A slice's response ended before the object's last byte without a connection error; resumed like a cut
    (a ConnectionError, so every adapter's ``is_transient`` retries it)."""


class RangeStream(NamedTuple):
    """What ``FileReader.open_range`` returns: a streamed GET of one object from an offset to its end."""

    stream: Any  # read(n) -> at most n bytes, b"" at the end; close()
    size: int  # the size of the whole object in bytes (Content-Length of a full GET, Content-Range total)
    version: str | None  # what a resumed read is pinned to: S3 / Azure ETag, GCS generation; None: not pinned
    checksum: Any = None  # optional whole-object check of a GET from byte 0: update(bytes), verify() raises


def object_size(offset: int, length: Any, content_range: str | None, stored: Any = None) -> int:
    """The size of the whole object from the answer to a GET from ``offset``: the total of the Content-Range of a
    ranged GET, else the stored length (GCS ``X-Goog-Stored-Content-Length``), else what the Content-Length
    (``length``) implies."""
    if offset:
        total = _CONTENT_RANGE_TOTAL.search(content_range or "")
        if total:
            return int(total.group(1))
        return int(stored) if stored else offset + int(length or 0)
    if length is None:
        return int(stored or 0)
    return int(length or 0)


class StorageErrors:
    """Which failures of a provider are worth another attempt, declared as data by each adapter (a class of
    its module that its reader and writer both derive from) and looked for along the exception's causes
    (``__cause__``, else ``__context__``: SDKs and s3transfer wrap what the network raised).

    On each exception of the chain, in this order: one of ``permanent_errors`` is not transient, one of
    ``transient_errors`` is, and ``transient_answer`` decides a provider's error answer by its HTTP status or
    error code; an exception none of them decides passes the question to its cause.
    """

    storage_name: ClassVar[str] = "file storage"  # "S3", "Azure", "GCS": named in messages
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (ConnectionError, TimeoutError)
    permanent_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def transient_answer(self, exc: BaseException) -> bool | None:
        """Whether an error answer of the provider (HTTP status, error code) is transient; None: not one."""
        return None

    def missing(self, file: dict, what: str) -> TransferError:
        """The error for a file detail / files/prepare answer without what the provider's adapter needs: the client
        always asks for them, so the answer is the stack's to explain."""
        return TransferError(
            f"The Storage API gave no {self.storage_name} {what} for file {file.get('id')}; run the job again, and if "
            "it fails the same way, report it to Keboola support with the job's id."
        )

    def is_transient(self, exc: BaseException | None) -> bool:
        seen = set()
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            if isinstance(exc, self.permanent_errors):
                return False
            if isinstance(exc, self.transient_errors):
                return True
            answer = self.transient_answer(exc)
            if answer is not None:
                return answer
            exc = exc.__cause__ or exc.__context__
        return False


class FileReader(StorageErrors, ABC):
    """Reads one stored file with the credentials of its detail (files/{id}?federationToken=1)."""

    # how a cut read resumes (ResumingReader); TransferManager sets them from its slice_attempts / retry_wait
    resume_attempts: int = 3
    resume_wait: float = 1.0

    @abstractmethod
    def slices(self) -> list[Slice]:
        """The objects to read, in manifest order (a non-sliced file is one slice)."""

    @abstractmethod
    def open_range(self, part: Slice, offset: int, version: str | None) -> RangeStream:
        """One streamed GET of the slice from byte ``offset`` to its end (the whole object at 0, else a ranged
        GET). With ``version`` the GET is conditional on it and raises ``SliceChanged`` when the provider refuses
        the condition (``CHANGED_STATUS``); without it the answer tells the version to pin later reads to. The
        version and size of the answer are checked by ``ResumingReader``, so an adapter need not compare them."""

    def open(self, part: Slice, *, label: str | None = None) -> ResumingReader:
        """A readable stream of the slice that resumes after a cut; the first GET is sent on the first read."""
        return ResumingReader(self, part, label=label, attempts=self.resume_attempts, wait=self.resume_wait)

    def open_sized(self, part: Slice, *, label: str | None = None) -> tuple[ResumingReader, int]:
        """``open`` with the first GET sent, and the slice's length in bytes (from that answer)."""
        stream = self.open(part, label=label).start()
        return stream, stream.size

    def download(self, part: Slice, dest: Path, progress: Progress, *, label: str | None = None) -> None:
        """Stream the slice to ``dest`` through a resuming reader, ``DOWNLOAD_CHUNK`` bytes at a time."""
        with self.open(part, label=label) as stream:
            save_stream(stream, Path(dest), progress)


class StoredFileReader(FileReader):
    """A provider's reader of a stored file: the fields of the file detail, and its slices. A non-sliced file is
    its one object; a sliced one lists its slices in the manifest next to them (key + "manifest"), read like the
    PHP client does: with the file's credentials, through the presigned url (a GET of the manifest) when the
    provider refuses them (one of ``manifest_errors``).

    An adapter implements ``file_url``, ``read_manifest``, ``parse_url`` (a manifest entry -> where the object is;
    raises ``TransferError`` for an entry of another provider) and ``open_range``."""

    manifest_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, file: dict, *, readable: bool):
        """``readable``: the detail holds what the adapter needs (credentials and path of the provider)."""
        if not readable:
            raise self.missing(file, "credentials (files/{id}?federationToken=1)")
        self.file_id = file.get("id")
        self.sliced = bool(file.get("isSliced"))
        self.size = file.get("sizeBytes")
        self.presigned_url = file.get("url")

    @staticmethod
    @abstractmethod
    def parse_url(url: str) -> tuple[str, str]:
        """A manifest entry's url -> (bucket or container, key); ``TransferError`` for a foreign entry."""

    @abstractmethod
    def file_url(self) -> str:
        """The provider url of the object of a non-sliced file."""

    @abstractmethod
    def read_manifest(self) -> bytes:
        """The manifest object (key + "manifest") read with the file's credentials."""

    def slices(self) -> list[Slice]:
        if not self.sliced:
            return [Slice(self.file_url(), self.size)]
        parts = []
        for entry in self.manifest().get("entries") or []:
            self.parse_url(entry["url"])  # fail early on a foreign entry
            parts.append(Slice(entry["url"]))
        return parts

    def manifest(self) -> dict:
        try:
            return json.loads(self.read_manifest())
        except self.manifest_errors:
            if not self.presigned_url:
                raise
        response = requests.get(self.presigned_url, timeout=MANIFEST_TIMEOUT)
        response.raise_for_status()
        return response.json()


class ResumingReader(io.RawIOBase):
    """One slice as a readable stream that survives cut connections.

    ``read(n)`` reads the current streamed GET. When it fails with a transient error (``reader.is_transient``:
    a connection reset or broken mid-body, a timeout, a body that ends early ...), the stream is closed and the
    slice is reopened from the first byte not yet returned with a ranged GET pinned to the version the read
    started with, after a short backoff (``wait`` doubling). Up to ``attempts - 1`` reopenings in a row may fail
    to deliver a byte; a reopening that delivers bytes starts the count again (every resumption makes progress,
    so the total is bounded too). Then the last error is raised and the caller retries the slice from byte 0.
    Bytes are returned exactly once, in order, and the total is checked against the object's size; an object
    that changed since the first GET (another ETag / generation, or a 412) is a ``TransferError``, never spliced.

    ``read(n)`` returns n bytes unless the slice ends first (like ``io.BufferedReader``): s3transfer's stream
    uploads rely on full parts. Not thread-safe: one slice, one thread.
    """

    def __init__(self, reader: FileReader, part: Slice, *, label: str | None = None, attempts: int = 3, wait=1.0):
        super().__init__()
        self.reader = reader
        self.part = part
        self.label = label or f"Slice {part.url}"
        self.attempts = max(1, attempts)
        self.wait = wait
        self.offset = 0  # bytes returned so far
        self.size: int | None = None  # of the object, from the first GET
        self.version: str | None = None  # ETag / generation of the first GET
        self.resumes = 0  # ranged reopenings done
        self._body = None
        self._checksum = None
        self._finished = False
        self._failure: Exception | None = None

    def readable(self) -> bool:
        return True

    def start(self) -> Self:
        """Send the first GET (a failure here is not resumed: nothing was read yet, the caller retries)."""
        if self.size is None:
            self._open()
        return self

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self._failure is not None:  # deferred by the previous read, which returned the bytes it had
            failure, self._failure = self._failure, None
            raise failure
        self.start()
        pieces = []
        while size > 0:
            try:
                data = self._next(size)
            except Exception as exc:
                if not pieces:
                    raise
                self._failure = exc  # what the caller gets is exactly what the offset counts
                break
            if not data:
                break
            pieces.append(data)
            size -= len(data)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def readall(self) -> bytes:
        pieces = []
        while data := self.read(1 * MB):
            pieces.append(data)
        return b"".join(pieces)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._discard()
        super().close()

    # machinery ----------------------------------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            answer = self.reader.open_range(self.part, self.offset, self.version)
        except SliceChanged as exc:
            raise self._changed(str(exc)) from exc
        stream, size, version, checksum = answer
        if self.size is None:
            self.size, self.version = size, version
            self._checksum = checksum if self.offset == 0 else None
        elif size != self.size or (self.version is not None and version is not None and version != self.version):
            _close(stream)
            raise self._changed(f"now {size:,} bytes, version {version}; it was {self.size:,} bytes, {self.version}")
        self._body = stream

    def _changed(self, detail: str) -> TransferError:
        where = f"cut at byte {self.offset:,} of {self.size:,}" if self.size is not None else "first read"
        return TransferError(
            f"{self.label} changed in the file storage while it was being read ({where}; {detail}). The read was "
            f"stopped rather than resumed, so that two versions of the object are never mixed; the file must not be "
            f"rewritten while it is being read."
        )

    def _next(self, size: int) -> bytes:
        """At most ``size`` bytes (at least one), b"" at the end; resumes after transient errors."""
        failures = 0
        while True:
            if self._finished:
                return b""
            if self._body is not None and self.offset >= self.size:
                self._finish()
                return b""
            try:
                if self._body is None:  # cut before: offset < size
                    self._open()
                data = self._body.read(min(size, self.size - self.offset))
                if not data:
                    raise SliceCut(f"the response ended at byte {self.offset:,} of {self.size:,}")
            except TransferError:
                self._discard()
                raise
            except Exception as exc:
                self._discard()
                if not self.reader.is_transient(exc):
                    raise
                error = exc
            else:
                self.offset += len(data)
                if self._checksum is not None:
                    self._checksum.update(data)
                return data
            # resumed outside the except block, so that a failure of the reopening is not chained to this cut
            failures += 1
            if failures >= self.attempts:
                raise error
            delay = min(self.wait * 2 ** (failures - 1), 30 * self.wait)
            logger.warning(
                "%s cut at byte %s of %s (%s); resuming from there with a ranged GET in %.1f s (%d of %d)",
                self.label,
                f"{self.offset:,}",
                f"{self.size:,}",
                describe(error),
                delay,
                failures,
                self.attempts - 1,
            )
            time.sleep(delay)
            self.resumes += 1

    def _finish(self) -> None:
        """All ``size`` bytes are in: read the end of the response (lets an SDK check its length / checksum), check
        nothing follows, check the whole-object checksum, release the connection."""
        try:
            extra = self._body.read(1)
        finally:
            self._discard()
        if extra:
            raise TransferError(
                f"{self.label} is longer than the {self.size:,} bytes its GET announced; the file storage answered "
                f"inconsistently, the read was stopped."
            )
        if self._checksum is not None:
            self._checksum.verify()
        self._finished = True

    def _discard(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            _close(body)


def _close(stream) -> None:
    try:
        stream.close()
    except Exception:  # closing a broken connection may fail again; it is dropped either way
        logger.debug("Closing a slice stream failed", exc_info=True)


def save_stream(stream: BinaryIO, dest: Path, progress: Progress, chunk: int = DOWNLOAD_CHUNK) -> None:
    """Copy ``stream`` to ``<dest>.part`` reporting progress per chunk, then rename it to ``dest``; on failure no
    partial file remains."""
    temporary = dest.with_name(dest.name + ".part")
    try:
        with open(temporary, "wb") as out:
            while data := stream.read(chunk):
                out.write(data)
                progress(len(data))
        os.replace(temporary, dest)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class FileWriter(StorageErrors, ABC):
    """Writes one prepared file with its upload credentials (files/prepare)."""

    sliced: bool

    @abstractmethod
    def upload(self, path: Path, name: str | None, progress: Progress) -> None:
        """Upload a local file as slice ``name``, or as the file itself when ``name`` is None."""

    @abstractmethod
    def upload_stream(self, stream: BinaryIO, name: str | None, progress: Progress, size: int | None = None) -> None:
        """Upload from a readable (not necessarily seekable) stream, with bounded memory; ``size``, when known, is
        the exact number of bytes the stream holds (lets an adapter send it as one streamed request)."""

    @abstractmethod
    def write_manifest(self, names: list[str]) -> None:
        """Write ``{"entries": [{"url", "mandatory": true}, ...]}`` listing the slices in order."""


class PreparedFileWriter(FileWriter):
    """A provider's writer of a prepared file: the fields of the files/prepare answer, and the manifest.

    An adapter implements ``slice_url``, ``put_manifest``, ``upload`` and ``upload_stream``."""

    def __init__(self, prepared: dict, *, writable: bool):
        """``writable``: the answer holds what the adapter needs (upload parameters with credentials)."""
        if not writable:
            raise self.missing(prepared, "upload parameters (files/prepare with federationToken)")
        self.file_id = prepared.get("id")
        self.sliced = bool(prepared.get("isSliced"))

    @abstractmethod
    def slice_url(self, name: str) -> str:
        """The provider url of slice ``name``, as the manifest lists it."""

    @abstractmethod
    def put_manifest(self, body: bytes) -> None:
        """Store ``body`` (JSON) as the manifest object, key + "manifest"."""

    def write_manifest(self, names: list[str]) -> None:
        entries = [{"url": self.slice_url(name), "mandatory": True} for name in names]
        self.put_manifest(json.dumps({"entries": entries}).encode())


class StorageAdapter(ABC):
    """Builds readers and writers for one provider."""

    provider: str
    # PUT files/{id}/refresh (Files.refresh), set by TransferManager: renews expiring credentials (GCS, 1 hour)
    refresh_credentials: Callable[[Any], dict] | None = None

    @abstractmethod
    def reader(self, file: dict) -> FileReader: ...

    @abstractmethod
    def writer(self, prepared: dict) -> FileWriter: ...

    def preload(self) -> None:
        """Load what the first transfer would otherwise load (the SDK's models), ahead of it."""


def describe(exc: BaseException | None) -> str:
    """``Type: message`` on one line, for logs and errors; never a presigned url's query string."""
    text = " ".join(str(exc).split()) if exc is not None else ""
    text = re.sub(r"(https?://[^\s?]+)\?\S*", r"\1?...", text)  # never echo a presigned query string
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
