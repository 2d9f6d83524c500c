"""AWS S3 adapter (boto3 / s3transfer).

The S3 client is built from the federated credentials of the file and its region, with no endpoint argument:
boto3 reads the standard ``AWS_ENDPOINT_URL_S3`` variable, which is how tests and the emulator reach a local S3.
Memory stays bounded: downloads stream to disk, file uploads read parts from disk, stream uploads (copies) of a
known length are one streamed PUT (no buffering), and those of unknown length hold at most
``max_in_memory_upload_chunks`` parts of ``multipart_chunksize`` bytes per slice.

Reads are one streamed GetObject per slice (``open_range``, read by ``base.ResumingReader``): a GET cut mid-body
is resumed with ``Range: bytes={offset}-`` and ``If-Match: {ETag of the first GET}``, so S3 answers 412 rather
than bytes of a newer object. Multipart file uploads re-send only a cut part (s3transfer retries the UploadPart).
The slice list, the manifest and the cause walk of ``is_transient`` are ``base``'s; this module declares S3's
transient errors (``S3Errors``) and makes the SDK calls.
"""

from __future__ import annotations

import threading
from contextlib import closing
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import boto3
import boto3.exceptions
import s3transfer.exceptions
import urllib3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    HTTPClientError,
    IncompleteReadError,
    ResponseStreamingError,
    UnseekableStreamError,
)

from ..errors import TransferError
from . import base
from .base import MB, Progress, RangeStream, Slice, SliceChanged

_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"}

# Multipart above 64 MiB with 64 MiB parts (10,000 parts = 640 GB); parts are read from disk as they are sent.
FILE_UPLOAD_CONFIG = TransferConfig(
    multipart_threshold=64 * MB, multipart_chunksize=64 * MB, max_concurrency=4, io_chunksize=1 * MB
)


def stream_upload_config(chunk_size: int = 8 * MB, chunks_in_memory: int = 2) -> TransferConfig:
    """Streams cannot be re-read, so s3transfer buffers their parts: with the defaults a running slice holds about
    40 MiB (8 MiB parts; 10,000 parts allow 80 GB per slice)."""
    config = TransferConfig(
        multipart_threshold=chunk_size, multipart_chunksize=chunk_size, max_concurrency=2, io_chunksize=1 * MB
    )
    config.max_in_memory_upload_chunks = chunks_in_memory  # s3transfer setting boto3 does not take in __init__
    return config


STREAM_UPLOAD_CONFIG = stream_upload_config()
CLIENT_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    max_pool_connections=32,
    connect_timeout=30,
    read_timeout=300,
)

# Streamed PUTs of a copy (S3 -> S3 slices): the body is the source GET stream, which cannot be rewound, so the
# payload is not hashed (UNSIGNED-PAYLOAD; S3 accepts it, TLS protects it), no checksum is computed up front, and
# botocore does not retry (it would have to rewind): the transfer manager retries the slice from a fresh GET.
STREAM_PUT_CLIENT_CONFIG = CLIENT_CONFIG.merge(
    Config(
        retries={"max_attempts": 1, "mode": "standard"},
        request_checksum_calculation="when_required",
        s3={"payload_signing_enabled": False},
    )
)
# A stream of known length up to this size is one PUT (S3's single-PUT limit is 5 GiB); larger ones go multipart.
STREAM_PUT_LIMIT = 4 * 2**30


_session: boto3.session.Session | None = None
_session_lock = threading.Lock()  # boto3 sessions are not thread-safe; the clients they make are


def s3_client(credentials: dict, region: str | None, config: Config = CLIENT_CONFIG):
    """An S3 client with the file's federated credentials; one shared session caches the service model."""
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(
            "s3",
            region_name=region,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials.get("SessionToken"),
            config=config,
        )


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or len(parts.path) < 2:
        raise TransferError(f"Unexpected manifest entry {url!r}: expected s3://bucket/key.")
    return parts.netloc, parts.path[1:]


