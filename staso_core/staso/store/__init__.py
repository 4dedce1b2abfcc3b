"""Durable state: escalations, the decision log, API keys and policy versions.

``StoreBackend`` is what the rest of staso relies on; ``Store`` is its SQLAlchemy
implementation, on SQLite or PostgreSQL by URL.
"""

from .base import StoreBackend
from .dialects import lock_waits_until
from .store import Store, sqlite_url

__all__ = ["Store", "StoreBackend", "lock_waits_until", "open_store", "sqlite_url"]


def open_store(url: str) -> StoreBackend:
    """The backend for a database URL: the one place the embedded client, the server and
    the CLI pick it. Every URL staso knows today (SQLite, PostgreSQL) is the SQL store's; a
    new backend claims its own scheme here."""
    from ..settings import database_url  # postgres:// taken; a missing driver said in a line

    return Store(database_url(url))
