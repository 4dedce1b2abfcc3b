"""Reading the stored policy versions for operators (``Store`` inherits
``PolicyHistoryRows``): which versions exist, who stored each, and what each said."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..policy.model import Policy
from .rows import SqlRows
from .schema import policies


def policy_digest(source: str) -> str:
    """The fingerprint decisions record of the policy that decided (``policy_digest``)."""
    return Policy(rules=[], source=source).digest


class PolicyHistoryRows(SqlRows):
    """The ``policies`` table, newest first."""

    def policy_versions(self, limit: int = 200) -> list[dict[str, Any]]:
        """The newest ``limit`` versions: version, created_at, created_by, digest."""
        p = policies.c
        with self._read() as conn:
            rows = conn.execute(sa.select(p.version, p.created_at, p.created_by, p.source)
                                .order_by(p.version.desc()).limit(limit)).all()
        return [{"version": r.version, "created_at": r.created_at,
                 "created_by": r.created_by, "digest": policy_digest(r.source)} for r in rows]

    def policy_version(self, version: int) -> dict[str, Any] | None:
        """One version with its YAML source, or None."""
        p = policies.c
        with self._read() as conn:
            row = conn.execute(sa.select(p.version, p.created_at, p.created_by, p.source)
                               .where(p.version == version)).first()
        if row is None:
            return None
        return {"version": row.version, "created_at": row.created_at,
                "created_by": row.created_by, "source": row.source,
                "digest": policy_digest(row.source)}
