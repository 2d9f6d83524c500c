"""``TransferManager``: runs the transfers of files on one bounded thread pool (after s3transfer's manager).

It picks the adapter of a file's provider (``ADAPTER_MODULES``; a provider's SDK is imported on first use), runs
slices in parallel, retries a failed slice a few times (after a reader's own resumptions, see
``base.ResumingReader``) and reports progress. Everything streams: memory does not grow with file size. Copying
between projects pipes a reader's stream into a writer, so source and destination may live on different
providers or stacks.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Self

import tenacity

from ..errors import TransferError
from .base import FileReader, FileWriter, Progress, Slice, StorageAdapter, describe
from .records import RecordCounter

logger = logging.getLogger(__name__)

# provider -> module in this package holding an adapter class
ADAPTER_MODULES = {"aws": ("s3", "S3Adapter"), "azure": ("azure", "AzureAdapter"), "gcp": ("gcs", "GcsAdapter")}
_KNOWN_PROVIDERS = ("aws", "azure", "gcp")


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

    def copy(
        self, source_file: dict, prepared: dict, progress: Progress | None = None, *, count_records: bool = False
    ) -> int | None:
        """Stream every slice of a stored file into a prepared sliced file (no decompression), then the manifest.
        ``count_records``: also count the CSV records that went through (inflating the stream on the side) and
        return the count."""
        reader = self._reader(source_file)
        writer = self._adapter(prepared).writer(prepared)
        parts = self._slices(reader, source_file)
        if not writer.sliced and len(parts) != 1:
            # a caller's mistake, not the user's: an internal error (exit 2)
            raise ValueError(
                f"File {prepared.get('id')} was prepared without isSliced but the source file "
                f"{source_file.get('id')} has {len(parts)} slices; prepare it with sliced=True."
            )
        names = [part.local_name(i) for i, part in enumerate(parts)]

        records = [0]
        records_lock = threading.Lock()

        def copy_one(part: Slice, name: str, label: str, sink: Progress) -> None:
            # a cut source read resumes inside the stream (a ranged GET): the destination request keeps going
            stream, size = reader.open_sized(part, label=label)
            with stream:
                counter = RecordCounter(stream) if count_records else None
                writer.upload_stream(counter or stream, name if writer.sliced else None, sink, size=size)
            if counter is not None:  # only a slice that arrived whole counts (a retried one starts over)
                with records_lock:
                    records[0] += counter.finish()

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
        return records[0] if count_records else None

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
                f"Cannot read the slice list (manifest) of file {file.get('id')}: {describe(exc)}; "
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
            raise ValueError(f"File {prepared.get('id')} was prepared without isSliced; slices need sliced=True.")

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
                describe(state.outcome.exception()),
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
                raise TransferError(f"{label} failed: {describe(exc)}.") from exc

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
