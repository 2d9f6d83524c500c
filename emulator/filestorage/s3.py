"""AWS adapter: a moto S3 server subprocess on a free loopback port, one bucket, boto3 towards it.

Clients reach the server with plain boto3: ``AWS_ENDPOINT_URL_S3`` (from ``env``) selects the endpoint, and the
federation credentials of ``files/prepare`` / ``files/{id}?federationToken=1`` are STS-shaped dummies that moto
accepts. moto does not enforce IAM, so the credential scoping of the real API (prefix-only listing, exact-key
writes, mandatory SSE on encrypted uploads) is not checked here.

Performance notes on moto 5.2 (measured on loopback with a 1 GiB file: put_file ~90-150 MB/s, fetch ~175-320 MB/s):
moto keeps every object in a ``SpooledTemporaryFile`` (RAM up to ``MOTO_S3_DEFAULT_KEY_BUFFER_SIZE`` bytes, then an
unlinked file in ``TMPDIR``, which is pointed under ``workdir``), but it holds a whole request/response body in RAM
while serving it (peak ~2x the object size per transfer in flight). A GET materialises the whole object, also for a
ranged GET, so downloads are one streamed GET (boto3's parallel ranged GETs ran at ~9 MB/s). Multipart uploads are
re-assembled in memory and were slower than one PUT at any part size, so they are used only above 2 GiB.
"""

from __future__ import annotations

import atexit
import base64
import os
import secrets
import shutil
import string
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from ..errors import ValidationError
from .base import FileStorage
from .process import ServerProcess, http_answers, start_server

BUCKET = "kbc-sapi-files"
REGION = "us-east-1"
MB = 2**20

_CREDENTIALS_TTL = timedelta(hours=12)
_URL_TTL_SECONDS = 3600
_COPY_CHUNK = 4 * MB
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}

# `python -m moto.server` plus a watchdog: the server exits by itself when its parent dies without calling stop()
# (SIGKILL, SIGTERM without atexit), so no orphaned moto keeps a port and gigabytes of temp files.
_LAUNCHER = """
import os, sys, threading, time
parent = os.getppid()
def _watch():
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
from moto.core.responses import BaseResponse
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
# This server serves S3 in one region only. moto guesses the service and the region by parsing the Authorization
# header as SigV4; the emulator signs with SigV2, whose base64 signature sometimes looks enough like SigV4 ("/",
# "AWS4") to break the guess with a 500. Both answers are fixed here instead.
_region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
_host = "s3." + _region + ".amazonaws.com"
DomainDispatcherApplication.infer_service_region_host = lambda self, environ, path: _host
BaseResponse.get_region_from_url = lambda self, request, full_url: _region
from moto.server import main
main(sys.argv[1:])
"""


