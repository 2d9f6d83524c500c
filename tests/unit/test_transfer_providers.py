"""The provider adapters' parts that need no server: manifest url parsing, the transient errors each declares,
GCS token renewal. The adapters against the emulator's file storages: tests/integration/."""

from __future__ import annotations

import pytest
import requests
import s3transfer.exceptions
import urllib3
from azure.core.exceptions import HttpResponseError, IncompleteReadError, ServiceRequestError
from botocore.exceptions import ClientError, ConnectionClosedError, UnseekableStreamError
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions

from storage_api import TransferError
from storage_api.transfer.azure import AzureReader, parse_abs_url
from storage_api.transfer.azure import is_transient as azure_transient
from storage_api.transfer.gcs import KbcTokenCredentials, parse_gs_url, token_from
from storage_api.transfer.gcs import is_transient as gcs_transient
from storage_api.transfer.s3 import S3Reader, S3Writer
from storage_api.transfer.s3 import is_transient as s3_transient


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# url parsing ----------------------------------------------------------------------------------------------------
def test_parse_abs_url_accepts_azure_https_and_path_style_urls():
    assert parse_abs_url("azure://acct.blob.core.windows.net/kbc-files/exp-2/1/a.csv0000_part_00") == (
        "kbc-files",
        "exp-2/1/a.csv0000_part_00",
    )
    assert parse_abs_url("https://acct.blob.core.windows.net/kbc-files/exp-2/a%20b.csv") == (
        "kbc-files",
        "exp-2/a b.csv",
    )
    assert parse_abs_url("http://127.0.0.1:10000/devstoreaccount1/kbc-files/x/y") == ("kbc-files", "x/y")
    for bad in ("s3://bucket/key", "azure://acct.blob.core.windows.net/only-container", "gs://b/k", ""):
        with pytest.raises(TransferError):
            parse_abs_url(bad)


def test_parse_gs_url():
    assert parse_gs_url("gs://kbc-files/exp-2/1/a.csv0000_part_00") == ("kbc-files", "exp-2/1/a.csv0000_part_00")
    for bad in ("s3://bucket/key", "gs://bucket", "gs://bucket/", "https://storage.googleapis.com/b/k"):
        with pytest.raises(TransferError):
            parse_gs_url(bad)


# transient errors (declared per provider, walked by base.StorageErrors) -----------------------------------------
def test_azure_transient_errors():
    assert azure_transient(ServiceRequestError("connection refused"))
    busy, denied = HttpResponseError("busy"), HttpResponseError("denied")
    busy.status_code, denied.status_code = 503, 403
    assert azure_transient(busy) and not azure_transient(denied)
    cut = IncompleteReadError("body cut")  # an HttpResponseError: transient whatever its status
    cut.status_code = 200
    assert azure_transient(cut)
    assert azure_transient(_wrapped(requests.exceptions.ChunkedEncodingError()))


def test_s3_transient_errors():
    def client_error(status: int, code: str) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    assert s3_transient(client_error(503, "ServiceUnavailable")) and s3_transient(client_error(400, "SlowDown"))
    assert not s3_transient(client_error(403, "AccessDenied")) and not s3_transient(client_error(404, "NoSuchKey"))
    assert s3_transient(ConnectionClosedError(endpoint_url="http://s3"))
    assert s3_transient(_wrapped(urllib3.exceptions.ProtocolError("Connection broken")))
    assert s3_transient(_wrapped(s3transfer.exceptions.RetriesExceededError(ValueError())))
    assert s3_transient(UnseekableStreamError(stream_object="body"))
    assert not s3_transient(ValueError("bad"))
    reader = S3Reader.__new__(S3Reader)  # readers and writers declare the same errors
    assert reader.is_transient(client_error(500, "InternalError")) and not reader.is_transient(ValueError())


def test_gcs_transient_errors():
    assert gcs_transient(api_exceptions.ServiceUnavailable("busy")) and gcs_transient(
        api_exceptions.TooManyRequests("")
    )
    assert not gcs_transient(api_exceptions.Forbidden("no")) and not gcs_transient(api_exceptions.NotFound("no"))
    refresh = auth_exceptions.RefreshError("cannot be refreshed")
    refresh.__cause__ = ConnectionError()
    assert not gcs_transient(refresh)  # not retried, whatever it wraps
    assert gcs_transient(auth_exceptions.TransportError("reset"))
    assert gcs_transient(requests.ConnectionError()) and not gcs_transient(requests.HTTPError("403"))
    assert gcs_transient(_wrapped(urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out")))


def _wrapped(inner: BaseException) -> Exception:
    outer = RuntimeError("wrapped")
    outer.__cause__ = inner
    return outer


def test_azure_reader_uses_the_connection_string_account_for_a_whole_file():
    file = {
        "id": 1,
        "isSliced": False,
        "absPath": {"container": "c", "name": "n.csv"},
        "absCredentials": {
            "SASConnectionString": "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=x&sig=y",
            "expiration": "2030-01-01T00:00:00+0000",
        },
    }
    (part,) = AzureReader(file).slices()
    assert part.url == "azure://acct.blob.core.windows.net/c/n.csv"


def test_s3_files_without_credentials_say_the_stack_gave_none():
    with pytest.raises(
        TransferError, match=r"gave no S3 credentials \(files/\{id\}\?federationToken=1\) for file 7; run the job again"
    ):
        S3Reader({"id": 7, "s3Path": {"bucket": "b", "key": "k"}})
    with pytest.raises(
        TransferError, match=r"gave no S3 upload parameters \(files/prepare with federationToken\) for file 8"
    ):
        S3Writer({"id": 8, "uploadParams": {"bucket": "b", "key": "k"}})


# GCS credential refresh -----------------------------------------------------------------------------------------
def test_token_credentials_renew_only_when_less_than_the_margin_remains():
    clock = FakeClock()
    answers = iter([{"gcsUploadParams": {"access_token": "second", "expires_in": 3599}}])
    calls = []

    def renew():
        calls.append(clock.now)
        return next(answers)

    credentials = KbcTokenCredentials("first", 3599, refresh=renew, clock=clock, margin=300)
    clock.now += 3599 - 301
    assert credentials.valid and credentials.token == "first"
    clock.now += 2  # 299 s left
    assert credentials.expired
    credentials.before_request(None, "GET", "http://x", {})
    assert calls == [clock.now] and credentials.token == "second" and credentials.valid
    assert credentials.expires_at == clock.now + 3599


def test_token_without_refresh_callback_is_used_as_is():
    clock = FakeClock()
    credentials = KbcTokenCredentials("only", 3599, clock=clock)
    clock.now += 10_000
    headers = {}
    credentials.before_request(None, "GET", "http://x", headers)
    assert headers["authorization"] == "Bearer only"


def test_token_from_reads_upload_params_credentials_or_a_bare_block():
    assert token_from({"gcsUploadParams": {"access_token": "a", "expires_in": 100}}) == ("a", 100.0)
    assert token_from({"gcsCredentials": {"access_token": "b"}}) == ("b", 3599.0)
    assert token_from({"access_token": "c", "expires_in": 60}) == ("c", 60.0)
    with pytest.raises(TransferError):
        token_from({"id": 1})
