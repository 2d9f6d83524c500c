"""Development branches (addendum section 3): which branch a client works in, and how its paths and ids change.

- Paths: ``branch/{id}/…`` for everything except ``jobs``, ``scheduled-tasks``, ``snapshot``, ``triggers``,
  ``tickets`` and ``…/alias-filter`` (PHP ``BranchAwareClient``); jobs are polled at the plain path.
- Branched storage (``owner.features`` ``storage-branches`` or ``protected-default-branch``): the branch has the
  same bucket and table ids as production in its own namespace; a branch GET of a table it has not touched is 404.
- Legacy prefix branches: branch data lives in production, bucket ``{stage}.c-{branchId}-{name}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

BRANCHED_STORAGE_FEATURES = ("storage-branches", "protected-default-branch")
_UNBRANCHED_PREFIXES = ("jobs", "scheduled-tasks", "snapshot", "triggers", "tickets")
_BUCKET_RE = re.compile(r"^(in|out)\.c-(.+)$")

Model = Literal["branched", "prefix"]


def is_branch_scoped(path: str) -> bool:
    """Whether ``path`` (relative to ``/v2/storage/``) has a ``branch/{id}/`` form."""
    path = path.lstrip("/")
    head = path.split("?", 1)[0]
    first = head.split("/", 1)[0]
    return first not in _UNBRANCHED_PREFIXES and not head.endswith("/alias-filter") and first != "branch"


def branch_path(path: str, branch_id: str | None) -> str:
    """``path`` in branch ``branch_id`` (None: the default branch, the plain path)."""
    path = path.lstrip("/")
    if branch_id is None or not is_branch_scoped(path):
        return path
    return f"branch/{branch_id}/{path}"


def storage_model(features) -> Model:
    """``branched`` when the project has real storage in branches, else the legacy ``prefix`` model."""
    return "branched" if any(f in (features or ()) for f in BRANCHED_STORAGE_FEATURES) else "prefix"


@dataclass(frozen=True)
class Branch:
    """Where a client reads and writes: the default branch (``id`` None) or development branch ``id``."""

    id: str | None = None
    name: str | None = None
    model: Model | None = None  # None in the default branch

    @property
    def is_default(self) -> bool:
        return self.id is None

    @property
    def prefixed(self) -> bool:
        return self.id is not None and self.model == "prefix"

    def path(self, path: str) -> str:
        return branch_path(path, self.id)

    # legacy prefix model: ids of the branch's copies --------------------------------------------------------------
    def bucket_id(self, bucket_id: str) -> str:
        """The bucket that holds ``bucket_id``'s data in this branch (``in.c-{id}-name`` in the prefix model)."""
        if not self.prefixed:
            return bucket_id
        match = _BUCKET_RE.match(bucket_id)
        if not match or match.group(2).startswith(f"{self.id}-"):
            return bucket_id
        return f"{match.group(1)}.c-{self.id}-{match.group(2)}"

    def table_id(self, table_id: str) -> str:
        if not self.prefixed or "." not in table_id:
            return table_id
        bucket, name = table_id.rsplit(".", 1)
        return f"{self.bucket_id(bucket)}.{name}"

    def bucket_name(self, name: str) -> str:
        """The name to create bucket ``name`` with in this branch."""
        return f"{self.id}-{name}" if self.prefixed and not name.startswith(f"{self.id}-") else name

    def logical_bucket_id(self, bucket_id: str) -> str:
        """``in.c-{id}-name`` -> ``in.c-name`` (the id the configuration uses)."""
        if not self.prefixed:
            return bucket_id
        return bucket_id.replace(f".c-{self.id}-", ".c-", 1) if f".c-{self.id}-" in bucket_id else bucket_id

    def logical_table_id(self, table_id: str) -> str:
        if not self.prefixed or "." not in table_id:
            return table_id
        bucket, name = table_id.rsplit(".", 1)
        return f"{self.logical_bucket_id(bucket)}.{name}"

    def describe(self) -> str:
        if self.is_default:
            return "the default branch (production)"
        name = f" ({self.name})" if self.name else ""
        if self.model == "prefix":
            return (
                f"development branch {self.id}{name}, legacy storage: writes go to buckets "
                f"in.c-{self.id}-<name> / out.c-{self.id}-<name>"
            )
        return f"development branch {self.id}{name}, branched storage: writes stay in the branch"


def find_branch(branches: list[dict], branch_id: str) -> tuple[dict | None, dict | None]:
    """(the default branch, branch ``branch_id``) of a ``GET dev-branches`` answer (either may be None)."""
    default = next((b for b in branches or () if isinstance(b, dict) and b.get("isDefault")), None)
    wanted = next((b for b in branches or () if isinstance(b, dict) and str(b.get("id")) == str(branch_id)), None)
    return default, wanted


class BranchReads:
    """What one client learned while reading: tables read from production (the branch has no copy of them) and
    files exported there. Shared by its Tables, Buckets and Files."""

    def __init__(self) -> None:
        self.fall_back = False  # reads of what the branch has not touched go to production
        self.production_tables: set[str] = set()
        self.production_files: set[str] = set()
