"""File data transfer: one provider-neutral interface, one adapter module per provider (s3.py, later abs/gcs)."""

from .base import FileReader, FileWriter, Progress, Slice, StorageAdapter, TransferManager

__all__ = ["FileReader", "FileWriter", "Progress", "Slice", "StorageAdapter", "TransferManager"]
