"""Storage buckets."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .branches import Branch, BranchReads
from .errors import StorageApiError

logger = logging.getLogger(__name__)


_MAX_CREATE_ATTEMPTS = 3  # an ambiguous failure is reconciled (does the bucket exist?) before each new attempt


class Buckets:
    """Bucket ids are the configuration's ids in every branch (see ``Tables``)."""

    def __init__(self, http, reads: BranchReads | None = None):
        self.http = http
        self.reads = reads or BranchReads()

    @property
    def branch(self) -> Branch:
        return getattr(self.http, "branch", None) or _DEFAULT_BRANCH

    def list(self, include: Iterable[str] = ()) -> list[dict]:
        """The buckets of this branch (a legacy branch's are production buckets: the plain list has them all)."""
        params = {"include": ",".join(include)} if include else None
        if self.branch.prefixed:
            return self.http.get("buckets", params=params, plain=True) or []
        return self.http.get("buckets", params=params) or []

    def detail(self, bucket_id: str) -> dict | None:
        """The bucket, or None when it does not exist (storage.buckets.notFound); in a branch its branch copy, or
        the production bucket when the branch has none and reads fall back."""
        branch = self.branch
        if branch.is_default:
            return self._get(f"buckets/{bucket_id}")
        found = self._get(f"buckets/{branch.bucket_id(bucket_id)}")
        if found is not None:
            return self._logical(found)
        return self._get(f"buckets/{bucket_id}", plain=True) if self.reads.fall_back else None

    def _get(self, path: str, *, plain: bool = False) -> dict | None:
        try:
            return self.http.get(path, plain=True) if plain else self.http.get(path)
        except StorageApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _logical(self, bucket: dict) -> dict:
        if not self.branch.prefixed or not isinstance(bucket, dict) or not bucket.get("id"):
            return bucket
        return dict(bucket, id=self.branch.logical_bucket_id(bucket["id"]))

    def create(self, name: str, stage: str = "in") -> dict:
        """Create bucket ``{stage}.c-{name}``; the API adds the legacy "c-" prefix itself, so one given is dropped.

        A POST that failed ambiguously (reset, 5xx) is only repeated when the bucket does not exist yet.
        """
        name = self.branch.bucket_name(name.removeprefix("c-"))  # a legacy branch's bucket is c-{branchId}-name
        body = {"name": name, "stage": stage}
        for attempt in range(1, _MAX_CREATE_ATTEMPTS + 1):
            try:
                return self._logical(self.http.post("buckets", body, idempotent=False))
            except StorageApiError as exc:
                if not exc.maybe_applied:
                    raise
                existing = self._find(name, stage)
                if existing is not None:
                    logger.warning(
                        "POST buckets failed (%s) but bucket %s exists; using it", exc.reason, existing["id"]
                    )
                    return self._logical(existing)
                if attempt == _MAX_CREATE_ATTEMPTS:
                    raise
                logger.warning("POST buckets failed (%s) and created no bucket; sending it again", exc.reason)
        raise AssertionError("unreachable")

    def _find(self, name: str, stage: str) -> dict | None:
        for bucket in self.list():
            if bucket.get("stage") == stage and name in (bucket.get("name"), bucket.get("displayName"), _strip(bucket)):
                return bucket
        return None


_DEFAULT_BRANCH = Branch()


def _strip(bucket: dict) -> str | None:
    return (bucket.get("name") or "").removeprefix("c-") or None
