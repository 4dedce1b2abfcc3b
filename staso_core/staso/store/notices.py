"""The approval channels' queue, kept in the database: what each channel must post (an
escalation) or update (its answer), so that a restart loses nothing and any replica
delivers it. ``NoticeRows`` is the SQL store's part (``Store`` inherits it); the worker
that reads it is ``staso.channels.outbox``.

Announcing is driven by the escalations themselves, not by the process that made them:
an escalation not yet announced gets its posts queued by whichever replica sees it first
(an agent in embedded mode writing to the server's database included), and one answered
after its post gets an update queued the same way. Each step claims its row with a
conditional UPDATE, so two replicas never queue one notice twice.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..models import Escalation
from .escaping import escape_text, unescape_row, unescape_text
from .rows import SqlRows
from .schema import escalations, notices, used_once

NEW, POSTING, DONE = 0, 1, 2  # escalations.announced
# An escalation first seen answered (a replica was down, or it was answered within the
# worker's poll) is still posted, showing its answer, if it is this recent; older ones are
# history and are not announced at all.
RECENT_SECONDS = 600.0


@dataclass(frozen=True)
class Notice:
    id: str
    escalation_id: str
    target: str  # scheme:address, e.g. slack:#payments
    kind: str  # post | update
    state: str  # queued | sent | failed | skipped
    attempts: int = 0
    next_at: float = 0.0
    last_error: str | None = None
    ref: dict[str, Any] | None = None
    created_at: float = 0.0
    sent_at: float | None = None

    @property
    def scheme(self) -> str:
        return self.target.partition(":")[0]

    @property
    def address(self) -> str:
        return self.target.partition(":")[2]


def _notice(row: Any) -> Notice:
    data = unescape_row({k: v for k, v in row._mapping.items() if k != "lease_until"},
                        frozenset({"target", "last_error"}))
    return Notice(**data)


def _row(escalation_id: str, target: str, kind: str, now: float) -> dict[str, Any]:
    return {"id": "ntc_" + secrets.token_hex(12), "escalation_id": escalation_id,
            "target": escape_text(target), "kind": kind, "state": "queued", "attempts": 0,
            "next_at": now, "created_at": now}


class NoticeRows(SqlRows):
    """The ``notices`` and ``used_once`` tables, for the SQLAlchemy store."""

    def announce_new(self, targets: Callable[[Escalation], list[str]], *, limit: int = 100,
                     now: float | None = None) -> int:
        """Queue a post to each of ``targets(escalation)`` for escalations not yet
        announced; return how many notices were queued."""
        from .store import _row_to_escalation  # (the store module imports this one)

        now = now or time.time()
        e = escalations.c
        with self._read() as conn:
            rows = conn.execute(sa.select(escalations).where(e.announced == NEW)
                                .order_by(e.created_at).limit(limit)).all()
        queued = 0
        for row in rows:
            esc = _row_to_escalation(row)
            fresh = esc.status == "pending" or now - esc.created_at <= RECENT_SECONDS
            wanted = targets(esc) if fresh else []
            with self.engine.begin() as conn:
                claimed = conn.execute(escalations.update().where(
                    e.id == esc.id, e.announced == NEW
                ).values(announced=POSTING if esc.status == "pending" else DONE)).rowcount
                if claimed and wanted:
                    conn.execute(notices.insert(),
                                 [_row(esc.id, target, "post", now) for target in wanted])
                    queued += len(wanted)
        return queued

    def announce_answers(self, updates: Callable[[str], bool], *, limit: int = 100,
                         now: float | None = None) -> int:
        """Queue an update of each post (on a channel where ``updates(scheme)``) of the
        escalations answered (or timed out) since they were announced."""
        now = now or time.time()
        e, n = escalations.c, notices.c
        with self._read() as conn:
            ids = [r[0] for r in conn.execute(sa.select(e.id).where(
                e.announced == POSTING, e.status != "pending").limit(limit))]
        queued = 0
        for escalation_id in ids:
            with self.engine.begin() as conn:
                claimed = conn.execute(escalations.update().where(
                    e.id == escalation_id, e.announced == POSTING
                ).values(announced=DONE)).rowcount
                if not claimed:
                    continue
                posts = [_notice(r) for r in conn.execute(sa.select(notices).where(
                    n.escalation_id == escalation_id, n.kind == "post",
                    n.state.in_(("queued", "sent"))))]
                rows = [_row(escalation_id, p.target, "update", now)
                        for p in posts if updates(p.scheme)]
                if rows:
                    conn.execute(notices.insert(), rows)
                    queued += len(rows)
        return queued

    def queue_updates(self, escalation_id: str, updates: Callable[[str], bool], *,
                      now: float | None = None) -> int:
        """Queue an update of each post (on a channel where ``updates(scheme)``) of an
        escalation still pending whose approvals so far changed (one approval of several
        was counted); return how many were queued. None where the post is not queued yet
        (it will show the approvals), the escalation was answered since (``announce_answers``
        updates it), or an update of that post waits unleased: rendered at its delivery,
        it will show this approval too. Each update is leased and delivered once, as any
        notice."""
        now = now or time.time()
        e, n = escalations.c, notices.c
        with self.engine.begin() as conn:
            announced = conn.execute(sa.select(e.announced).where(
                e.id == escalation_id, e.status == "pending")).scalar()
            if announced != POSTING:
                return 0
            rows = conn.execute(sa.select(n.target, n.kind, n.state, n.lease_until).where(
                n.escalation_id == escalation_id, n.state.in_(("queued", "sent")))).all()
            waiting = {r.target for r in rows
                       if r.kind == "update" and r.state == "queued" and r.lease_until is None}
            targets = [unescape_text(t) for t in dict.fromkeys(
                r.target for r in rows if r.kind == "post" and r.target not in waiting)]
            queued = [_row(escalation_id, target, "update", now) for target in targets
                      if updates(target.partition(":")[0])]
            if queued:
                conn.execute(notices.insert(), queued)
        return len(queued)

    def lease_next(self, scheme: str, *, lease: float,
                   now: float | None = None) -> Notice | None:
        """The next due notice of one channel, leased to this caller for ``lease`` seconds
        (another replica takes it only once the lease ends: its deliverer died); None if
        none is due. One at a time, just before its delivery: a lease never outlives the
        work it covers, so two replicas never deliver one notice twice."""
        now = now or time.time()
        n = notices.c
        free = sa.or_(n.lease_until.is_(None), n.lease_until <= now)
        due = sa.and_(n.state == "queued", n.next_at <= now, free,
                      n.target.startswith(escape_text(f"{scheme}:"), autoescape=True))
        for _ in range(5):  # another replica may lease the one found first
            with self._read() as conn:
                row = conn.execute(sa.select(notices).where(due).order_by(n.next_at)
                                   .limit(1)).first()
            if row is None:
                return None
            with self.engine.begin() as conn:
                if conn.execute(notices.update().where(n.id == row.id, due)
                                .values(lease_until=now + lease)).rowcount:
                    return _notice(row)
        return None

    def pending_schemes(self, *, now: float | None = None) -> set[str]:
        """The channels with queued notices that are due (whoever may deliver them)."""
        n = notices.c
        with self._read() as conn:
            targets = conn.execute(sa.select(n.target).where(
                n.state == "queued", n.next_at <= (now or time.time())).limit(500)).all()
        return {t[0].partition(":")[0] for t in targets}

    def notice_done(self, notice_id: str, *, state: str = "sent",
                    ref: dict[str, Any] | None = None, error: str | None = None,
                    now: float | None = None) -> None:
        """A notice delivered (``sent``), given up (``failed``) or not needed (``skipped``)."""
        n = notices.c
        with self.engine.begin() as conn:
            conn.execute(notices.update().where(n.id == notice_id).values(
                state=state, ref=ref, sent_at=now or time.time(), lease_until=None,
                last_error=escape_text(error), attempts=n.attempts + int(state != "skipped")))

    def notice_retry(self, notice_id: str, *, next_at: float, error: str | None = None) -> None:
        """Try again at ``next_at``; with ``error``, this attempt failed (it is counted)."""
        n = notices.c
        values: dict[str, Any] = {"next_at": next_at, "lease_until": None}
        if error is not None:
            values.update(attempts=n.attempts + 1, last_error=escape_text(error))
        with self.engine.begin() as conn:
            conn.execute(notices.update().where(n.id == notice_id).values(**values))

    def notices_for(self, escalation_id: str) -> list[Notice]:
        """Every notice of one escalation, oldest first."""
        n = notices.c
        with self._read() as conn:
            return [_notice(r) for r in conn.execute(sa.select(notices).where(
                n.escalation_id == escalation_id).order_by(n.created_at, n.kind))]

    def count_notices(self) -> dict[str, int]:
        """How many notices are in each state (queued, sent, failed, skipped)."""
        n = notices.c
        with self._read() as conn:
            return {state: int(count) for state, count in conn.execute(
                sa.select(n.state, sa.func.count()).group_by(n.state))}

    def use_once(self, digest: str, expires_at: float, now: float | None = None) -> bool:
        """Record that what hashes to ``digest`` was used; False if it was before (a replay)
        on any replica. Rows past their expiry are dropped on the way."""
        now = now or time.time()
        t = used_once
        try:
            with self.engine.begin() as conn:
                conn.execute(t.delete().where(t.c.expires_at < now))
                conn.execute(t.insert().values(id=digest, expires_at=expires_at, used_at=now))
        except IntegrityError:
            return False
        return True
