"""Storage buckets."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .errors import StorageApiError

logger = logging.getLogger(__name__)


_MAX_CREATE_ATTEMPTS = 3  # an ambiguous failure is reconciled (does the bucket exist?) before each new attempt


class Buckets:
    def __init__(self, http):
        self.http = http

    def list(self, include: Iterable[str] = ()) -> list[dict]:
        params = {"include": ",".join(include)} if include else None
        return self.http.get("buckets", params=params) or []

    def detail(self, bucket_id: str) -> dict | None:
        """The bucket, or None when it does not exist (storage.buckets.notFound)."""
        try:
            return self.http.get(f"buckets/{bucket_id}")
        except StorageApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, name: str, stage: str = "in") -> dict:
        """Create bucket ``{stage}.c-{name}``; the API adds the legacy "c-" prefix itself, so one given is dropped.

        A POST that failed ambiguously (reset, 5xx) is only repeated when the bucket does not exist yet.
        """
        name = name.removeprefix("c-")
        body = {"name": name, "stage": stage}
        for attempt in range(1, _MAX_CREATE_ATTEMPTS + 1):
            try:
                return self.http.post("buckets", body, idempotent=False)
            except StorageApiError as exc:
                if not exc.maybe_applied:
                    raise
                existing = self._find(name, stage)
                if existing is not None:
                    logger.warning(
                        "POST buckets failed (%s) but bucket %s exists; using it", exc.reason, existing["id"]
                    )
                    return existing
                if attempt == _MAX_CREATE_ATTEMPTS:
                    raise
                logger.warning("POST buckets failed (%s) and created no bucket; sending it again", exc.reason)
        raise AssertionError("unreachable")

    def _find(self, name: str, stage: str) -> dict | None:
        for bucket in self.list():
            if bucket.get("stage") == stage and name in (bucket.get("name"), bucket.get("displayName"), _strip(bucket)):
                return bucket
        return None


def _strip(bucket: dict) -> str | None:
    return (bucket.get("name") or "").removeprefix("c-") or None
