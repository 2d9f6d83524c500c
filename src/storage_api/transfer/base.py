"""Moving file data between local disk and Keboola file storage (S3 / ABS / GCS), after boto3's s3transfer.

One provider-neutral interface, one adapter per provider (chosen by the file's ``provider``):
- ``FileReader`` reads a stored file (GET files/{id}?federationToken=1): its slices in manifest order. An adapter
  only opens a streamed GET of one object from a byte offset, pinned to one version of it (``open_range``);
  ``ResumingReader`` turns that into a file-like stream of the slice that resumes where a connection was cut;
- ``FileWriter`` writes a prepared file (POST files/prepare): a local file, a stream, slices and the manifest.
``TransferManager`` runs slices in parallel on one bounded thread pool, retries a failed slice a few times and
reports progress. Everything streams: memory does not grow with file size. Copying between projects pipes a
reader's stream into a writer, so source and destination may live on different providers or stacks.

What resumes after a connection is cut mid-body (a slice is retried from its first byte only when resuming fails):
- downloads and the source side of copies, on all three providers: ``ResumingReader`` reopens the slice with a
  ranged GET from the first byte it has not received, conditional on the version it started with (S3 If-Match on
  the ETag, Azure If-Match on the ETag, GCS ifGenerationMatch), so a resumed read never splices two versions of an
  object: a slice that changed fails clearly instead. Bytes and progress are counted once; a download is written
  to ``<name>.part`` and renamed when complete, so no partial file is left behind;
- uploads of local files: multipart / block / resumable-chunk uploads re-send only the part that was cut (the
  provider SDK retries the request of that part, block or chunk); a streamed upload (a copy's destination) whose
  request is cut restarts the slice, its source read included.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, Self

import tenacity

from ..errors import TransferError

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]  # receives byte deltas (negative when a failed slice is restarted)

# provider -> module in this package holding an adapter class
ADAPTER_MODULES = {"aws": ("s3", "S3Adapter"), "azure": ("azure", "AzureAdapter"), "gcp": ("gcs", "GcsAdapter")}
_KNOWN_PROVIDERS = ("aws", "azure", "gcp")
_KEPT_SUFFIXES = (".csv.gz", ".gz", ".csv", ".parquet", ".zst", ".json")
MB = 2**20
DOWNLOAD_CHUNK = 1 * MB  # a download copies the slice stream to disk in pieces of this size


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
    """Raised by ``FileReader.open_range``: the object is no longer the version a read started with (HTTP 412 to
    the version condition, or a response of another ETag / generation)."""


class SliceCut(ConnectionError):
    """A slice's response ended before the object's last byte without a connection error; resumed like a cut
    (a ConnectionError, so every adapter's ``is_transient`` retries it)."""


class RangeStream(NamedTuple):
    """What ``FileReader.open_range`` returns: a streamed GET of one object from an offset to its end."""

    stream: Any  # read(n) -> at most n bytes, b"" at the end; close()
    size: int  # the size of the whole object in bytes (Content-Length of a full GET, Content-Range total)
    version: str | None  # what a resumed read is pinned to: S3 / Azure ETag, GCS generation; None: not pinned
    checksum: Any = None  # optional whole-object check of a GET from byte 0: update(bytes), verify() raises


class FileReader(ABC):
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
        GET). With ``version`` the GET is conditional on it and raises ``SliceChanged`` when the object is no
        longer that version; without it the answer tells the version to pin later reads to."""

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

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, (ConnectionError, TimeoutError))


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
                _describe(error),
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


class FileWriter(ABC):
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

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, (ConnectionError, TimeoutError))


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


class TransferManager:
    def __init__(
        self,
        max_workers: int = 4,
        *,
        adapters: dict[str, StorageAdapter] | None = None,
        slice_attempts: int = 3,
        retry_wait: float = 1.0,
        refresh_credentials: Callable[[Any], dict] | None = None,
    ):
        self.max_workers = max_workers
        self.refresh_credentials = refresh_credentials
        self.slice_attempts = slice_attempts
        self.retry_wait = retry_wait
        self._adapters = dict(adapters or {})
        self._adapters_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="storage-transfer")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # operations ---------------------------------------------------------------------------------------------------
    def download(self, file: dict, dest_dir: Path, progress: Progress | None = None) -> list[Path]:
        """Download all slices (kept as stored, gz included) in parallel; paths in manifest order."""
        reader = self._reader(file)
        parts = self._slices(reader, file)
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        targets = [dest_dir / part.local_name(i) for i, part in enumerate(parts)]
        report = _serialized(progress)
        self._run_parallel(
            [
                self._task(
                    f"Downloading slice {i + 1} of {len(parts)} ({part.url}) of file {file.get('id')}",
                    lambda sink, i=i, part=part, target=target: reader.download(
                        part, target, sink, label=_slice_label(i, parts, file)
                    ),
                    reader.is_transient,
                    report,
                )
                for i, (part, target) in enumerate(zip(parts, targets))
            ]
        )
        return targets

    def upload(self, prepared: dict, path: Path, progress: Progress | None = None) -> None:
        """Upload one local file as the prepared file; large files go multipart (a sliced one gets a manifest)."""
        writer = self._adapter(prepared).writer(prepared)
        if writer.sliced:
            return self.upload_slices(prepared, [path], progress)
        task = self._task(
            f"Uploading {Path(path).name} to file {prepared.get('id')}",
            lambda sink: writer.upload(Path(path), None, sink),
            writer.is_transient,
            _serialized(progress),
        )
        task()

    def upload_slices(self, prepared: dict, paths: list[Path], progress: Progress | None = None) -> None:
        """Upload local slices in parallel as ``key + basename``, then the manifest (in the given order)."""
        writer = self._adapter(prepared).writer(prepared)
        self._require_sliced(writer, prepared)
        paths = [Path(p) for p in paths]
        names = [p.name for p in paths]
        if len(set(names)) != len(names):
            raise TransferError(f"Slices for file {prepared.get('id')} must have distinct file names.")
        report = _serialized(progress)
        self._run_parallel(
            [
                self._task(
                    f"Uploading slice {path.name} to file {prepared.get('id')}",
                    lambda sink, path=path: writer.upload(path, path.name, sink),
                    writer.is_transient,
                    report,
                )
                for path in paths
            ]
        )
        self._write_manifest(writer, prepared, names)

    def upload_slices_from(
        self,
        prepared: dict,
        paths: Iterable[Path],
        progress: Progress | None = None,
        *,
        ahead: int = 2,
        remove: bool = False,
    ) -> int:
        """Upload slices while ``paths`` is still producing them (e.g. compressing the next one), then the manifest.

        At most ``ahead`` slices are uploading or waiting at a time: the producer blocks until one finishes, so
        disk (and memory) stay bounded. With ``remove`` each slice file is deleted once uploaded. Slice names are
        the file names, in the order produced. Returns the bytes of all slices."""
        writer = self._adapter(prepared).writer(prepared)
        self._require_sliced(writer, prepared)
        report = _serialized(progress)
        names: list[str] = []
        total = 0
        in_flight: deque[Future] = deque()

        def upload_one(path: Path) -> None:
            self._task(
                f"Uploading slice {path.name} to file {prepared.get('id')}",
                lambda sink: writer.upload(path, path.name, sink),
                writer.is_transient,
                report,
            )()
            if remove:
                path.unlink(missing_ok=True)

        def settle(block_until: int) -> None:
            while len(in_flight) > block_until:
                in_flight.popleft().result()  # the oldest first; raises its failure

        try:
            for path in paths:
                path = Path(path)
                if path.name in names:
                    raise TransferError(f"Slices for file {prepared.get('id')} must have distinct file names.")
                names.append(path.name)
                total += path.stat().st_size
                in_flight.append(self._pool.submit(upload_one, path))
                settle(max(1, ahead) - 1)
            settle(0)
        except BaseException:
            for future in in_flight:
                future.cancel()
            wait(in_flight)
            raise
        self._write_manifest(writer, prepared, names)
        return total

    def copy(self, source_file: dict, prepared: dict, progress: Progress | None = None) -> None:
        """Stream every slice of a stored file into a prepared sliced file (no decompression), then the manifest."""
        reader = self._reader(source_file)
        writer = self._adapter(prepared).writer(prepared)
        parts = self._slices(reader, source_file)
        if not writer.sliced and len(parts) != 1:
            raise TransferError(
                f"File {prepared.get('id')} was prepared without isSliced but the source file "
                f"{source_file.get('id')} has {len(parts)} slices; prepare it with sliced=True."
            )
        names = [part.local_name(i) for i, part in enumerate(parts)]

        def copy_one(part: Slice, name: str, label: str, sink: Progress) -> None:
            # a cut source read resumes inside the stream (a ranged GET): the destination request keeps going
            stream, size = reader.open_sized(part, label=label)
            with stream:
                writer.upload_stream(stream, name if writer.sliced else None, sink, size=size)

        report = _serialized(progress)
        self._run_parallel(
            [
                self._task(
                    f"Copying slice {i + 1} of {len(parts)} ({part.url}) of file {source_file.get('id')} "
                    f"to file {prepared.get('id')}",
                    lambda sink, i=i, part=part, name=name: copy_one(
                        part, name, _slice_label(i, parts, source_file), sink
                    ),
                    lambda exc: reader.is_transient(exc) or writer.is_transient(exc),
                    report,
                )
                for i, (part, name) in enumerate(zip(parts, names))
            ]
        )
        if writer.sliced:
            self._write_manifest(writer, prepared, names)

    # machinery ----------------------------------------------------------------------------------------------------
    def _reader(self, file: dict) -> FileReader:
        reader = self._adapter(file).reader(file)
        reader.resume_attempts = self.slice_attempts
        reader.resume_wait = self.retry_wait
        return reader

    def preload(self, provider: str | None) -> None:
        """Import the provider's SDK and load its models on a background thread, while the caller waits for a
        storage job: ~0.3-0.5 s of CPU that would otherwise come after the job. Failures are left to the transfer."""

        def load() -> None:
            try:
                self._adapter({"provider": provider}).preload()
            except Exception:  # the real transfer reports the problem
                logger.debug("Preloading the %s transfer adapter failed", provider, exc_info=True)

        if provider in ADAPTER_MODULES:
            threading.Thread(target=load, name="transfer-preload", daemon=True).start()

    def _adapter(self, file: dict) -> StorageAdapter:
        provider = _provider(file)
        with self._adapters_lock:
            if provider not in self._adapters:
                if provider not in ADAPTER_MODULES:
                    raise TransferError(
                        f"File storage provider {provider!r} of file {file.get('id')} is not supported; "
                        f"Storage Sync transfers files on {', '.join(sorted(ADAPTER_MODULES))} stacks.",
                        user_error=True,
                    )
                module_name, class_name = ADAPTER_MODULES[provider]
                module = importlib.import_module(f"{__package__}.{module_name}")  # provider SDKs load on demand
                self._adapters[provider] = getattr(module, class_name)()
            adapter = self._adapters[provider]
            if self.refresh_credentials is not None and getattr(adapter, "refresh_credentials", None) is None:
                adapter.refresh_credentials = self.refresh_credentials
            return adapter

    @staticmethod
    def _slices(reader: FileReader, file: dict) -> list[Slice]:
        try:
            return reader.slices()
        except TransferError:
            raise
        except Exception as exc:
            raise TransferError(
                f"Cannot read the slice list (manifest) of file {file.get('id')}: {_describe(exc)}; "
                f"check that the file exists and has not expired."
            ) from exc

    def _write_manifest(self, writer: FileWriter, prepared: dict, names: list[str]) -> None:
        # written last: a manifest only ever lists slices that are completely uploaded
        self._task(
            f"Writing the manifest of file {prepared.get('id')}",
            lambda sink: writer.write_manifest(names),
            writer.is_transient,
            lambda amount: None,
        )()

    @staticmethod
    def _require_sliced(writer: FileWriter, prepared: dict) -> None:
        if not writer.sliced:
            raise TransferError(f"File {prepared.get('id')} was prepared without isSliced; slices need sliced=True.")

    def _task(
        self,
        label: str,
        action: Callable[[Progress], None],
        is_transient: Callable[[BaseException], bool],
        progress: Progress,
    ) -> Callable[[], None]:
        """One slice transfer with retries (after a reader's own resumptions, see ``ResumingReader``); a restarted
        slice first takes back the bytes it had reported."""

        def attempt() -> None:
            reported = 0

            def sink(amount: int) -> None:
                nonlocal reported
                reported += amount
                progress(amount)

            try:
                action(sink)
            except BaseException:
                if reported:
                    progress(-reported)
                raise

        def log_retry(state: tenacity.RetryCallState) -> None:
            logger.warning(
                "%s failed (%s); retry %d of %d in %.1f s",
                label,
                _describe(state.outcome.exception()),
                state.attempt_number,
                self.slice_attempts - 1,
                state.upcoming_sleep,
            )

        def run() -> None:
            retrying = tenacity.Retrying(
                stop=tenacity.stop_after_attempt(self.slice_attempts),
                wait=tenacity.wait_exponential(multiplier=self.retry_wait, max=30 * self.retry_wait),
                # a TransferError is a verdict (e.g. a slice that changed while read), whatever caused it
                retry=tenacity.retry_if_exception(lambda exc: not isinstance(exc, TransferError) and is_transient(exc)),
                before_sleep=log_retry,
                reraise=True,
            )
            try:
                retrying(attempt)
            except TransferError:
                raise
            except Exception as exc:
                raise TransferError(f"{label} failed: {_describe(exc)}.") from exc

        return run

    def _run_parallel(self, tasks: list[Callable[[], None]]) -> None:
        """Run on the shared bounded pool; on the first failure cancel what has not started, then raise it."""
        futures = [self._pool.submit(task) for task in tasks]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:
            for future in pending:
                future.cancel()
            wait(pending)
            raise failed[0].exception()


def _provider(file: dict) -> str:
    provider = file.get("provider")
    if provider:
        return provider
    # files/prepare answers of some stacks may lack "provider"; the upload block tells it
    for key, name in (("uploadParams", "aws"), ("absUploadParams", "azure"), ("gcsUploadParams", "gcp")):
        if key in file:
            return name
    for key, name in (("s3Path", "aws"), ("absPath", "azure"), ("gcsPath", "gcp")):
        if key in file:
            return name
    raise TransferError(f"File {file.get('id')} names no storage provider (one of {', '.join(_KNOWN_PROVIDERS)}).")


def _slice_label(index: int, parts: list[Slice], file: dict) -> str:
    return f"Slice {index + 1} of {len(parts)} ({parts[index].url}) of file {file.get('id')}"


def _serialized(progress: Progress | None) -> Progress:
    """Progress callbacks come from many threads; the caller's callback is called under one lock."""
    if progress is None:
        return lambda amount: None
    lock = threading.Lock()

    def report(amount: int) -> None:
        with lock:
            progress(amount)

    return report


def _describe(exc: BaseException | None) -> str:
    text = " ".join(str(exc).split()) if exc is not None else ""
    text = re.sub(r"(https?://[^\s?]+)\?\S*", r"\1?...", text)  # never echo a presigned query string
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
