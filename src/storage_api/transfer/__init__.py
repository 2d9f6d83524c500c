"""File data transfer: one provider-neutral interface, one adapter module per provider (s3.py, azure.py, gcs.py)."""

from .base import (
    FileReader,
    FileWriter,
    Progress,
    RangeStream,
    ResumingReader,
    Slice,
    SliceChanged,
    StorageAdapter,
    TransferManager,
)

__all__ = [
    "FileReader",
    "FileWriter",
    "Progress",
    "RangeStream",
    "ResumingReader",
    "Slice",
    "SliceChanged",
    "StorageAdapter",
    "TransferManager",
]