class S3Errors(base.StorageErrors):
    """Worth another attempt: network trouble, throttling, S3 5xx (looks through s3transfer's wrappers)."""

    storage_name = "S3"
    transient_errors = (
        HTTPClientError,
        ConnectionClosedError,
        IncompleteReadError,
        ResponseStreamingError,
        # botocore cannot rewind a streamed PUT body to retry it: the slice is restarted from a new stream
        UnseekableStreamError,
        # a connection broken mid-body surfaces unwrapped when the stream is read below botocore's StreamingBody
        *base.NETWORK_ERRORS,
        urllib3.exceptions.TimeoutError,
        # s3transfer / boto3 gave up on a streaming read
        s3transfer.exceptions.RetriesExceededError,
        boto3.exceptions.RetriesExceededError,
    )

    def transient_answer(self, exc: BaseException) -> bool | None:
        if isinstance(exc, ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return status >= 500 or exc.response.get("Error", {}).get("Code") in _TRANSIENT_CODES
        return None


is_transient = S3Errors().is_transient


class S3Reader(S3Errors, base.StoredFileReader):
    manifest_errors = (ClientError,)
    parse_url = staticmethod(parse_s3_url)

    def __init__(self, file: dict):
        path = file.get("s3Path") or {}
        super().__init__(file, readable=bool(path.get("bucket")) and "credentials" in file)
        self.bucket = path["bucket"]
        self.key = path["key"]
        self.client = s3_client(file["credentials"], file.get("region"))

    def file_url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def read_manifest(self) -> bytes:
        body = self.client.get_object(Bucket=self.bucket, Key=self.key + "manifest")["Body"]
        with closing(body):
            return body.read()

    def open_range(self, part: Slice, offset: int, version: str | None) -> RangeStream:
        bucket, key = parse_s3_url(part.url)
        conditions = {}
        if offset:
            conditions["Range"] = f"bytes={offset}-"
        if version:
            conditions["IfMatch"] = version
        try:
            response = self.client.get_object(Bucket=bucket, Key=key, **conditions)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if version and (status in base.CHANGED_STATUS or code in ("PreconditionFailed", "InvalidRange")):
                raise SliceChanged(f"S3 answered {status} {code} to If-Match {version}") from exc
            raise
        # botocore StreamingBody: read(n), close(); checks its length at the end
        size = base.object_size(offset, response.get("ContentLength"), response.get("ContentRange"))
        return RangeStream(response["Body"], size, response.get("ETag"))


class S3Writer(S3Errors, base.PreparedFileWriter):
    def __init__(
        self,
        prepared: dict,
        file_config: TransferConfig = FILE_UPLOAD_CONFIG,
        stream_config: TransferConfig = STREAM_UPLOAD_CONFIG,
    ):
        params = prepared.get("uploadParams") or {}
        super().__init__(prepared, writable=bool(params.get("bucket")) and "credentials" in params)
        self.bucket = params["bucket"]
        self.key = params["key"]
        self.extra_args = {"ACL": params.get("acl") or "private"}
        if params.get("x-amz-server-side-encryption"):
            # encrypted uploads without the header are refused with 403 (contract section 3)
            self.extra_args["ServerSideEncryption"] = params["x-amz-server-side-encryption"]
        self.file_config = file_config
        self.stream_config = stream_config
        self.client = s3_client(params["credentials"], prepared.get("region") or params.get("region"))
        self._put_client = None
        self._params = params
        self._region = prepared.get("region") or params.get("region")

    def upload(self, path: Path, name: str | None, progress: Progress) -> None:
        self.client.upload_file(
            str(path),
            self.bucket,
            self.key + (name or ""),
            ExtraArgs=self.extra_args,
            Callback=progress,
            Config=self.file_config,
        )

    def upload_stream(self, stream: BinaryIO, name: str | None, progress: Progress, size: int | None = None) -> None:
        if size is not None and size <= STREAM_PUT_LIMIT:
            # one PUT streaming the source (memory: the socket buffers); multipart would buffer whole parts
            if self._put_client is None:
                self._put_client = s3_client(self._params["credentials"], self._region, STREAM_PUT_CLIENT_CONFIG)
            self._put_client.put_object(
                Bucket=self.bucket,
                Key=self.key + (name or ""),
                Body=_CountingReader(stream, progress),
                ContentLength=size,
                **self.extra_args,
            )
            return
        self.client.upload_fileobj(
            stream,
            self.bucket,
            self.key + (name or ""),
            ExtraArgs=self.extra_args,
            Callback=progress,
            Config=self.stream_config,
        )

    def slice_url(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key}{name}"

    def put_manifest(self, body: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self.key + "manifest", Body=body, ContentType="application/json", **self.extra_args
        )


class _CountingReader:
    """A non-seekable reader over a stream that reports the bytes read as progress (for a streamed PUT body)."""

    def __init__(self, stream: BinaryIO, progress: Progress):
        self._stream = stream
        self._progress = progress

    def read(self, amount: int = -1) -> bytes:
        data = self._stream.read(amount if amount is not None and amount >= 0 else None)
        if data:
            self._progress(len(data))
        return data


class S3Adapter(base.StorageAdapter):
    provider = "aws"

    def __init__(
        self,
        *,
        file_config: TransferConfig = FILE_UPLOAD_CONFIG,
        stream_config: TransferConfig = STREAM_UPLOAD_CONFIG,
    ):
        self.file_config = file_config
        self.stream_config = stream_config

    def reader(self, file: dict) -> S3Reader:
        return S3Reader(file)

    def writer(self, prepared: dict) -> S3Writer:
        return S3Writer(prepared, self.file_config, self.stream_config)

    def preload(self) -> None:
        # botocore parses the S3 service model (~1 MB of JSON) on the first client of a session; do it now
        s3_client({"AccessKeyId": "preload", "SecretAccessKey": "preload"}, None)
