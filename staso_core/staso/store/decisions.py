"""Reading the decision log for operators (``Store`` inherits ``DecisionRows``): filtered,
keyset-paged lists of decisions, and the overview's aggregates, computed by the database
(GROUP BY) so the work stays bounded however long the log grows.

Text filters use LIKE with the user's ``%``, ``_`` and the escape character escaped, so
they match literally; ``*`` in a name filter is the one wildcard. Case is ignored the way
each database folds it (``ILIKE`` on PostgreSQL; ``lower()`` on SQLite, ASCII letters only).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import sqlalchemy as sa

from ..decision_filters import ACTIONS, DecisionFilter, DecisionPage, decode_cursor, encode_cursor
from .escaping import MARKER, unescape_row, unescape_text
from .schema import decisions, escalations
from .templates import TemplateRows

_TEXT = frozenset(c.name for c in decisions.columns if not isinstance(c.type, sa.JSON))
_ESCAPE = "/"
# the overview's time-to-resolution bands (seconds): each counts the answers that took
# longer than the band before it and at most this long; a last band (le None) counts the rest
RESOLUTION_BANDS = (60, 300, 900, 3600, 4 * 3600, 86400)
MAX_BUCKETS = 400
TOP_RULES = 10


def like_literal(text: str) -> str:
    """``text`` as a LIKE pattern that matches only itself."""
    return text.replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%") \
        .replace("_", _ESCAPE + "_")


def _name_matches(column: sa.ColumnElement[Any], value: str) -> sa.ColumnElement[bool]:
    """A whole name, or a glob with ``*``, ignoring case: as stored, and in the escaped form
    a name with a NUL is stored in (``drop_db\\x00`` is found by ``drop_db*`` too)."""
    parts = value.split("*")
    escaped = like_literal(MARKER + '"') + "%".join(like_literal(_json_inner(part))
                                                    for part in parts) + like_literal('"')
    match: sa.ColumnElement[bool] = column.ilike(escaped, escape=_ESCAPE)
    if _plain(value):
        match = sa.or_(column.ilike("%".join(like_literal(part) for part in parts),
                                    escape=_ESCAPE), match)
    return match


def _contains(column: sa.ColumnElement[Any], text: str) -> sa.ColumnElement[bool]:
    """``text`` anywhere in the column, ignoring case: as stored, or in the escaped form."""
    match: sa.ColumnElement[bool] = column.ilike(f"%{like_literal(_json_inner(text))}%",
                                                 escape=_ESCAPE)
    if _plain(text):
        plain = column.ilike(f"%{like_literal(text)}%", escape=_ESCAPE)
        match = plain if _json_inner(text) == text else sa.or_(plain, match)
    return match


def _json_inner(text: str) -> str:
    """``text`` as it appears inside an escaped value's JSON string."""
    return json.dumps(text)[1:-1]


def _plain(text: str) -> bool:
    """Whether a database can be asked for ``text`` as it is (PostgreSQL refuses a NUL;
    lone surrogates are refused by the filter already)."""
    return "\x00" not in text


def bucket_seconds(span: float) -> int:
    """The overview's bucket for a time range: 5 minutes up to 6 hours, an hour up to a
    week, a day (or several, to keep at most MAX_BUCKETS) beyond."""
    if span <= 6 * 3600:
        return 300
    if span <= 7 * 86400:
        return 3600
    return 86400 * max(1, math.ceil(span / 86400 / MAX_BUCKETS))


