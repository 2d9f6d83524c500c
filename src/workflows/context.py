"""What every workflow gets (``RunContext``) and how client failures become one-sentence user errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from keboola.component.exceptions import UserException

from configuration import BUCKET_ID_RE, Configuration, redact
from state import StateStore
from storage_api.errors import StorageApiError

if TYPE_CHECKING:
    from storage_api import StorageClient

DEFAULT_METADATA_PROVIDER = "keboola.storage-sync"


@dataclass
class RunContext:
    """Everything a workflow needs; built by the component, clients created lazily on first use."""

    config: Configuration
    data_dir: Path
    state: StateStore
    source_client: Callable[[], StorageClient] = field(repr=False)
    destination_client: Callable[[], StorageClient] = field(repr=False)
    now: datetime = field(default_factory=lambda: datetime.now().astimezone())
    metadata_provider: str = DEFAULT_METADATA_PROVIDER

    @property
    def tables_in(self) -> Path:
        return self.data_dir / "in" / "tables"

    @property
    def tables_out(self) -> Path:
        return self.data_dir / "out" / "tables"

    @property
    def files_out(self) -> Path:
        return self.data_dir / "out" / "files"


def describe_failure(exc: BaseException, action: str, table_id: str | None = None) -> str:
    """One user-facing sentence for a client failure, naming the table or bucket (the client names the job)."""
    detail = redact(str(exc)).strip() or type(exc).__name__
    what = action
    if table_id:
        noun = "bucket" if BUCKET_ID_RE.match(table_id) else "table"
        what = f"{action} {table_id}" if action.endswith(f" {noun}") else f"{action} {noun} {table_id}"
    text = f"{what[:1].upper()}{what[1:]} failed: {detail}"
    return text if text.endswith((".", "!", "?")) else text + "."


@contextmanager
def storage_errors(action: str, table_id: str | None = None) -> Iterator[None]:
    """Turn client failures (bad token, permissions, failed/timed-out jobs, unreachable URL) into UserException."""
    try:
        yield
    except UserException:
        raise
    except StorageApiError as exc:
        raise UserException(describe_failure(exc, action, table_id)) from exc
