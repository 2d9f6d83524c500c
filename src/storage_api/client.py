"""StorageClient: everything the component needs from one Keboola project."""

from __future__ import annotations

from typing import Self

from .branches import Branch, BranchReads, find_branch, storage_model
from .buckets import Buckets
from .errors import StorageApiError
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
        self.reads = BranchReads()
        self.buckets = Buckets(self.http, self.reads)
        self.tables = Tables(self.http, self.jobs, self.reads)
        self.files = Files(self.http, self.reads)
        self.transfer = TransferManager(max_workers, refresh_credentials=self.files.refresh)
        self._token_info: dict | None = None

    def verify_token(self) -> dict:
        """GET tokens/verify (cached): the token's permissions and the project (``owner``)."""
        if self._token_info is None:
            self._token_info = self.http.get("tokens/verify", plain=True)
        return self._token_info

    @property
    def branch(self) -> Branch:
        return self.http.branch

    def use_branch(self, branch_id: str | int | None) -> Branch:
        """Work in development branch ``branch_id`` (``KBC_BRANCHID``): writes go to ``branch/{id}/…`` and reads of
        what the branch has not touched fall back to production. The default branch (``isDefault`` of
        ``GET dev-branches``) or None keeps the plain paths. The storage model comes from ``owner.features``.

        Raises StorageApiError (one sentence) when the branch cannot be determined: nothing must be written into
        production by mistake."""
        branch_id = str(branch_id).strip() if branch_id is not None else ""
        if not branch_id:
            self.http.branch = Branch()
            return self.http.branch
        try:
            branches = self.http.get("dev-branches", plain=True)
        except StorageApiError as exc:
            raise StorageApiError(
                f"Cannot determine development branch {branch_id} (KBC_BRANCHID) of the project at {self.url}, so "
                f"nothing was written: listing its branches failed ({exc.reason or exc.message}).",
                status=exc.status,
                user_error=True,
            ) from exc
        default, wanted = find_branch(branches if isinstance(branches, list) else [], branch_id)
        if default is None:
            raise StorageApiError(
                f"Cannot determine development branch {branch_id} (KBC_BRANCHID): the project at {self.url} lists "
                f"no default branch, so nothing was written.",
                user_error=True,
            )
        if str(default.get("id")) == branch_id:
            self.http.branch = Branch()
            return self.http.branch
        if wanted is None:
            raise StorageApiError(
                f"Development branch {branch_id} (KBC_BRANCHID) does not exist in the project at {self.url}, so "
                f"nothing was written; run the job in an existing branch.",
                user_error=True,
            )
        features = (self.verify_token().get("owner") or {}).get("features") or ()
        self.http.branch = Branch(id=branch_id, name=wanted.get("name"), model=storage_model(features))
        self.reads.fall_back = True
        return self.http.branch

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
