"""Azure Blob Storage adapter (azure-storage-blob).

The blob client is built from the file's ``SASConnectionString`` alone (``absCredentials`` of
``files/{id}?federationToken=1`` for reads, ``absUploadParams.absCredentials`` of ``files/prepare`` for writes), like
kbcstorage: the connection string names the endpoint, so a local Azurite needs no extra setting. Manifest entries
``azure://{account}.blob.core.windows.net/{container}/{blob}`` (or ``https://``) name container + blob, which are
read through the connection string's endpoint whatever account host the entry names.

Memory stays bounded (kbcstorage reads whole blobs with ``readall()``): a read is one streamed Get Blob written
to disk (or piped into a copy's upload) as it arrives, uploads are block uploads that hold at most
``max_concurrency`` blocks per slice (``length=None`` streams included).

Reads resume: ``open_range`` is the SDK's generated Get Blob operation, streamed (what ``download_blob`` sends per
range, without its buffering of whole ranges and its per-range restarts), and ``base.ResumingReader`` reopens a
cut read with ``x-ms-range: bytes={offset}-`` and ``If-Match: {ETag of the first GET}``, so Azure answers 412
(ConditionNotMet) rather than bytes of a newer blob. Block uploads of files re-send only a cut block (the SDK
retries the Put Block). The slice list, the manifest and the cause walk of ``is_transient`` are ``base``'s; this
module declares Azure's transient errors (``AzureErrors``) and makes the SDK calls.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import requests
from azure.core.exceptions import (
    HttpResponseError,
    IncompleteReadError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient, ContentSettings
from azure.storage.blob._generated.models import ModifiedAccessConditions

from ..errors import TransferError
from . import base
from .base import MB, Progress, RangeStream, Slice, SliceChanged

BLOCK_SIZE = 8 * MB
_ACCOUNT_HOST_SUFFIX = ".blob.core.windows.net"


def service_client(connection_string: str, block_size: int = BLOCK_SIZE) -> BlobServiceClient:
    """A blob service client from a SAS connection string; blocks and ranged GETs of ``block_size``."""
    return BlobServiceClient.from_connection_string(
        connection_string,
        max_block_size=block_size,
        max_single_put_size=block_size,  # a single Put Blob reads the whole body into memory: keep it small
        max_single_get_size=block_size,
        max_chunk_get_size=block_size,
        connection_timeout=30,
        read_timeout=300,
    )


def parse_abs_url(url: str) -> tuple[str, str]:
    """``azure://{account}.blob.core.windows.net/{container}/{blob}`` (or https://, or a path-style emulator URL
    ``http://host:port/{account}/{container}/{blob}``) -> (container, blob)."""
    parts = urlsplit(url) if isinstance(url, str) else None
    path = None
    if parts is not None and parts.scheme in ("azure", "https", "http") and parts.netloc:
        path = parts.path
        if parts.scheme != "azure" and not parts.hostname.endswith(_ACCOUNT_HOST_SUFFIX):
            path = "/" + path.lstrip("/").partition("/")[2]  # path-style: /{account}/{container}/{blob}
        if parts.scheme != "azure":
            path = unquote(path)
    container, _, blob = (path or "").lstrip("/").partition("/")
    if not container or not blob:
        raise TransferError(
            f"Unexpected manifest entry {url!r}: expected azure://{{account}}.blob.core.windows.net/{{container}}/"
            f"{{blob}}."
        )
    return container, blob


class AzureErrors(base.StorageErrors):
    """Worth another attempt: network trouble, throttling, 5xx (looks through wrapped exceptions)."""

    storage_name = "Azure"
    transient_errors = (
        ServiceRequestError,
        ServiceResponseError,
        IncompleteReadError,  # an HttpResponseError: transient whatever its status
        *base.NETWORK_ERRORS,
        requests.exceptions.ChunkedEncodingError,  # a body cut mid-stream (wrapped without a status)
    )

    def transient_answer(self, exc: BaseException) -> bool | None:
        if isinstance(exc, HttpResponseError) and exc.status_code is not None:
            return exc.status_code in base.TRANSIENT_STATUS
        return None


is_transient = AzureErrors().is_transient


def _progress_hook(progress: Progress) -> Callable[[int, int | None], None]:
    """The SDK reports cumulative bytes (possibly from several threads); ``progress`` wants deltas."""
    lock = threading.Lock()
    done = 0

    def hook(current: int, total: int | None) -> None:
        nonlocal done
        with lock:
            delta, done = current - done, max(done, current)
        if delta > 0:
            progress(delta)

    return hook


