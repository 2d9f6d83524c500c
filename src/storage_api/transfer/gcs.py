"""Google Cloud Storage adapter (google-cloud-storage).

The client gets the file's bearer token (``gcsCredentials`` of ``files/{id}?federationToken=1``, or
``gcsUploadParams`` of ``files/prepare``) and its ``projectId``, and no endpoint: google-cloud-storage reads the
standard ``STORAGE_EMULATOR_HOST`` variable, which is how tests and the emulator reach a local GCS.

These tokens last one hour (``expires_in``: 3599). ``KbcTokenCredentials`` renews one through
``PUT files/{id}/refresh`` (``StorageAdapter.refresh_credentials``, wired to ``Files.refresh`` by the client) once
less than ``refresh_margin`` seconds remain, checked before every HTTP request (each resumable-upload chunk, each
ranged read), and once more on a 401. The clock is injectable for tests.

Memory stays bounded (kbcstorage and PHP read whole GCS objects into memory): a read is one streamed media GET
written to disk (or piped into a copy's upload) as it arrives, uploads are resumable uploads of ``chunk_size``
chunks (objects up to 8 MiB go in one request).

Reads resume: ``open_range`` sends the media GET through an ``AuthorizedSession`` on the token above, and
``base.ResumingReader`` reopens a cut read with ``Range: bytes={offset}-`` and ``ifGenerationMatch={generation of
the first GET}`` (GCS answers 412 rather than bytes of a newer generation; the generation of every answer is
checked as well). The CRC32C of a read from byte 0 (``X-Goog-Hash``) is checked over all its bytes, resumed ones
included. Resumable uploads of files re-send only from the last chunk GCS confirmed. The slice list, the manifest
and the cause walk of ``is_transient`` are ``base``'s; this module declares GCS's transient errors (``GcsErrors``)
and makes the SDK calls.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import google.auth.credentials
import google_crc32c
import requests
import urllib3
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import AuthorizedSession
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from ..errors import TransferError
from . import base
from .base import MB, Progress, RangeStream, Slice, SliceChanged

try:  # google-resumable-media (uploads/downloads); newer google-cloud-storage vendors it
    from google.resumable_media import common as _media_common
except ImportError:  # pragma: no cover - depends on the installed google-cloud-storage
    _media_common = None

CHUNK_SIZE = 16 * MB  # a multiple of 256 KiB, as resumable uploads require
REFRESH_MARGIN = 300.0  # renew when less than 5 minutes remain
DEFAULT_EXPIRES_IN = 3599
_READ_TIMEOUT = (30, 300)
_CRC32C = re.compile(r"crc32c=([A-Za-z0-9+/=]+)")
_RECENT_REFRESH = 5.0  # seconds: a 401 right after a renewal does not renew again

Clock = Callable[[], float]


def token_from(answer: dict) -> tuple[str, float]:
    """(access_token, expires_in) of a refresh answer: the file with ``gcsUploadParams`` or ``gcsCredentials``, or
    such a block itself."""
    for block in (answer.get("gcsUploadParams"), answer.get("gcsCredentials"), answer):
        if isinstance(block, dict) and block.get("access_token"):
            return block["access_token"], float(block.get("expires_in") or DEFAULT_EXPIRES_IN)
    raise TransferError("The refreshed file credentials contain no GCS access token (gcsUploadParams.access_token).")


class KbcTokenCredentials(google.auth.credentials.Credentials):
    """A Keboola-issued GCS bearer token that renews itself through ``refresh`` (PUT files/{id}/refresh).

    google-auth calls ``before_request`` for every HTTP request; it renews when ``expired`` (less than ``margin``
    seconds left by ``clock``) and after a 401. Without a refresh callback the token is used as it is.
    """

    def __init__(
        self,
        token: str,
        expires_in: float | None,
        *,
        refresh: Callable[[], dict] | None = None,
        clock: Clock = time.monotonic,
        margin: float = REFRESH_MARGIN,
    ):
        super().__init__()
        self.token = token
        self._renew = refresh
        self._clock = clock
        self._margin = margin
        self._lock = threading.Lock()
        self._deadline = clock() + float(expires_in or DEFAULT_EXPIRES_IN)
        self._renewed_at: float | None = None
        self.refresh_count = 0

    @property
    def expired(self) -> bool:
        return self._renew is not None and self._clock() >= self._deadline - self._margin

    @property
    def valid(self) -> bool:
        return self.token is not None and not self.expired

    @property
    def expires_at(self) -> float:
        """When the token expires, by ``clock``."""
        return self._deadline

    def refresh(self, request: Any) -> None:
        with self._lock:
            if self._renew is None:
                raise auth_exceptions.RefreshError(
                    "The GCS access token of the file was rejected or expired and cannot be refreshed."
                )
            now = self._clock()
            if not self.expired and self._renewed_at is not None and now - self._renewed_at < _RECENT_REFRESH:
                return  # another thread renewed it a moment ago
            try:
                token, expires_in = token_from(self._renew())
            except TransferError as exc:
                raise auth_exceptions.RefreshError(exc.message) from exc
            except Exception as exc:
                raise auth_exceptions.RefreshError(f"Refreshing the GCS credentials failed: {exc}") from exc
            now = self._clock()
            self.token = token
            self._deadline = now + expires_in
            self._renewed_at = now
            self.refresh_count += 1


def parse_gs_url(url: str) -> tuple[str, str]:
    """``gs://bucket/key`` -> (bucket, key)."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "gs" or not parts.netloc or len(parts.path) < 2:
        raise TransferError(f"Unexpected manifest entry {url!r}: expected gs://bucket/key.")
    return parts.netloc, parts.path[1:]


