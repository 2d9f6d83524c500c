"""Storage files: prepare an upload, read a file's detail with federated credentials, refresh GCS credentials.

Every answer's credentials are registered for redaction (``redaction.register_file_credentials``) on arrival."""

from __future__ import annotations

from collections.abc import Iterable

from redaction import register_file_credentials

from .branches import BranchReads


class Files:
    """Files are per branch in branched storage: a file exported from a production table (the branch has no copy
    of it) is read at the plain path."""

    def __init__(self, http, reads: BranchReads | None = None):
        self.http = http
        self.reads = reads or BranchReads()

    def _plain(self, file_id) -> dict:
        return {"plain": True} if str(file_id) in self.reads.production_files else {}

    def prepare(
        self,
        name: str,
        *,
        size_bytes: int | None = None,
        sliced: bool = False,
        tags: Iterable[str] = (),
        encrypted: bool = True,
    ) -> dict:
        """POST files/prepare; the answer carries the provider's upload block (uploadParams / absUploadParams /
        gcsUploadParams). A repeated prepare only leaves an unused file that expires, so it is safe to retry."""
        body = {
            "name": name,
            "federationToken": True,
            "isSliced": sliced,
            "isEncrypted": encrypted,
            "tags": list(tags),
        }
        if size_bytes is not None:
            body["sizeBytes"] = size_bytes
        return register_file_credentials(self.http.post("files/prepare", body, idempotent=True))

    def detail(self, file_id, federation: bool = True) -> dict:
        """GET files/{id}; with ``federation`` the answer includes direct-access credentials (valid 12 hours)."""
        return register_file_credentials(
            self.http.get(
                f"files/{file_id}", params={"federationToken": 1} if federation else None, **self._plain(file_id)
            )
        )

    def refresh(self, file_id) -> dict:
        """PUT files/{id}/refresh: new upload credentials (GCS only; they last one hour)."""
        return register_file_credentials(self.http.put(f"files/{file_id}/refresh", **self._plain(file_id)))
