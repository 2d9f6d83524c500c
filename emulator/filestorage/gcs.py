"""GCP adapter: gcp-storage-emulator in a subprocess (``gcs_server.py``) on a free loopback port, one bucket,
google-cloud-storage.

Clients reach the server with plain google-cloud-storage: ``STORAGE_EMULATOR_HOST`` (from ``env``) selects the
endpoint, and ``files/prepare`` / ``files/{id}?federationToken=1`` hand out OAuth-shaped bearer tokens
(``gcsUploadParams`` / ``gcsCredentials``, ``expires_in: 3599``) that the server checks, unlike stock
gcp-storage-emulator, which ignores authentication:

- a token is ``ya29.kbc.<claims>.<HMAC>`` signed with a per-run secret shared with the server process; the claims
  are the bucket, the key prefix of the file (a sliced file's slices and manifest share it), read or read/write,
  and the expiry (one hour, so clients must refresh; ``PUT files/{id}/refresh`` issues a new one);
- a missing, forged or expired token gets 401, a read token writing or a token used outside its prefix gets 403;
- ``url()`` is a V4-style signed URL (``X-Goog-Signature`` = HMAC of method, path and expiry), readable with plain
  ``requests``.

Objects live as files under ``workdir/gcs`` (the stock disk layout), never in memory.
"""

from __future__ import annotations

import atexit
import os
import secrets
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from ..errors import ValidationError
from .base import FileStorage
from .gcs_server import SECRET_ENV, mint_token, url_signature
from .process import ServerProcess, http_answers, start_server

BUCKET = "kbc-sapi-files"
PROJECT = "kbc-emulator"
MB = 2**20
TOKEN_TTL = 3600  # seconds; "expires_in" says 3599 like the real API
EXPIRES_IN = TOKEN_TTL - 1
UPLOAD_CHUNK = 32 * MB  # resumable-upload chunk of put_file (one chunk in memory)

REPO_ROOT = Path(__file__).resolve().parents[2]  # emulator/filestorage/gcs.py -> repository root
_URL_TTL = 3600
_ADMIN_TTL = 10 * 365 * 24 * 3600

# Imports the server module in a fresh interpreter without running emulator/__init__.py (which loads the whole
# emulator), then runs serve(). Only the standard library and gcp_storage_emulator are loaded there.
_LAUNCHER = """
import sys, types
root = sys.argv[1]
for name, sub in (("emulator", "emulator"), ("emulator.filestorage", "emulator/filestorage")):
    module = types.ModuleType(name)
    module.__path__ = [root + "/" + sub]
    sys.modules[name] = module
from emulator.filestorage.gcs_server import serve
serve(sys.argv[2:])
"""