class GcsErrors(base.StorageErrors):
    """Worth another attempt: network trouble, throttling, 5xx, a corrupted download (looks through wrappers)."""

    storage_name = "GCS"
    permanent_errors = (auth_exceptions.RefreshError, requests.HTTPError)
    transient_errors = (
        auth_exceptions.TransportError,
        *((_media_common.DataCorruption,) if _media_common is not None else ()),
        *base.NETWORK_ERRORS,  # a streamed read (open_range) cut mid-body surfaces from urllib3 unwrapped
        urllib3.exceptions.TimeoutError,
        requests.RequestException,  # but an HTTPError (permanent_errors)
    )

    def transient_answer(self, exc: BaseException) -> bool | None:
        if isinstance(exc, api_exceptions.GoogleAPICallError):
            return (exc.code or 0) in base.TRANSIENT_STATUS
        if _media_common is not None and isinstance(exc, _media_common.InvalidResponse):
            return getattr(exc.response, "status_code", 0) in base.TRANSIENT_STATUS
        return None


is_transient = GcsErrors().is_transient


def gcs_client(project: str | None, credentials: KbcTokenCredentials) -> storage.Client:
    # an explicit project: without one the client would look for Application Default Credentials' project
    return storage.Client(project=project or "keboola", credentials=credentials)


def _authorized(
    block: dict, refresh: Callable[[], dict] | None, clock: Clock, margin: float
) -> tuple[KbcTokenCredentials, storage.Client]:
    """The renewing token of a credentials block (``gcsCredentials`` / ``gcsUploadParams``) and a client on it."""
    credentials = KbcTokenCredentials(
        block["access_token"], block.get("expires_in"), refresh=refresh, clock=clock, margin=margin
    )
    return credentials, gcs_client(block.get("projectId"), credentials)


class _ProgressFile:
    """File proxy reporting its read position to ``progress`` (a re-sent chunk seeks back: negative delta)."""

    def __init__(self, stream: BinaryIO, progress: Progress):
        self._stream = stream
        self._progress = progress
        self._position = stream.tell()

    def _moved(self) -> None:
        position = self._stream.tell()
        if position != self._position:
            self._progress(position - self._position)
            self._position = position

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._moved()
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        result = self._stream.seek(offset, whence)
        self._moved()
        return result

    def tell(self) -> int:
        return self._stream.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


class _RawBody:
    """``read(n)`` of a streamed media GET, the bytes as stored (no content decoding)."""

    def __init__(self, response: requests.Response):
        self._response = response

    def read(self, size: int) -> bytes:
        return self._response.raw.read(size, decode_content=False)

    def close(self) -> None:
        self._response.close()


class _Crc32c:
    """The CRC32C of a whole object (``X-Goog-Hash`` of a GET from byte 0), fed every byte of a resumed read."""

    def __init__(self, expected: str, url: str):
        self._expected = expected
        self._url = url
        self._checksum = google_crc32c.Checksum()

    @classmethod
    def of(cls, response: requests.Response, url: str) -> _Crc32c | None:
        found = _CRC32C.search(response.headers.get("X-Goog-Hash") or "")
        if not found:
            return None
        try:
            if len(base64.b64decode(found.group(1), validate=True)) != 4:
                return None
        except ValueError:
            return None
        return cls(found.group(1), url)

    def update(self, data: bytes) -> None:
        self._checksum.update(data)

    def verify(self) -> None:
        actual = base64.b64encode(self._checksum.digest()).decode("ascii")
        if actual != self._expected:
            message = f"The CRC32C of {self._url} is {actual}; GCS announced {self._expected}."
            if _media_common is not None:
                raise _media_common.DataCorruption(None, message)
            raise ValueError(message)


