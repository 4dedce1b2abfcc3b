"""Durable state: escalations, the decision log, API keys and policy versions.

``StoreBackend`` is what the rest of staso relies on; ``Store`` is its SQLAlchemy
implementation, on SQLite or PostgreSQL by URL.
"""

from .base import StoreBackend
from .store import Store, sqlite_url

__all__ = ["Store", "StoreBackend", "sqlite_url"]
