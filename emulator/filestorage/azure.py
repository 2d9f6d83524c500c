"""Azure adapter: an Azurite blob service subprocess on a free loopback port, one container, azure-storage-blob.

Clients get what a real Azure stack hands out: a ``SASConnectionString`` (``BlobEndpoint=...;SharedAccessSignature=
...``) whose endpoint is the local Azurite, so a client using only the connection string reaches the emulator and
``env`` stays empty. The SAS tokens are real, signed with Azurite's well-known ``devstoreaccount1`` key, and Azurite
enforces them: upload credentials (``files/prepare``) may add/create/write blobs but not read or list, download
credentials (``files/{id}?federationToken=1``) may read/list but not write (keboola/cli#131: an upload with a
read-only SAS fails). Both are container SAS tokens (a sliced file spans many blobs), valid 12 hours.

Manifest entries use the real scheme ``azure://devstoreaccount1.blob.core.windows.net/{container}/{blob}``; a
client maps it to container + blob name and reaches them through the connection string's endpoint.

Azurite keeps blob data as extents under ``workdir/azurite`` (not in memory), and every transfer here streams, so
no file is ever held in memory on either side. Measured on Azurite 3.37 (loopback, 2 cores): Put Block runs at
30-50 MB/s whatever the block size or concurrency, a single streamed Put Blob at ~100 MB/s, so ``put_file`` sends
one Put Blob (up to ``SINGLE_PUT_LIMIT``; the SDK would read a single put into memory) and only larger files go
in blocks; downloads are the SDK's ranged GETs, two 8 MiB ranges in flight (~150 MB/s).
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import requests
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    generate_blob_sas,
    generate_container_sas,
)

from ..errors import ValidationError
from .base import FileStorage
from .process import ServerProcess, http_answers, start_server

ACCOUNT = "devstoreaccount1"
# Azurite's well-known development account key (public, documented by Microsoft; not a secret)
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "kbc-sapi-files"
ACCOUNT_HOST = f"{ACCOUNT}.blob.core.windows.net"
MB = 2**20
BLOCK_SIZE = 8 * MB
SINGLE_PUT_LIMIT = 4 * 2**30  # Put Blob takes up to 5000 MiB on current API versions
API_VERSION = "2021-08-06"
UPLOAD_PERMISSIONS = "acw"  # add, create, write: enough for block blobs (put block / put block list / put blob)
DOWNLOAD_PERMISSIONS = "rl"  # read, list

REPO_ROOT = Path(__file__).resolve().parents[2]  # emulator/filestorage/azure.py -> repository root
_CREDENTIALS_TTL = timedelta(hours=12)
_URL_TTL = timedelta(hours=1)

# Runs Azurite (node) as its child and stops it when told to (SIGTERM) or when our parent dies without calling
# stop() (SIGKILL, SIGTERM without atexit), so no orphaned Azurite keeps a port and its data directory.
_LAUNCHER = """
import os, signal, subprocess, sys, time
parent = os.getppid()
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)
def stop(*_):
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(8)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
while child.poll() is None:
    if os.getppid() != parent:
        stop()
    time.sleep(0.2)
