"""Moving file data between local disk and Keboola file storage (S3 / ABS / GCS), after boto3's s3transfer.

One provider-neutral interface, one adapter per provider (chosen by the file's ``provider``):
- ``FileReader`` reads a stored file (GET files/{id}?federationToken=1): its slices in manifest order, each as a
  stream or straight to disk;
- ``FileWriter`` writes a prepared file (POST files/prepare): a local file, a stream, slices and the manifest.
``TransferManager`` runs slices in parallel on one bounded thread pool, retries a failed slice a few times and
reports progress. Everything streams: memory does not grow with file size. Copying between projects pipes a
reader's stream into a writer, so source and destination may live on different providers or stacks.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Self

import tenacity

from ..errors import TransferError

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]  # receives byte deltas (negative when a failed slice is restarted)

# provider -> module in this package holding an adapter class
ADAPTER_MODULES = {"aws": ("s3", "S3Adapter"), "azure": ("azure", "AzureAdapter"), "gcp": ("gcs", "GcsAdapter")}
_KNOWN_PROVIDERS = ("aws", "azure", "gcp")
_KEPT_SUFFIXES = (".csv.gz", ".gz", ".csv", ".parquet", ".zst", ".json")


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


class FileReader(ABC):
    """Reads one stored file with the credentials of its detail (files/{id}?federationToken=1)."""

    @abstractmethod
    def slices(self) -> list[Slice]:
        """The objects to read, in manifest order (a non-sliced file is one slice)."""

    @abstractmethod
    def open(self, part: Slice) -> BinaryIO:
        """A streaming, readable binary stream of the slice; the caller closes it."""

    def open_sized(self, part: Slice) -> tuple[BinaryIO, int | None]:
        """``open`` plus the slice's length in bytes when known (adapters learn it from the GET response)."""
        return self.open(part), part.size

    def download(self, part: Slice, dest: Path, progress: Progress) -> None:
        """Stream the slice to ``dest`` (adapters may override with the SDK's parallel downloader)."""
        with self.open(part) as stream, open(dest, "wb") as out:
            while chunk := stream.read(1024 * 1024):
                out.write(chunk)
                progress(len(chunk))

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, (ConnectionError, TimeoutError))


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
        reader = self._adapter(file).reader(file)
        parts = self._slices(reader, file)
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        targets = [dest_dir / part.local_name(i) for i, part in enumerate(parts)]
        report = _serialized(progress)
        self._run_parallel(
            [
                self._task(
                    f"Downloading slice {i + 1} of {len(parts)} ({part.url}) of file {file.get('id')}",
                    lambda sink, part=part, target=target: reader.download(part, target, sink),
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
        reader = self._adapter(source_file).reader(source_file)
        writer = self._adapter(prepared).writer(prepared)
        parts = self._slices(reader, source_file)
        if not writer.sliced and len(parts) != 1:
            raise TransferError(
                f"File {prepared.get('id')} was prepared without isSliced but the source file "
                f"{source_file.get('id')} has {len(parts)} slices; prepare it with sliced=True."
            )
        names = [part.local_name(i) for i, part in enumerate(parts)]

        def copy_one(part: Slice, name: str, sink: Progress) -> None:
            stream, size = reader.open_sized(part)
            with stream:
                writer.upload_stream(stream, name if writer.sliced else None, sink, size=size)

        report = _serialized(progress)
        self._run_parallel(
            [
                self._task(
                    f"Copying slice {i + 1} of {len(parts)} ({part.url}) of file {source_file.get('id')} "
                    f"to file {prepared.get('id')}",
                    lambda sink, part=part, name=name: copy_one(part, name, sink),
                    lambda exc: reader.is_transient(exc) or writer.is_transient(exc),
                    report,
                )
                for i, (part, name) in enumerate(zip(parts, names))
            ]
        )
        if writer.sliced:
            self._write_manifest(writer, prepared, names)

    # machinery ----------------------------------------------------------------------------------------------------
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
        """One slice transfer with retries; a restarted slice first takes back the bytes it had reported."""

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
                retry=tenacity.retry_if_exception(is_transient),
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