class DecisionRows(TemplateRows):
    """The ``decisions`` table read for operators, and the overview's aggregates."""

    dialect: Any

    def query_decisions(self, filters: DecisionFilter) -> DecisionPage:
        """One page of decisions, newest first (ties by id), after ``filters.cursor``."""
        c = decisions.c
        where: list[sa.ColumnElement[bool]] = []
        for column, value in ((c.agent_name, filters.agent), (c.tool_name, filters.tool),
                              (c.rule_name, filters.rule)):
            if value:
                where.append(_name_matches(column, value))
        if filters.actions:
            where.append(c.action.in_(filters.actions))
        if filters.q:
            where.append(sa.or_(*(_contains(column, filters.q) for column in (
                c.id, c.tool_name, c.agent_name, c.rule_name, c.reason, c.escalation_id))))
        if filters.since is not None:
            where.append(c.created_at >= filters.since)
        if filters.until is not None:
            where.append(c.created_at <= filters.until)
        if filters.cursor:
            at, last_id = decode_cursor(filters.cursor)
            where.append(sa.or_(c.created_at < at,
                                sa.and_(c.created_at == at, c.id < last_id)))
        query = sa.select(decisions).where(*where) \
            .order_by(c.created_at.desc(), c.id.desc()).limit(filters.limit + 1)
        with self._read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
            more = len(rows) > filters.limit
            rows = self._expanded(conn, rows[:filters.limit])
        # (the cursor holds the id as stored, so it compares as the database does)
        cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return DecisionPage([unescape_row(r, _TEXT) for r in rows], cursor)

    # -- the overview ---------------------------------------------------------------------
    def decision_overview(self, since: float, until: float,
                          now: float | None = None) -> dict[str, Any]:
        """Decisions over time by action, the rules that decided most, how long people took
        to answer escalations, and how many wait now, for ``since``..``until``."""
        now = time.time() if now is None else now
        bucket = bucket_seconds(until - since)
        with self._read() as conn:
            series, totals = self._series(conn, since, until, bucket)
            top = self._top_rules(conn, since, until)
            resolution = self._resolution(conn, since, until)
            pending = int(conn.execute(
                sa.select(sa.func.count()).select_from(escalations).where(
                    escalations.c.status == "pending", escalations.c.expires_at > now)
            ).scalar() or 0)
        return {"since": since, "until": until, "bucket_seconds": bucket, "series": series,
                "totals": totals, "top_rules": top, "resolution": resolution,
                "pending": pending}

    def _bucket_of(self, column: sa.ColumnElement[Any], size: int) -> sa.ColumnElement[Any]:
        """The bucket number of an epoch time (times are never negative: truncation is
        floor). The size is inlined: PostgreSQL groups by an expression only if the SELECT
        has the very same one, parameters included."""
        scaled = column / sa.literal_column(f"{int(size)}.0")
        if self.dialect.name == "postgresql":
            return sa.cast(sa.func.floor(scaled), sa.BigInteger)
        return sa.cast(scaled, sa.Integer)

    def _series(self, conn: sa.Connection, since: float, until: float, size: int
                ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        c = decisions.c
        slot = self._bucket_of(c.created_at, size).label("slot")
        rows = conn.execute(
            sa.select(slot, c.action, sa.func.count().label("n"))
            .where(c.created_at >= since, c.created_at <= until, c.action.in_(ACTIONS))
            .group_by(sa.literal_column("slot"), c.action)).all()
        first, last = int(since // size), int(until // size)
        series = {k: {"t": k * size, **dict.fromkeys(ACTIONS, 0)}
                  for k in range(first, last + 1)}
        totals = dict.fromkeys(ACTIONS, 0)
        for k, action, n in rows:
            point = series.setdefault(int(k), {"t": int(k) * size, **dict.fromkeys(ACTIONS, 0)})
            point[action] += int(n)
            totals[action] += int(n)
        return [series[k] for k in sorted(series)], totals

    def _top_rules(self, conn: sa.Connection, since: float, until: float
                   ) -> list[dict[str, Any]]:
        c = decisions.c
        rows = conn.execute(
            sa.select(c.rule_name, c.action, sa.func.count())
            .where(c.created_at >= since, c.created_at <= until, c.rule_name.is_not(None),
                   c.action.is_not(None))
            .group_by(c.rule_name, c.action)).all()
        rules: dict[str, dict[str, Any]] = {}
        for name, action, n in rows:
            rule = rules.setdefault(unescape_text(name), {"count": 0, "actions": {}})
            rule["count"] += int(n)
            rule["actions"][action] = int(n)
        ranked = sorted(rules.items(), key=lambda item: (-item[1]["count"], item[0]))
        return [{"rule": name, **data} for name, data in ranked[:TOP_RULES]]

    def _resolution(self, conn: sa.Connection, since: float, until: float
                    ) -> dict[str, Any]:
        """How long answered escalations waited (answered in the range): count, p50, p90
        (nearest rank), max, and a histogram over RESOLUTION_BANDS."""
        e = escalations.c
        took = (e.resolved_at - e.created_at)
        answered = sa.and_(e.resolved_at.is_not(None), e.resolved_at >= since,
                           e.resolved_at <= until)
        bands = [sa.func.sum(sa.case((took <= le, 1), else_=0)) for le in RESOLUTION_BANDS]
        row = conn.execute(sa.select(sa.func.count(), sa.func.max(took), *bands)
                           .where(answered)).one()
        count = int(row[0] or 0)
        result: dict[str, Any] = {"count": count, "p50_s": None, "p90_s": None,
                                  "max_s": None if row[1] is None else float(row[1])}
        cumulative = [int(v or 0) for v in row[2:]]
        previous = 0
        histogram: list[dict[str, Any]] = []
        for le, upto in zip(RESOLUTION_BANDS, cumulative, strict=True):
            histogram.append({"le": le, "count": upto - previous})
            previous = upto
        histogram.append({"le": None, "count": count - previous})
        result["histogram"] = histogram
        if count:
            for key, share in (("p50_s", 0.5), ("p90_s", 0.9)):
                rank = max(math.ceil(share * count) - 1, 0)
                value = conn.execute(sa.select(took).where(answered).order_by(took)
                                     .limit(1).offset(rank)).scalar()
                result[key] = None if value is None else float(value)
        return result
