"""Policy versions: every policy a server ran is kept, newest wins. ``PolicyRows`` is the
SQLAlchemy store's part that keeps them (``Store`` inherits it)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from .rows import SqlRows
from .schema import policies


class PolicyRows(SqlRows):
    """The ``policies`` table, for the SQLAlchemy store."""


    def latest_policy(self) -> tuple[int, str] | None:
        """(version, YAML source) of the newest stored policy, or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(policies.c.version, policies.c.source)
                               .order_by(policies.c.version.desc()).limit(1)).first()
        return (row.version, row.source) if row is not None else None

    def latest_version(self) -> int:
        """The newest version's number (0: none stored), cheaper than reading its source."""
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.max(policies.c.version))).scalar() or 0

    def save_policy(self, source: str, *, by: str) -> int:
        """Store a new version (validated by the caller) and return its number."""
        with self.engine.begin() as conn:
            result = conn.execute(policies.insert().values(
                source=source, created_at=time.time(), created_by=by))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])
