"""What each table's part of the SQL store shares (``Store`` and its ``KeyRows``,
``PolicyRows``, ``SessionRows``): the engine, and the one way to read."""

from __future__ import annotations

import sqlalchemy as sa


class SqlRows:
    engine: sa.Engine

    def _read(self) -> sa.Connection:
        """A connection for reads: SQLite begins it without the write lock."""
        return self.engine.connect().execution_options(readonly=True)
