"""The embedded store: one SQLite file (WAL) in the data directory."""

from .store import SQLiteStore

__all__ = ["SQLiteStore"]
