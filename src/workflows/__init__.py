"""Workflows of Storage Sync, one per mode: export (storage -> out/tables), import (in/tables -> storage) and
sync (project -> project). Each is ``run(ctx: RunContext) -> None``."""

from __future__ import annotations

from collections.abc import Callable

from workflows import export, load, sync
from workflows.context import RunContext

WORKFLOWS: dict[str, Callable[[RunContext], None]] = {
    "export": export.run,
    "import": load.run,
    "sync": sync.run,
}

__all__ = ["WORKFLOWS", "RunContext"]
