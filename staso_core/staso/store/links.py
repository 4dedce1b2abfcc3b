"""The e-mail channel's answer links, for the SQL store (``Store`` inherits ``LinkRows``).

A link's token is random (``secrets``) and only its SHA-256 is stored: reading the
database (a backup, a read replica) gives no link that works, as it gives no API key.
Each row binds the token to one escalation, one approver key as linked to one address,
and one action; ``used_at`` ends it (used to answer, or withdrawn when its key was linked
to another address).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .rows import SqlRows
from .schema import answer_links


@dataclass(frozen=True)
class AnswerLink:
    id: str  # SHA-256 of the token
    escalation_id: str
    key_id: str
    email: str
    action: str  # approve | deny
    created_at: float
    expires_at: float
    used_at: float | None = None


def _link(row: Any) -> AnswerLink:
    return AnswerLink(**dict(row._mapping))


class LinkRows(SqlRows):
    """The ``answer_links`` table."""

    def add_answer_link(self, link: AnswerLink) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(answer_links.delete().where(answer_links.c.expires_at < now))
            conn.execute(answer_links.insert().values(**link.__dict__))

    def answer_link(self, digest: str) -> AnswerLink | None:
        with self._read() as conn:
            row = conn.execute(sa.select(answer_links).where(answer_links.c.id == digest)
                               ).first()
        return None if row is None else _link(row)

    def use_answer_link(self, digest: str, now: float | None = None) -> bool:
        """Mark a link used; False if it was (or was withdrawn) before, on any replica."""
        c = answer_links.c
        with self.engine.begin() as conn:
            return bool(conn.execute(answer_links.update().where(
                c.id == digest, c.used_at.is_(None)).values(used_at=now or time.time())
            ).rowcount)

    def withdraw_answer_links(self, key_id: str, now: float | None = None) -> None:
        """End every unused link of a key (it now answers as another address)."""
        c = answer_links.c
        with self.engine.begin() as conn:
            conn.execute(answer_links.update().where(c.key_id == key_id, c.used_at.is_(None))
                         .values(used_at=now or time.time()))
