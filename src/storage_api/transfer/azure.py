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
retries the Put Block).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import requests
import urllib3
from azure.core.exceptions import (
    HttpResponseError,
    IncompleteReadError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient, ContentSettings
from azure.storage.blob._generated.models import ModifiedAccessConditions

from ..errors import TransferError
from .base import FileReader, FileWriter, Progress, RangeStream, Slice, SliceChanged, StorageAdapter

MB = 2**20
BLOCK_SIZE = 8 * MB
_ACCOUNT_HOST_SUFFIX = ".blob.core.windows.net"
_MANIFEST_TIMEOUT = (30, 300)
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_CONTENT_RANGE_TOTAL = re.compile(r"/\s*(\d+)\s*$")


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


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: network trouble, throttling, 5xx (looks through wrapped exceptions)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (ServiceRequestError, ServiceResponseError, IncompleteReadError)):
            return True
        if isinstance(exc, HttpResponseError) and exc.status_code is not None:
            return exc.status_code in _TRANSIENT_STATUS
        if isinstance(
            exc,
            (
                ConnectionError,
                TimeoutError,
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,  # a body cut mid-stream (wrapped without a status)
                urllib3.exceptions.ProtocolError,
                http.client.IncompleteRead,
            ),
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


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


class AzureReader(FileReader):
    def __init__(self, file: dict, *, block_size: int = BLOCK_SIZE, max_concurrency: int = 2):
        path = file.get("absPath") or {}
        credentials = file.get("absCredentials") or {}
        if not path.get("container") or not path.get("name") or not credentials.get("SASConnectionString"):
            raise TransferError(
                f"File {file.get('id')} has no Azure credentials; read it with files/{{id}}?federationToken=1."
            )
        self.file_id = file.get("id")
        self.container = path["container"]
        self.name = path["name"]
        self.sliced = bool(file.get("isSliced"))
        self.size = file.get("sizeBytes")
        self.presigned_url = file.get("url")
        self.max_concurrency = max_concurrency
        self.service = service_client(credentials["SASConnectionString"], block_size)

    def _url(self, blob: str) -> str:
        return f"azure://{self.service.account_name}{_ACCOUNT_HOST_SUFFIX}/{self.container}/{blob}"

    def slices(self) -> list[Slice]:
        if not self.sliced:
            return [Slice(self._url(self.name), self.size)]
        parts = []
        for entry in self._manifest().get("entries") or []:
            parse_abs_url(entry["url"])  # fail early on a foreign entry
            parts.append(Slice(entry["url"]))
        return parts

    def _manifest(self) -> dict:
        # Like the PHP client: the manifest is the blob name + "manifest"; the presigned url is the fallback.
        try:
            blob = self.service.get_blob_client(self.container, self.name + "manifest")
            return json.loads(blob.download_blob().readall())
        except HttpResponseError:
            if not self.presigned_url:
                raise
        response = requests.get(self.presigned_url, timeout=_MANIFEST_TIMEOUT)
        response.raise_for_status()
        return response.json()

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
            if version and exc.status_code in (412, 416):
                code = exc.response.headers.get("x-ms-error-code") if exc.response is not None else None
                raise SliceChanged(f"Azure answered {exc.status_code} {code or ''} to If-Match {version}") from exc
            raise
        body = _ChunkBody(chunks)
        etag = headers.get("ETag")
        if version and etag and etag != version:  # a server ignoring If-Match
            body.close()
            raise SliceChanged(f"Azure returned ETag {etag}, the read started at ETag {version}")
        size = int(headers.get("Content-Length") or 0)
        if offset:
            total = _CONTENT_RANGE_TOTAL.search(headers.get("Content-Range") or "")
            size = int(total.group(1)) if total else offset + size
        return RangeStream(body, size, etag)

    def is_transient(self, exc: BaseException) -> bool:
        return is_transient(exc)


class AzureWriter(FileWriter):
    def __init__(self, prepared: dict, *, block_size: int = BLOCK_SIZE, max_concurrency: int = 2):
        params = prepared.get("absUploadParams") or {}
        credentials = params.get("absCredentials") or {}
        if not params.get("container") or "blobName" not in params or not credentials.get("SASConnectionString"):
            raise TransferError(
                f"File {prepared.get('id')} has no Azure upload parameters; prepare it with federationToken=true."
            )
        self.file_id = prepared.get("id")
        self.container = params["container"]
        self.blob_name = params["blobName"]
        self.sliced = bool(prepared.get("isSliced"))
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

    def write_manifest(self, names: list[str]) -> None:
        entries = [
            {
                "url": f"azure://{self.account}{_ACCOUNT_HOST_SUFFIX}/{self.container}/{self.blob_name}{name}",
                "mandatory": True,
            }
            for name in names
        ]
        self._blob("manifest").upload_blob(
            json.dumps({"entries": entries}).encode(),
            overwrite=True,
            content_settings=ContentSettings(content_type="application/json"),
        )

    def is_transient(self, exc: BaseException) -> bool:
        return is_transient(exc)


class AzureAdapter(StorageAdapter):
    provider = "azure"

    def __init__(self, *, block_size: int = BLOCK_SIZE, max_concurrency: int = 2):
        self.block_size = block_size
        self.max_concurrency = max_concurrency

    def reader(self, file: dict) -> AzureReader:
        return AzureReader(file, block_size=self.block_size, max_concurrency=self.max_concurrency)

    def writer(self, prepared: dict) -> AzureWriter:
        return AzureWriter(prepared, block_size=self.block_size, max_concurrency=self.max_concurrency)