class GcsReader(GcsErrors, base.StoredFileReader):
    manifest_errors = (api_exceptions.GoogleAPICallError,)
    parse_url = staticmethod(parse_gs_url)

    def __init__(
        self,
        file: dict,
        *,
        refresh: Callable[[], dict] | None = None,
        clock: Clock = time.monotonic,
        margin: float = REFRESH_MARGIN,
        chunk_size: int = CHUNK_SIZE,
    ):
        path = file.get("gcsPath") or {}
        credentials = file.get("gcsCredentials") or {}
        located = bool(path.get("bucket")) and "key" in path
        super().__init__(file, readable=located and bool(credentials.get("access_token")))
        self.bucket = path["bucket"]
        self.key = path["key"]
        self.chunk_size = chunk_size
        self.credentials, self.client = _authorized(credentials, refresh, clock, margin)
        self._http: AuthorizedSession | None = None
        self._session_lock = threading.Lock()

    def file_url(self) -> str:
        return f"gs://{self.bucket}/{self.key}"

    def read_manifest(self) -> bytes:
        return self.client.bucket(self.bucket).blob(self.key + "manifest").download_as_bytes(raw_download=True)

    def _blob(self, part: Slice) -> storage.Blob:
        bucket, key = parse_gs_url(part.url)
        return self.client.bucket(bucket).blob(key)

    def _session(self) -> AuthorizedSession:
        # the token's expiry is checked before every request (renewed through refresh) and once more after a 401
        with self._session_lock:
            if self._http is None:
                self._http = AuthorizedSession(self.credentials)
            return self._http

    def open_range(self, part: Slice, offset: int, version: str | None) -> RangeStream:
        blob = self._blob(part)
        url = f"{self.client.api_endpoint}/download/storage/v1{blob.path}"  # the media URL download_to_file uses
        params = {"alt": "media"}
        if version:
            params["ifGenerationMatch"] = version
        headers = {"Accept-Encoding": "gzip"}  # the bytes as stored: no decompressive transcoding
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self._session().get(url, params=params, headers=headers, stream=True, timeout=_READ_TIMEOUT)
        if response.status_code not in (200, 206):
            try:
                if version and response.status_code in base.CHANGED_STATUS:
                    raise SliceChanged(f"GCS answered {response.status_code} to ifGenerationMatch={version}")
                raise api_exceptions.from_http_response(response)
            finally:
                response.close()
        answered = response.headers
        stored = answered.get("X-Goog-Stored-Content-Length")
        size = base.object_size(offset, answered.get("Content-Length"), answered.get("Content-Range"), stored)
        checksum = _Crc32c.of(response, part.url) if offset == 0 else None
        return RangeStream(_RawBody(response), size, answered.get("X-Goog-Generation"), checksum)


class GcsWriter(GcsErrors, base.PreparedFileWriter):
    def __init__(
        self,
        prepared: dict,
        *,
        refresh: Callable[[], dict] | None = None,
        clock: Clock = time.monotonic,
        margin: float = REFRESH_MARGIN,
        chunk_size: int = CHUNK_SIZE,
    ):
        params = prepared.get("gcsUploadParams") or {}
        located = bool(params.get("bucket")) and "key" in params
        super().__init__(prepared, writable=located and bool(params.get("access_token")))
        self.bucket_name = params["bucket"]
        self.key = params["key"]
        self.chunk_size = chunk_size
        self.credentials, self.client = _authorized(params, refresh, clock, margin)
        self.bucket = self.client.bucket(self.bucket_name)

    def _blob(self, name: str | None) -> storage.Blob:
        return self.bucket.blob(self.key + (name or ""), chunk_size=self.chunk_size)

    def upload(self, path: Path, name: str | None, progress: Progress) -> None:
        size = Path(path).stat().st_size
        with open(path, "rb") as stream:
            # the key is fixed by files/prepare, so re-sending after a failure is safe (DEFAULT_RETRY)
            self._blob(name).upload_from_file(
                _ProgressFile(stream, progress),
                size=size,
                content_type="application/octet-stream",
                retry=DEFAULT_RETRY,
            )

    def upload_stream(self, stream: BinaryIO, name: str | None, progress: Progress, size: int | None = None) -> None:
        # unknown length: a resumable upload buffering one chunk_size chunk at a time
        with self._blob(name).open(
            "wb", chunk_size=self.chunk_size, ignore_flush=True, content_type="application/octet-stream"
        ) as out:
            while chunk := stream.read(1 * MB):
                out.write(chunk)
                progress(len(chunk))

    def slice_url(self, name: str) -> str:
        return f"gs://{self.bucket_name}/{self.key}{name}"

    def put_manifest(self, body: bytes) -> None:
        self._blob("manifest").upload_from_string(body, content_type="application/json", retry=DEFAULT_RETRY)


class GcsAdapter(base.StorageAdapter):
    provider = "gcp"

    def __init__(
        self,
        *,
        chunk_size: int = CHUNK_SIZE,
        clock: Clock = time.monotonic,
        refresh_margin: float = REFRESH_MARGIN,
        refresh_credentials: Callable[[Any], dict] | None = None,
    ):
        self.chunk_size = chunk_size
        self.clock = clock
        self.refresh_margin = refresh_margin
        if refresh_credentials is not None:
            self.refresh_credentials = refresh_credentials

    def _refresher(self, file: dict) -> Callable[[], dict] | None:
        file_id = file.get("id")
        refresh = self.refresh_credentials
        if refresh is None or file_id is None:
            return None
        return lambda: refresh(file_id)

    def _options(self, file: dict) -> dict[str, Any]:
        """The keyword arguments of a reader or writer of ``file``."""
        return {
            "refresh": self._refresher(file),
            "clock": self.clock,
            "margin": self.refresh_margin,
            "chunk_size": self.chunk_size,
        }

    def reader(self, file: dict) -> GcsReader:
        return GcsReader(file, **self._options(file))

    def writer(self, prepared: dict) -> GcsWriter:
        return GcsWriter(prepared, **self._options(prepared))
