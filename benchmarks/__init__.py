"""Benchmarks of Storage Sync against kbcstorage and the raw file-storage limit (``make bench``)."""
