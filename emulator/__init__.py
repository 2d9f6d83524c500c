"""Local emulator of the Keboola Storage API (HTTP + real file storage + DuckDB tables) for tests and demos."""

from .api import Emulator, Project

__all__ = ["Emulator", "Project"]