# the FileStorage -----------------------------------------------------------------------------------------------------
class GcsEmulatorFileStorage(ServerProcess, FileStorage):
    provider = "gcp"

    def __init__(self, workdir: Path, *, bucket: str = BUCKET, project: str = PROJECT, upload_chunk=UPLOAD_CHUNK):
        super().__init__(workdir)
        self.bucket = bucket
        self.project = project
        self.upload_chunk = upload_chunk
        self.port: int | None = None
        self.endpoint: str | None = None
        self._secret = secrets.token_bytes(32)
        self._proc: subprocess.Popen | None = None
        self._client = None
        self._lock = threading.Lock()

    # lifecycle -------------------------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / "gcs-emulator.log"

    def start(self) -> None:
        with self._lock:
            if self._proc is not None:
                return
            self.workdir.mkdir(parents=True, exist_ok=True)
            data_dir = self.workdir / "gcs"
            data_dir.mkdir(exist_ok=True)
            proc_env = dict(os.environ)
            proc_env.pop("STORAGE_EMULATOR_HOST", None)
            proc_env.update({SECRET_ENV: self._secret.hex(), "PYTHONUNBUFFERED": "1"})
            self._proc, self.port = start_server(
                "GCS emulator",
                _LAUNCHER,
                lambda port: [
                    str(REPO_ROOT),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(data_dir),
                    "--bucket",
                    self.bucket,
                ],
                ready=lambda port: http_answers(f"http://127.0.0.1:{port}/"),
                log_path=self.log_path,
                env=proc_env,
            )
            self.endpoint = f"http://127.0.0.1:{self.port}"
            self.env = {"STORAGE_EMULATOR_HOST": self.endpoint}
            atexit.register(self.stop)

    def _close_clients(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def client(self):
        """google-cloud-storage client of the emulator with an admin token (not tied to STORAGE_EMULATOR_HOST)."""
        if self.endpoint is None:
            raise RuntimeError("GcsEmulatorFileStorage is not started")
        with self._lock:
            if self._client is None:
                from google.cloud import storage  # heavy import (~1 s), only when the storage is used
                from google.oauth2.credentials import Credentials

                token = mint_token(self._secret, bucket=self.bucket, prefix="", mode="admin", ttl=_ADMIN_TTL)
                self._client = storage.Client(
                    project=self.project,
                    credentials=Credentials(token=token),
                    client_options={"api_endpoint": self.endpoint},
                )
            return self._client

    # credentials -----------------------------------------------------------------------------------------------
    def access_token(self, prefix: str, *, write: bool, ttl: float = TOKEN_TTL) -> str:
        """A bearer token the server accepts for objects starting with ``prefix`` (tests may shorten ``ttl``)."""
        return mint_token(self._secret, bucket=self.bucket, prefix=prefix, mode="w" if write else "r", ttl=ttl)

    # API response blocks ---------------------------------------------------------------------------------------
    def prepare_block(self, key: str, *, name: str, sliced: bool, encrypted: bool) -> dict:
        # GCS files are always encrypted and private; isEncrypted is ignored (contract section 3)
        return {
            "gcsUploadParams": {
                "projectId": self.project,
                "bucket": self.bucket,
                "key": key,
                "access_token": self.access_token(key, write=True),
                "expires_in": EXPIRES_IN,
                "token_type": "Bearer",
            }
        }

    def detail_block(self, key: str, *, sliced: bool) -> dict:
        # called again by PUT files/{id}/refresh: every call issues a new token with a new expiry
        return {
            "gcsPath": {"bucket": self.bucket, "key": key},
            "gcsCredentials": {
                "projectId": self.project,
                "access_token": self.access_token(key, write=False),
                "token_type": "Bearer",
                "expires_in": EXPIRES_IN,
            },
        }

    def url(self, key: str, *, sliced: bool) -> str:
        if self.endpoint is None:
            raise RuntimeError("GcsEmulatorFileStorage is not started")
        name = key + "manifest" if sliced else key
        date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        expires = str(_URL_TTL)
        query = {
            "X-Goog-Algorithm": "GOOG4-HMAC-SHA256",
            "X-Goog-Credential": f"{self.project}/{date[:8]}/auto/storage/goog4_request",
            "X-Goog-Date": date,
            "X-Goog-Expires": expires,
            "X-Goog-SignedHeaders": "host",
            "X-Goog-Signature": url_signature(self._secret, self.bucket, name, date, expires),
        }
        return f"{self.endpoint}/{self.bucket}/{quote(name, safe='/')}?{urlencode(query)}"

    def entry_url(self, key: str) -> str:
        return f"gs://{self.bucket}/{key}"

    def entry_key(self, url: str) -> str:
        prefix = f"gs://{self.bucket}/"
        if not isinstance(url, str) or not url.startswith(prefix) or len(url) == len(prefix):
            raise ValidationError(
                f'Invalid manifest entry url "{url}": expected a file in "{prefix}"',
                code="storage.importFileMissing",
            )
        return url[len(prefix) :]

    # objects ---------------------------------------------------------------------------------------------------
    def _blob(self, key: str):
        return self.client.bucket(self.bucket).blob(key)

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        blob = self.client.bucket(self.bucket).get_blob(key)
        return None if blob is None else int(blob.size)

    def put_file(self, key: str, path: Path) -> None:
        # resumable upload: one chunk of upload_chunk bytes in memory at a time, appended on disk by the server
        blob = self._blob(key)
        blob.chunk_size = self.upload_chunk
        blob.upload_from_filename(str(path), content_type="application/octet-stream")

    def put_bytes(self, key: str, data: bytes) -> None:
        self._blob(key).upload_from_string(data, content_type="application/octet-stream")

    def fetch(self, key: str, dest: Path) -> None:
        from google.api_core.exceptions import NotFound

        try:
            # one streamed GET (8 KiB reads into dest), CRC32C checked against the server's X-Goog-Hash
            self._blob(key).download_to_filename(str(dest), raw_download=True)
        except NotFound:
            raise FileNotFoundError(f"gs://{self.bucket}/{key}") from None

    def read_bytes(self, key: str) -> bytes:
        from google.api_core.exceptions import NotFound

        try:
            return self._blob(key).download_as_bytes(raw_download=True)
        except NotFound:
            raise FileNotFoundError(f"gs://{self.bucket}/{key}") from None


# the server (runs in the subprocess) ---------------------------------------------------------------------------------