sys.exit(child.returncode)
"""


def azurite_binary() -> Path | None:
    """``node_modules/.bin/azurite-blob`` of the repository (npm install), else ``azurite-blob`` on PATH."""
    local = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return local
    found = shutil.which("azurite-blob")
    return Path(found) if found else None


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


class AzuriteFileStorage(ServerProcess, FileStorage):
    provider = "azure"

    def __init__(self, workdir: Path, *, container: str = CONTAINER, azurite: Path | None = None):
        super().__init__(workdir)
        self.container = container
        self.azurite = Path(azurite) if azurite else azurite_binary()
        self.port: int | None = None
        self.endpoint: str | None = None  # http://127.0.0.1:PORT/devstoreaccount1
        self._proc: subprocess.Popen | None = None
        self._service: BlobServiceClient | None = None
        self._http: requests.Session | None = None
        self._lock = threading.Lock()

    # lifecycle -------------------------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / "azurite-blob.log"

    def start(self) -> None:
        with self._lock:
            if self._proc is not None:
                return
            if self.azurite is None or not self.azurite.exists():
                raise RuntimeError(
                    f"Azurite is not installed: expected {REPO_ROOT / 'node_modules/.bin/azurite-blob'} "
                    f"(run `npm ci` in the repository root) or azurite-blob on PATH"
                )
            self.workdir.mkdir(parents=True, exist_ok=True)
            location = self.workdir / "azurite"
            location.mkdir(exist_ok=True)
            azurite = str(self.azurite)
            self._proc, self.port = start_server(
                "Azurite",
                _LAUNCHER,
                lambda port: [
                    azurite,
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(port),
                    "--location",
                    str(location),
                    "--silent",
                    "--skipApiVersionCheck",  # newer SDKs send API versions Azurite does not know yet
                    "--loose",  # ignore headers/parameters Azurite does not implement
                    "--disableTelemetry",  # no network beyond loopback
                ],
                # any HTTP answer (403 without credentials) means it is serving
                ready=lambda port: http_answers(f"http://127.0.0.1:{port}/{ACCOUNT}?comp=list", any_status=True),
                log_path=self.log_path,
            )
            self.endpoint = f"http://127.0.0.1:{self.port}/{ACCOUNT}"
            self._service = BlobServiceClient.from_connection_string(
                f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.endpoint};",
                **_client_options(),
            )
            self._http = requests.Session()
            try:
                self._service.create_container(self.container)
            except ResourceExistsError:
                pass
            self.env = {}  # the SAS connection string carries the endpoint
            atexit.register(self.stop)

    def _close_clients(self) -> None:
        if self._service is not None:
            self._service.close()
            self._service = None
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def service(self) -> BlobServiceClient:
        if self._service is None:
            raise RuntimeError("AzuriteFileStorage is not started")
        return self._service

    # credentials -----------------------------------------------------------------------------------------------
    def connection_string(self, permissions: str, ttl: timedelta = _CREDENTIALS_TTL) -> tuple[str, str]:
        """(SASConnectionString with a container SAS of ``permissions``, its expiration)."""
        if self.endpoint is None:
            raise RuntimeError("AzuriteFileStorage is not started")
        now = datetime.now(UTC)
        expiry = now + ttl
        sas = generate_container_sas(
            ACCOUNT,
            self.container,
            account_key=ACCOUNT_KEY,
            permission=ContainerSasPermissions.from_string(permissions),
            expiry=expiry,
            start=now - timedelta(minutes=5),  # tolerate clock skew, as real stacks do
            protocol="https,http",
        )
        return f"BlobEndpoint={self.endpoint};SharedAccessSignature={sas}", _iso(expiry)

    # API response blocks ---------------------------------------------------------------------------------------
    def prepare_block(self, key: str, *, name: str, sliced: bool, encrypted: bool) -> dict:
        # Azure files are always encrypted and private; isEncrypted is ignored (contract section 3)
        connection_string, expiration = self.connection_string(UPLOAD_PERMISSIONS)
        return {
            "absUploadParams": {
                "blobName": key,
                "accountName": ACCOUNT,
                "container": self.container,
                "absCredentials": {"SASConnectionString": connection_string, "expiration": expiration},
            }
        }

    def detail_block(self, key: str, *, sliced: bool) -> dict:
        connection_string, expiration = self.connection_string(DOWNLOAD_PERMISSIONS)
        return {
            "absPath": {"container": self.container, "name": key},
            "absCredentials": {"SASConnectionString": connection_string, "expiration": expiration},
        }

    def url(self, key: str, *, sliced: bool) -> str:
        return self._blob_url(key + "manifest" if sliced else key, BlobSasPermissions(read=True))

    def _blob_url(self, blob: str, permission: BlobSasPermissions, ttl: timedelta = _URL_TTL) -> str:
        """Blob URL with a blob SAS (what real stacks hand out as a file's ``url``)."""
        if self.endpoint is None:
            raise RuntimeError("AzuriteFileStorage is not started")
        now = datetime.now(UTC)
        sas = generate_blob_sas(
            ACCOUNT,
            self.container,
            blob,
            account_key=ACCOUNT_KEY,
            permission=permission,
            expiry=now + ttl,
            start=now - timedelta(minutes=5),
        )
        return f"{self.endpoint}/{self.container}/{quote(blob, safe='/')}?{sas}"

    def entry_url(self, key: str) -> str:
        return f"azure://{ACCOUNT_HOST}/{self.container}/{key}"

    def entry_key(self, url: str) -> str:
        """``azure://{account}.blob.core.windows.net/{container}/{blob}``; ``https://`` of the same host and the
        emulator's own path-style URLs (``http://127.0.0.1:PORT/devstoreaccount1/{container}/{blob}``) also pass."""
        parts = urlsplit(url) if isinstance(url, str) else None
        path = None
        if parts is not None and parts.netloc.lower() == ACCOUNT_HOST and parts.scheme in ("azure", "https", "http"):
            path = parts.path
        elif parts is not None and self.endpoint and url.startswith(self.endpoint + "/"):
            path = parts.path[len(f"/{ACCOUNT}") :]
        prefix = f"/{self.container}/"
        if path is None or not path.startswith(prefix) or len(path) == len(prefix):
            raise ValidationError(
                f'Invalid manifest entry url "{url}": expected a file in "azure://{ACCOUNT_HOST}{prefix}"',
                code="storage.importFileMissing",
            )
        key = path[len(prefix) :]
        return key if parts.scheme == "azure" else unquote(key)

    # objects ---------------------------------------------------------------------------------------------------
    def _blob(self, key: str):
        return self.service.get_blob_client(self.container, key)

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        try:
            return int(self._blob(key).get_blob_properties().size)
        except ResourceNotFoundError:
            return None

    def put_file(self, key: str, path: Path) -> None:
        size = Path(path).stat().st_size
        with open(path, "rb") as stream:
            if size > SINGLE_PUT_LIMIT:
                # blocks of BLOCK_SIZE read from the file as they are sent (max_concurrency blocks in memory)
                self._blob(key).upload_blob(stream, length=size, overwrite=True, max_concurrency=4)
                return
            if self._http is None:
                raise RuntimeError("AzuriteFileStorage is not started")
            # one Put Blob whose body streams from the file (requests sends a file object in small reads)
            response = self._http.put(
                self._blob_url(key, BlobSasPermissions(create=True, write=True)),
                data=stream if size else b"",  # requests would send an empty file chunked
                headers={
                    "x-ms-blob-type": "BlockBlob",
                    "x-ms-version": API_VERSION,
                    "Content-Length": str(size),
                    "Content-Type": "application/octet-stream",
                },
                timeout=(10, 600),
            )
        if response.status_code != 201:
            raise RuntimeError(f"Azurite refused Put Blob of {key}: {response.status_code} {response.text[:300]}")

    def put_bytes(self, key: str, data: bytes) -> None:
        self._blob(key).upload_blob(data, overwrite=True)

    def fetch(self, key: str, dest: Path) -> None:
        try:
            downloader = self._blob(key).download_blob(max_concurrency=2)
        except ResourceNotFoundError:
            raise FileNotFoundError(f"azure://{ACCOUNT_HOST}/{self.container}/{key}") from None
        with open(dest, "wb") as out:
            downloader.readinto(out)  # ranged GETs of BLOCK_SIZE, 2 in flight, written in place

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._blob(key).download_blob().readall()
        except ResourceNotFoundError:
            raise FileNotFoundError(f"azure://{ACCOUNT_HOST}/{self.container}/{key}") from None


def _client_options() -> dict:
    return {
        "max_block_size": BLOCK_SIZE,
        "max_single_put_size": BLOCK_SIZE,
        "max_single_get_size": BLOCK_SIZE,
        "max_chunk_get_size": BLOCK_SIZE,
        "connection_timeout": 10,
        "read_timeout": 300,
    }