def _random_token(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def federation_credentials(now: datetime | None = None) -> dict[str, str]:
    """STS-shaped temporary credentials (random; moto accepts any), valid 12 hours."""
    now = now or datetime.now(UTC)
    return {
        "AccessKeyId": "ASIA" + _random_token(string.ascii_uppercase + string.digits, 16),
        "SecretAccessKey": _random_token(string.ascii_letters + string.digits + "+/", 40),
        "SessionToken": "FwoGZXIvYXdzE" + base64.b64encode(secrets.token_bytes(240)).decode("ascii"),
        "Expiration": (now + _CREDENTIALS_TTL).replace(microsecond=0).isoformat(),
    }


class S3FileStorage(ServerProcess, FileStorage):
    provider = "aws"

    def __init__(
        self,
        workdir: Path,
        *,
        bucket: str = BUCKET,
        region: str = REGION,
        upload_config: TransferConfig | None = None,
    ):
        super().__init__(workdir)
        self.bucket = bucket
        self.region = region
        self.port: int | None = None
        self.endpoint: str | None = None
        self._proc: subprocess.Popen | None = None
        self._client = None
        self._signer = None
        self._lock = threading.Lock()
        # One PUT up to 2 GiB (the API's single-file limit is 2,048,000,000 bytes): with moto a PUT of 1 GiB ran at
        # ~90-150 MB/s, multipart at 35-70 MB/s whatever the part size/concurrency (see module docstring).
        self.upload_config = upload_config or TransferConfig(
            multipart_threshold=2 * 2**30, multipart_chunksize=64 * MB, max_concurrency=4, io_chunksize=1 * MB
        )

    # lifecycle -------------------------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / "moto-s3.log"

    def start(self) -> None:
        with self._lock:
            if self._proc is not None:
                return
            self.workdir.mkdir(parents=True, exist_ok=True)
            tmpdir = self.workdir / "s3-data"
            tmpdir.mkdir(exist_ok=True)
            proc_env = dict(os.environ)
            for name in [n for n in proc_env if n.startswith("AWS_")]:
                del proc_env[name]
            proc_env.update(
                {
                    # objects above this size live in (unlinked) temp files under TMPDIR instead of RAM
                    "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(1 * MB),
                    "TMPDIR": str(tmpdir),
                    "AWS_ACCESS_KEY_ID": "emulator",
                    "AWS_SECRET_ACCESS_KEY": "emulator",
                    "AWS_DEFAULT_REGION": self.region,
                    "PYTHONUNBUFFERED": "1",
                }
            )
            self._proc, self.port = start_server(
                "moto S3 server",
                _LAUNCHER,
                lambda port: ["-H", "127.0.0.1", "-p", str(port)],
                ready=lambda port: http_answers(f"http://127.0.0.1:{port}/"),
                log_path=self.log_path,
                env=proc_env,
            )
            self.endpoint = f"http://127.0.0.1:{self.port}"
            self._client = self._make_client(v4=False)
            self._signer = self._make_client(v4=True)
            self._client.create_bucket(Bucket=self.bucket)
            self.env = {
                "AWS_ENDPOINT_URL_S3": self.endpoint,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
            atexit.register(self.stop)

    def _close_clients(self) -> None:
        for client in (self._client, self._signer):
            if client is not None:
                client.close()
        self._client = self._signer = None

    def sibling(self, bucket: str) -> S3FileStorage:
        """The file storage of another stack on the same S3 endpoint: real AWS stacks share S3 and differ by
        bucket, so one client process (one AWS_ENDPOINT_URL_S3) reaches both. The sibling owns no process."""
        other = S3FileStorage(self.workdir, bucket=bucket, region=self.region, upload_config=self.upload_config)
        other.port, other.endpoint, other.env = self.port, self.endpoint, dict(self.env)
        other._client = other._make_client(v4=False)
        other._signer = other._make_client(v4=True)
        other._client.create_bucket(Bucket=bucket)
        return other

    def _make_client(self, *, v4: bool):
        """boto3 client of the moto server. Data requests are signed with the legacy "s3" (SigV2) scheme: moto
        only checks that a signature is present, and SigV4 over plain HTTP hashes every payload (SHA-256 of the
        whole file, about half the PUT rate). The SigV4 client only presigns URLs (X-Amz-* like real S3)."""
        session = boto3.session.Session(
            aws_access_key_id="emulator", aws_secret_access_key="emulator", region_name=self.region
        )
        return session.client(
            "s3",
            endpoint_url=self.endpoint,
            config=Config(
                max_pool_connections=32,
                s3={"addressing_style": "path"},
                signature_version="s3v4" if v4 else "s3",
                retries={"max_attempts": 3, "mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                connect_timeout=10,
                read_timeout=300,
            ),
        )

    @property
    def client(self):
        if self._client is None:
            raise RuntimeError("S3FileStorage is not started")
        return self._client

    # API response blocks ---------------------------------------------------------------------------------------
    def prepare_block(self, key: str, *, name: str, sliced: bool, encrypted: bool) -> dict:
        params: dict = {
            "key": key,
            "bucket": self.bucket,
            "acl": "private",
            "credentials": federation_credentials(),
        }
        if encrypted:
            params["x-amz-server-side-encryption"] = "AES256"
        return {"uploadParams": params, "region": self.region}

    def detail_block(self, key: str, *, sliced: bool) -> dict:
        return {
            "s3Path": {"bucket": self.bucket, "key": key},
            "credentials": federation_credentials(),
            "region": self.region,
        }

    def url(self, key: str, *, sliced: bool) -> str:
        if self._signer is None:
            raise RuntimeError("S3FileStorage is not started")
        return self._signer.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key + "manifest" if sliced else key},
            ExpiresIn=_URL_TTL_SECONDS,
        )

    def entry_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def entry_key(self, url: str) -> str:
        prefix = f"s3://{self.bucket}/"
        if not isinstance(url, str) or not url.startswith(prefix) or len(url) == len(prefix):
            raise ValidationError(
                f'Invalid manifest entry url "{url}": expected a file in "{prefix}"',
                code="storage.importFileMissing",
            )
        return url[len(prefix) :]

    # objects ---------------------------------------------------------------------------------------------------
    def _head(self, key: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else int(head["ContentLength"])

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(
            str(path),
            self.bucket,
            key,
            ExtraArgs={"ServerSideEncryption": "AES256"},
            Config=self.upload_config,
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ServerSideEncryption="AES256")

    def _get(self, key: str) -> dict:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                raise FileNotFoundError(f"s3://{self.bucket}/{key}") from None
            raise

    def fetch(self, key: str, dest: Path) -> None:
        # One GET streamed to disk in 4 MiB chunks (~250 MB/s). boto3's download_file splits into ranged GETs,
        # and moto materialises the whole object for each range (~9 MB/s on 1 GiB).
        resp = self._get(key)
        with resp["Body"] as body, open(dest, "wb") as out:
            shutil.copyfileobj(body, out, _COPY_CHUNK)

    def read_bytes(self, key: str) -> bytes:
        with self._get(key)["Body"] as body:
            return body.read()