class _ChunkBody:
    """``read(n)`` over the chunk iterator of a streamed Get Blob (the SDK's ``StreamDownloadGenerator``)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._pending = b""

    def read(self, size: int) -> bytes:
        if not self._pending:
            self._pending = next(self._chunks, b"")
        if len(self._pending) <= size:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def close(self) -> None:
        self._pending = b""
        response = getattr(getattr(self._chunks, "response", None), "internal_response", None)
        if response is not None:
            response.close()  # drops a cut connection instead of returning it to the pool


class AzureReader(AzureErrors, base.StoredFileReader):
    manifest_errors = (HttpResponseError,)
    parse_url = staticmethod(parse_abs_url)

    def __init__(self, file: dict, *, block_size: int = BLOCK_SIZE, max_concurrency: int = 2):
        path = file.get("absPath") or {}
        credentials = file.get("absCredentials") or {}
        located = bool(path.get("container")) and bool(path.get("name"))
        super().__init__(file, readable=located and bool(credentials.get("SASConnectionString")))
        self.container = path["container"]
        self.name = path["name"]
        self.max_concurrency = max_concurrency
        self.service = service_client(credentials["SASConnectionString"], block_size)

    def file_url(self) -> str:
        return f"azure://{self.service.account_name}{_ACCOUNT_HOST_SUFFIX}/{self.container}/{self.name}"

    def read_manifest(self) -> bytes:
        return self.service.get_blob_client(self.container, self.name + "manifest").download_blob().readall()

    def _blob(self, part: Slice):
        container, blob = parse_abs_url(part.url)
        return self.service.get_blob_client(container, blob)

    def open_range(self, part: Slice, offset: int, version: str | None) -> RangeStream:
        # One streamed Get Blob through the client's pipeline (SAS, API version, retries of the request itself).
        # download_blob() would read each block_size range whole into memory and restart a cut range itself.
        blob = self._blob(part)
        try:
            chunks, headers = blob._client.blob.download(  # the SDK's own (generated) Get Blob operation
                range=f"bytes={offset}-" if offset else None,
                modified_access_conditions=ModifiedAccessConditions(if_match=version) if version else None,
                decompress=False,  # the bytes as stored (a .gz slice stays compressed)
                cls=lambda pipeline_response, body, response_headers: (body, response_headers),
            )
        except HttpResponseError as exc:
            if version and exc.status_code in base.CHANGED_STATUS:
                code = exc.response.headers.get("x-ms-error-code") if exc.response is not None else None
                raise SliceChanged(f"Azure answered {exc.status_code} {code or ''} to If-Match {version}") from exc
            raise
        size = base.object_size(offset, headers.get("Content-Length"), headers.get("Content-Range"))
        return RangeStream(_ChunkBody(chunks), size, headers.get("ETag"))


class AzureWriter(AzureErrors, base.PreparedFileWriter):
    def __init__(self, prepared: dict, *, block_size: int = BLOCK_SIZE, max_concurrency: int = 2):
        params = prepared.get("absUploadParams") or {}
        credentials = params.get("absCredentials") or {}
        located = bool(params.get("container")) and "blobName" in params
        super().__init__(prepared, writable=located and bool(credentials.get("SASConnectionString")))
        self.container = params["container"]
        self.blob_name = params["blobName"]
        self.max_concurrency = max_concurrency
        self.service = service_client(credentials["SASConnectionString"], block_size)
        self.account = params.get("accountName") or self.service.account_name

    def _blob(self, name: str | None):
        return self.service.get_blob_client(self.container, self.blob_name + (name or ""))

    def upload(self, path: Path, name: str | None, progress: Progress) -> None:
        with open(path, "rb") as stream:
            self._blob(name).upload_blob(
                stream,
                length=os.fstat(stream.fileno()).st_size,
                overwrite=True,
                max_concurrency=self.max_concurrency,
                progress_hook=_progress_hook(progress),
            )

    def upload_stream(self, stream: BinaryIO, name: str | None, progress: Progress, size: int | None = None) -> None:
        # unknown length: block uploads read block_size at a time, max_concurrency blocks in flight
        self._blob(name).upload_blob(
            stream,
            length=None,
            overwrite=True,
            max_concurrency=self.max_concurrency,
            progress_hook=_progress_hook(progress),
        )

    def slice_url(self, name: str) -> str:
        return f"azure://{self.account}{_ACCOUNT_HOST_SUFFIX}/{self.container}/{self.blob_name}{name}"

    def put_manifest(self, body: bytes) -> None:
        self._blob("manifest").upload_blob(
            body, overwrite=True, content_settings=ContentSettings(content_type="application/json")
        )


class AzureAdapter(base.StorageAdapter):
    provider = "azure"

    def __init__(self, *, block_size: int = BLOCK_SIZE, max_concurrency: int = 2):
        self.block_size = block_size
        self.max_concurrency = max_concurrency

    def reader(self, file: dict) -> AzureReader:
        return AzureReader(file, block_size=self.block_size, max_concurrency=self.max_concurrency)

    def writer(self, prepared: dict) -> AzureWriter:
        return AzureWriter(prepared, block_size=self.block_size, max_concurrency=self.max_concurrency)
