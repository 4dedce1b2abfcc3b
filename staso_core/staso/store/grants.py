"""Standing approvals (``staso.grants``), for the SQL store (``Store`` inherits
``GrantRows``). A grant is written in the transaction of the answer that gives it; each use
is one conditional update, so ``max_uses`` holds under any number of concurrent calls."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from ..grants import Grant, new_grant_id
from .escaping import escape_text, unescape_row
from .rows import SqlRows
from .schema import grants

_TEXT = frozenset(("created_by", "created_via", "agent_name", "tool_name", "rule_name",
                   "environment", "condition", "revoked_by"))


def _grant(row: Any) -> Grant:
    return Grant(**unescape_row(dict(row._mapping), _TEXT))


def insert_grant(conn: sa.Connection, scope: dict[str, Any], *, by: str, via: str | None,
                 now: float) -> Grant:
    """Write a grant inside the caller's transaction (the answer that gives it)."""
    values = {k: v for k, v in scope.items() if k != "ttl"}
    grant = Grant(id=new_grant_id(), created_at=now, created_by=by, created_via=via,
                  expires_at=now + scope["ttl"], **values)
    conn.execute(grants.insert().values(**{
        k: escape_text(v) if k in _TEXT else v for k, v in grant.__dict__.items()}))
    return grant


class GrantRows(SqlRows):
    """The ``grants`` table."""

    def live_grants(self, agent_name: str, tool_name: str, rule_name: str,
                    now: float | None = None) -> list[Grant]:
        """The grants that may still be used for this agent's calls of this tool escalated
        by this rule, oldest first (the first to expire is used first)."""
        c = grants.c
        now = now or time.time()
        with self._read() as conn:
            rows = conn.execute(sa.select(grants).where(
                c.agent_name == escape_text(agent_name), c.tool_name == escape_text(tool_name),
                c.rule_name == escape_text(rule_name), c.expires_at > now,
                c.revoked_at.is_(None),
                sa.or_(c.max_uses.is_(None), c.uses < c.max_uses)
            ).order_by(c.expires_at)).all()
        return [_grant(r) for r in rows]

    def use_grant(self, grant_id: str, now: float | None = None) -> Grant | None:
        """Count one use; the grant as it was before it (None: it died meanwhile: expired,
        revoked, or its last use taken by another call)."""
        c = grants.c
        now = now or time.time()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(grants).where(c.id == grant_id).with_for_update()
                               ).first()
            used = conn.execute(grants.update().where(
                c.id == grant_id, c.revoked_at.is_(None), c.expires_at > now,
                sa.or_(c.max_uses.is_(None), c.uses < c.max_uses)
            ).values(uses=c.uses + 1, last_used_at=now)).rowcount
        return _grant(row) if used == 1 and row is not None else None

    def get_grant(self, grant_id: str) -> Grant | None:
        with self._read() as conn:
            row = conn.execute(sa.select(grants).where(grants.c.id == grant_id)).first()
        return None if row is None else _grant(row)

    def list_grants(self, *, live_only: bool = False, limit: int = 200,
                    now: float | None = None) -> list[Grant]:
        """Newest first; ``live_only``: only those that may still be used."""
        c = grants.c
        query = sa.select(grants).order_by(c.created_at.desc()).limit(limit)
        if live_only:
            query = query.where(c.expires_at > (now or time.time()), c.revoked_at.is_(None),
                                sa.or_(c.max_uses.is_(None), c.uses < c.max_uses))
        with self._read() as conn:
            return [_grant(r) for r in conn.execute(query)]

    def revoke_grant(self, grant_id: str, *, by: str, now: float | None = None) -> bool:
        """End a grant at once; False if there is none with this id or it was revoked."""
        c = grants.c
        with self.engine.begin() as conn:
            return bool(conn.execute(grants.update().where(
                c.id == grant_id, c.revoked_at.is_(None)
            ).values(revoked_at=now or time.time(), revoked_by=escape_text(by))).rowcount)
