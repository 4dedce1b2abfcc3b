"""Durable state: escalations and the decision log, on SQLite or PostgreSQL."""

from .store import Store, sqlite_url

__all__ = ["Store", "sqlite_url"]
