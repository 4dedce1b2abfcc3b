"""Dashboard sessions ended before their expiry. A session is a signed cookie that needs
no table while it lives; logging out writes its hash here so that every replica refuses
the cookie from then on, even one copied before the logout. ``SessionRows`` is the SQL
store's part that keeps them (``Store`` inherits it)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from .rows import SqlRows
from .schema import ended_sessions


class SessionRows(SqlRows):
    """The ``ended_sessions`` table, for the SQLAlchemy store."""


    def end_session(self, digest: str, expires_at: float) -> None:
        """Refuse the session with this hash from now on (rows past expiry are dropped)."""
        now = time.time()
        t = ended_sessions
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.expires_at < now))
            if conn.execute(sa.select(t.c.id).where(t.c.id == digest)).first() is None:
                conn.execute(t.insert().values(id=digest, expires_at=expires_at, ended_at=now))

    def session_ended(self, digest: str) -> bool:
        with self._read() as conn:
            return conn.execute(sa.select(ended_sessions.c.id)
                                .where(ended_sessions.c.id == digest)).first() is not None
