"""File data transfer, after boto3's s3transfer: ``manager.TransferManager`` runs transfers, ``base`` holds the
provider-neutral interface (and what the adapters share), one adapter module per provider (s3.py, azure.py,
gcs.py) holds only its SDK calls."""

from .base import (
    MB,
    FileReader,
    FileWriter,
    PreparedFileWriter,
    Progress,
    RangeStream,
    ResumingReader,
    Slice,
    SliceChanged,
    StorageAdapter,
    StorageErrors,
    StoredFileReader,
)
from .manager import ADAPTER_MODULES, TransferManager

__all__ = [
    "ADAPTER_MODULES",
    "MB",
    "FileReader",
    "FileWriter",
    "PreparedFileWriter",
    "Progress",
    "RangeStream",
    "ResumingReader",
    "Slice",
    "SliceChanged",
    "StorageAdapter",
    "StorageErrors",
    "StoredFileReader",
    "TransferManager",
]
