"""File storage of the emulator: one provider-neutral interface, one adapter per provider."""

from __future__ import annotations

from pathlib import Path

from .base import FileStorage

PROVIDERS = ("aws", "azure", "gcp")


def create_file_storage(provider: str, workdir: Path) -> FileStorage:
    """Return the (not yet started) file storage adapter of ``provider`` working under ``workdir``."""
    if provider == "aws":
        from .s3 import S3FileStorage

        return S3FileStorage(workdir)
    if provider == "azure":
        from .azure import AzuriteFileStorage

        return AzuriteFileStorage(workdir)
    if provider == "gcp":
        from .gcs import GcsEmulatorFileStorage

        return GcsEmulatorFileStorage(workdir)
    raise ValueError(f'Unknown file storage provider "{provider}"; expected one of: {", ".join(PROVIDERS)}')


__all__ = ["PROVIDERS", "FileStorage", "create_file_storage"]
