"""StorageClient: everything the component needs from one Keboola project."""

from __future__ import annotations

from typing import Self

from .buckets import Buckets
from .files import Files
from .http import RetryPolicy, StorageHttp
from .jobs import Jobs
from .tables import Tables
from .transfer import TransferManager


class StorageClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        run_id: str | None = None,
        request_timeout: float = 120,
        job_timeout: float = 3600,
        max_workers: int = 4,
        retry: RetryPolicy | None = None,
    ):
        self.url = url.rstrip("/")
        self.http = StorageHttp(
            url,
            token,
            run_id=run_id,
            request_timeout=request_timeout,
            retry=retry or RetryPolicy(),
            pool_size=max_workers + 4,
        )
        self.jobs = Jobs(self.http, timeout=job_timeout)
        self.buckets = Buckets(self.http)
        self.tables = Tables(self.http, self.jobs)
        self.files = Files(self.http)
        self.transfer = TransferManager(max_workers, refresh_credentials=self.files.refresh)
        self._token_info: dict | None = None

    def verify_token(self) -> dict:
        """GET tokens/verify (cached): the token's permissions and the project (``owner``)."""
        if self._token_info is None:
            self._token_info = self.http.get("tokens/verify")
        return self._token_info

    @property
    def project_id(self) -> str:
        return str(self.verify_token()["owner"]["id"])  # an int or a string depending on the stack

    @property
    def provider(self) -> str | None:
        """File storage of the project: "aws" | "azure" | "gcp"."""
        return self.verify_token().get("owner", {}).get("fileStorageProvider")

    def preload_transfer(self) -> None:
        """Start loading the project's file-storage SDK in the background (see ``TransferManager.preload``)."""
        self.transfer.preload(self.provider)

    def close(self) -> None:
        self.transfer.close()
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
