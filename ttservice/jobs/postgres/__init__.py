"""The shared store: a PostgreSQL database that several machines use at once."""

from .store import PostgresStore

__all__ = ["PostgresStore"]
