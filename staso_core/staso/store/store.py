"""The SQLAlchemy store: escalations and the decision log on SQLite or PostgreSQL (API
keys and policy versions come from ``keys.py`` and ``policies.py``).

What differs between the two lives in ``dialects.py``; this file is written once for both.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError

from ..approvers import Approver, answer_values
from ..errors import DecisionIdReused, EscalationConflict, EscalationNotFound, StoreUnavailable
from ..models import Escalation, RawJSON
from ..result_templates import CompactResults, ResultTemplate
from ..settings import store_file
from ..waiting import ChangeFeed
from .decisions import DecisionRows
from .dialects import dialect_for, lock_waits_until
from .escaping import MARKER, escape_text, unescape_row, unescape_text
from .grants import GrantRows, insert_grant
from .keys import KeyRows
from .links import LinkRows
from .notices import NoticeRows
from .policies import PolicyRows
from .policy_history import PolicyHistoryRows
from .schema import decisions, escalations, metadata
from .sessions import SessionRows

log = logging.getLogger("staso")
MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0006"
_ESC_COLUMNS = {c.name for c in escalations.columns} - {"consumed_by", "announced"}
_DECISION_COLUMNS = [c.name for c in decisions.columns]
_DECISION_COLUMN_SET = frozenset(_DECISION_COLUMNS)
_JSON_COLUMNS = frozenset(c.name for c in decisions.columns if isinstance(c.type, sa.JSON))
_DECISION_TEXT = _DECISION_COLUMN_SET - _JSON_COLUMNS
_ESC_TEXT = frozenset(c.name for c in escalations.columns if not isinstance(c.type, sa.JSON))


LOG_LOCK_WAIT = 5.0  # seconds a decision-log write waits for a locked SQLite file


def _cannot_write(exc: sa.exc.DBAPIError) -> bool:
    """Whether a failed write is the database's state, not the rows': connection lost,
    locked, disk full, read-only, or no permission to write."""
    if isinstance(exc, (OperationalError, sa.exc.InterfaceError, sa.exc.InternalError)):
        return True
    return getattr(exc.orig, "sqlstate", None) == "42501"  # insufficient_privilege


# Python's own encoder, kept (a JSONEncoder built per call was ~1 µs of each of a row's
# four or five JSON columns), for what orjson refuses: a lone surrogate, an int over 64 bits
_python_json = json.JSONEncoder(separators=(",", ":")).encode
# datetimes and dataclasses are not JSON for Python's encoder: orjson hands them back too
_STDLIB_TYPES_ONLY = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _encode_json(value: Any) -> str:
    """A JSON column's text. orjson writes plain text ~10x faster than Python's encoder, and
    holds the GIL that much less: 1 MB of ASCII held it ~3.7 ms in the log's thread, which
    the server's other requests waited for (benchmarks/stall.py). Text that is not all
    ASCII is written by Python's encoder, as before: ``\\u`` escapes fit a database that is
    not UTF-8, and the text stays what earlier releases wrote. orjson's floats can be
    written differently (``1e-7`` for ``1e-07``): the same value (``_same_json``)."""
    try:
        text = orjson.dumps(value, option=_STDLIB_TYPES_ONLY).decode()
    except TypeError:  # (orjson.JSONEncodeError is one)
        return _python_json(value)
    return text if text.isascii() else _python_json(value)


def _same_json(a: str, b: str) -> bool:
    """Whether two JSON texts hold the same value, types included (1, 1.0 and true are
    three values): a row written by another release may spell a float differently."""
    if a == b:
        return True
    try:
        return _python_json(json.loads(a)) == _python_json(json.loads(b))
    except (TypeError, ValueError, RecursionError):
        return False


def _json_text(value: Any) -> str | None:
    if isinstance(value, RawJSON):
        return str(value)
    return None if value is None else _encode_json(value)


_EMPTY_JSON: dict[type, str] = {list: "[]", dict: "{}", tuple: "[]"}
# A null a column may simply be left out of the INSERT for (nullable, no default): the
# sqlite3 module binds a None through two failed attribute lookups (~0.3 µs each on the
# round-2 report machine), and an allow's row has a dozen of them. Rows are inserted in
# groups of the same columns (``_decision_values`` returns which, as bits).
_OMITTABLE = frozenset(c.name for c in decisions.columns if c.nullable and
                       c.server_default is None and c.default is None)
_DECISION_KINDS = tuple((c, c in _JSON_COLUMNS, 1 << i if c in _OMITTABLE else 0)
                        for i, c in enumerate(_DECISION_COLUMNS))


def _decision_values(row: dict[str, Any], templates: dict[str, ResultTemplate]
                     ) -> tuple[int, tuple[Any, ...]]:
    """A decision row as the driver takes it (``_decision_value`` for every column it
    holds), in one loop with the common cases inline: a call per column was a third of the
    log's CPU. Returns the bits of the nullable columns it holds (``_OMITTABLE``; their
    nulls are left out) and the values. Compact rule results are written as such, their
    template added to ``templates``."""
    out: list[Any] = []
    held = 0
    get = row.get
    for column, is_json, bit in _DECISION_KINDS:
        value = get(column)
        if value is None:
            if not bit:
                out.append(None)  # (a column that must hold something refuses it)
            continue
        held |= bit
        if is_json:
            if type(value) is CompactResults:
                templates[value.template.key] = value.template
                out.append(value.compact)
            elif isinstance(value, RawJSON):
                out.append(str(value))
            else:  # most rows' context, rules_triggered and modifications are empty:
                # a constant for those spares an encoder call each (~1 µs apiece)
                empty = None if value else _EMPTY_JSON.get(type(value))
                out.append(_encode_json(value) if empty is None else empty)
        elif type(value) is str and value.isascii() and "\x00" not in value \
                and not value.startswith(MARKER):
            out.append(value)  # plain text: as it is (escape_text would say the same)
        else:
            out.append(escape_text(value))
    return held, tuple(out)


def _decision_columns(held: int) -> list[str]:
    """The columns a row holding ``held`` (``_decision_values``) is inserted with."""
    return [c for c, _, bit in _DECISION_KINDS if not bit or held & bit]


def _decision_value(column: str, value: Any) -> Any:
    """A decision column's value as the driver takes it: JSON columns as JSON text, text
    a database cannot hold escaped (``escaping.py``)."""
    return _json_text(value) if column in _JSON_COLUMNS else escape_text(value)


def _escaped(values: dict[str, Any]) -> dict[str, Any]:
    """Escalation column values as stored: text a database cannot hold, escaped."""
    return {k: escape_text(v) if k in _ESC_TEXT else v for k, v in values.items()}


def sqlite_url(home: str | Path) -> str:
    return f"sqlite:///{store_file(home)}"


def new_escalation_id() -> str:
    return "esc_" + secrets.token_hex(12)


def _row_to_escalation(row: Any) -> Escalation:
    data = {k: v for k, v in row._mapping.items() if k in _ESC_COLUMNS}
    data["approvals"] = data.get("approvals") or []
    return Escalation(**unescape_row(data, _ESC_TEXT))


class Store(KeyRows, PolicyRows, SessionRows, NoticeRows, LinkRows, GrantRows,
            DecisionRows, PolicyHistoryRows):
    """Escalations, decisions, API keys, policy versions, ended dashboard sessions and the
    approval channels' notices on one database. Thread-safe; safe across processes."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.dialect = dialect_for(url)
        self.engine = self.dialect.engine(url)
        self._mark = self.dialect.mark
        if migrate:
            self.migrate()

    def changes(self) -> ChangeFeed:
        """A change feed that hears of other processes' changes the way this database
        allows (see ``changes.py``)."""
        return self.dialect.changes(self.engine)

    def _announce(self, conn: sa.Connection, ids: Iterable[str]) -> None:
        """Tell other processes' waiters, when this transaction commits."""
        self.dialect.announce(conn, ids)

    # -- schema -------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema to the newest revision; cheap when it already is."""
        current = None
        try:
            with self._read() as conn:
                current = conn.execute(sa.text("SELECT version_num FROM alembic_version")
                                       ).scalar()
            if current == HEAD_REVISION:
                return
        except (OperationalError, sa.exc.ProgrammingError):
            pass
        from alembic import command
        from alembic.config import Config
        from alembic.util import CommandError

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailable(f"cannot prepare the database at {self.url}: {exc}") from exc
        except CommandError as exc:  # a schema newer than this release knows (a downgrade)
            raise StoreUnavailable(
                f"the database at {self.url} has schema revision {current!r}, which this "
                f"staso release does not know (it knows up to {HEAD_REVISION}): run the "
                f"release that migrated it, or downgrade the schema first ({exc})") from exc

    # -- escalations --------------------------------------------------------------------
    def get_escalation(self, escalation_id: str) -> Escalation:
        with self._read() as conn:
            row = conn.execute(sa.select(escalations).where(escalations.c.id == escalation_id)
                               ).first()
        if row is None:
            raise EscalationNotFound(f"no escalation with id {escalation_id!r}")
        esc = _row_to_escalation(row)
        if esc.effective_status() != esc.status:
            esc = replace(esc, status=esc.effective_status())
        return esc

    def list_escalations(self, *, status: str | None = None, agent: str | None = None,
                         tool: str | None = None, rule: str | None = None,
                         limit: int = 100, before: str | None = None) -> list[Escalation]:
        """Newest first (ties by id); ``before``: only those older than that escalation
        (the last of a page), so a history can be paged past any length."""
        self.expire_due()
        e = escalations.c
        query = sa.select(escalations).order_by(e.created_at.desc(), e.id.desc()).limit(limit)
        for column, value in (("status", status), ("agent_name", agent), ("tool_name", tool),
                              ("rule_name", rule)):
            if value:
                query = query.where(escalations.c[column] == escape_text(value))
        with self._read() as conn:
            if before:
                before = escape_text(before)  # (ids never need it: NUL then finds none)
                at = conn.execute(sa.select(e.created_at).where(e.id == before)).scalar()
                if at is None:
                    raise EscalationNotFound(f"no escalation with id {before!r} (before=)")
                query = query.where(sa.or_(e.created_at < at,
                                           sa.and_(e.created_at == at, e.id < before)))
            return [_row_to_escalation(r) for r in conn.execute(query)]

    def count_escalations(self, status: str) -> int:
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(escalations)
                                    .where(escalations.c.status == status)).scalar() or 0)

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))

    def unwritable(self) -> str | None:
        """Why decisions cannot be written now (None: they can): a health check's question,
        answered without writing anything."""
        try:
            return self.dialect.unwritable(self.engine)
        except sa.exc.DBAPIError as exc:
            return f"the database cannot be written: {exc}"

    def expire_due(self, now: float | None = None) -> list[str]:
        """Mark every pending escalation past its expiry as timed out; return their ids."""
        now = now or time.time()
        due = sa.and_(escalations.c.status == "pending", escalations.c.expires_at <= now)
        with self._read() as conn:  # (mostly none: a write transaction only when some are)
            if conn.execute(sa.select(escalations.c.id).where(due).limit(1)).first() is None:
                return []
        with self.engine.begin() as conn:
            ids = [r[0] for r in conn.execute(sa.select(escalations.c.id).where(due))]
            if ids:
                conn.execute(escalations.update().where(due, escalations.c.id.in_(ids))
                             .values(status="timeout"))
                self._announce(conn, ids)
        return ids

    def open_escalation(self, *, fingerprint: str, decision_id: str, values: dict[str, Any],
                        expires_at: float, claim_window: float, extend: bool = False,
                        now: float | None = None) -> tuple[Escalation, str]:
        """Find or create the escalation for a call, atomically.

        Returns (escalation, how): ``existing`` (this decision id made it already),
        ``claimed`` (an answered, unused escalation for the same call, now used up),
        ``pending`` (one awaits a person already) or ``created``. With ``extend``, a pending
        escalation that would expire before ``expires_at`` is kept open until then.
        """
        for attempt in range(3):
            try:
                return self._open_escalation(fingerprint, decision_id, values, expires_at,
                                             claim_window, extend, now or time.time())
            except IntegrityError:  # a concurrent creator won the unique index: look again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _open_escalation(self, fingerprint: str, decision_id: str, values: dict[str, Any],
                         expires_at: float, claim_window: float, extend: bool, now: float
                         ) -> tuple[Escalation, str]:
        e = escalations.c
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(escalations).where(e.decision_id == decision_id)).first()
            if row is not None:
                if row.fingerprint != fingerprint:  # the id is another call's: never its answer
                    raise DecisionIdReused(f"decision id {decision_id!r} already belongs to "
                                           "another call; send a new one")
                return _row_to_escalation(row), "existing"
            conn.execute(escalations.update().where(
                e.fingerprint == fingerprint, e.status == "pending", e.expires_at <= now
            ).values(status="timeout"))
            answered = conn.execute(
                sa.select(escalations).where(
                    e.fingerprint == fingerprint, e.status.in_(("approved", "denied")),
                    e.consumed_at.is_(None), e.resolved_at >= now - claim_window)
                .order_by(e.resolved_at.desc()).limit(1)).first()
            if answered is not None:
                claimed = conn.execute(escalations.update().where(
                    e.id == answered.id, e.consumed_at.is_(None)
                ).values(consumed_at=now, consumed_by=decision_id)).rowcount
                if claimed == 1:
                    esc = _row_to_escalation(answered)
                    return replace(esc, consumed_at=now), "claimed"
            pending = conn.execute(sa.select(escalations).where(
                e.fingerprint == fingerprint, e.status == "pending")).first()
            if pending is not None:
                esc = _row_to_escalation(pending)
                if extend and esc.expires_at < expires_at:
                    conn.execute(escalations.update().where(e.id == esc.id)
                                 .values(expires_at=expires_at))
                    esc = replace(esc, expires_at=expires_at)
                return esc, "pending"
            row_values = dict(values)
            row_values.update(id=new_escalation_id(), fingerprint=fingerprint,
                              decision_id=decision_id, status="pending", created_at=now,
                              expires_at=expires_at)
            conn.execute(escalations.insert().values(**_escaped(row_values)))
            self._announce(conn, [row_values["id"]])
        return Escalation(**row_values), "created"

    def resolve(self, escalation_id: str, *, status: str, by: str, comment: str | None = None,
                modified_input: dict[str, Any] | None = None, via: str | None = None,
                approver: Approver | None = None, grant: dict[str, Any] | None = None,
                now: float | None = None) -> Escalation:
        """Approve or deny; one approval toward a quorum, or the answer, exactly once.

        ``approver``: who answers (default: a person named ``by``), checked against the
        escalation's approvers in this transaction (NotAnApprover). An approval short of
        ``approvals_required`` is recorded and the escalation stays pending; the same person
        twice, an answer to an answered or expired escalation: EscalationConflict.
        ``grant``: a checked scope (``grants.scope_from``) written with the final approval.
        ``via``: where the answer came from (api, dashboard, slack, email, cli)."""
        if status not in ("approved", "denied"):
            raise ValueError(f"status must be approved or denied, not {status!r}")
        now = now or time.time()
        who = approver or Approver(name=by)
        e = escalations.c
        with self.engine.begin() as conn:
            # the row lock (PostgreSQL; SQLite's write lock is taken at BEGIN) makes
            # concurrent answers to one escalation count one after another
            row = conn.execute(sa.select(escalations).where(e.id == escalation_id)
                               .with_for_update()).first()
            if row is None:
                raise EscalationNotFound(f"no escalation with id {escalation_id!r}")
            esc = _row_to_escalation(row)
            if esc.status == "pending" and esc.expires_at <= now:
                conn.execute(escalations.update().where(e.id == escalation_id,
                                                        e.status == "pending")
                             .values(status="timeout"))
                self._announce(conn, [escalation_id])
                expired = True
            elif esc.status == "pending":
                return self._answer(conn, esc, who, status=status, by=by, comment=comment,
                                    modified_input=modified_input, via=via, grant=grant,
                                    now=now)
            else:
                expired = False
        if expired:
            raise EscalationConflict(
                f"escalation {escalation_id} expired at {time.ctime(esc.expires_at)}; "
                "it can no longer be approved or denied", status="timeout")
        who_said = f" by {esc.resolved_by}" if esc.resolved_by else ""
        raise EscalationConflict(f"escalation {escalation_id} is already {esc.status}"
                                 f"{who_said}", status=esc.status)

    def _answer(self, conn: sa.Connection, esc: Escalation, who: Approver, *, status: str,
                by: str, comment: str | None, modified_input: dict[str, Any] | None,
                via: str | None, grant: dict[str, Any] | None, now: float) -> Escalation:
        """One person's answer to a pending escalation, inside ``resolve``'s transaction."""
        values = answer_values(esc, who, status=status, by=by, comment=comment,
                               modified_input=modified_input, via=via,
                               granting=grant is not None, now=now)
        done = conn.execute(escalations.update().where(
            escalations.c.id == esc.id, escalations.c.status == "pending"
        ).values(**_escaped(values))).rowcount
        if done != 1:  # (the row is locked: only a change of the schema could do this)
            raise EscalationConflict(f"escalation {esc.id} changed while answered",
                                     status="pending")
        if grant is not None and values.get("status") == "approved":
            insert_grant(conn, grant, by=who.name, via=via, now=now)
        self._announce(conn, [esc.id])
        return replace(esc, **values)

    def last_answer(self, fingerprint: str, since: float) -> Escalation | None:
        """The newest person's answer (approved or denied) to this call since ``since``."""
        e = escalations.c
        with self._read() as conn:
            row = conn.execute(sa.select(escalations).where(
                e.fingerprint == fingerprint, e.status.in_(("approved", "denied")),
                e.resolved_at >= since).order_by(e.resolved_at.desc()).limit(1)).first()
        return None if row is None else _row_to_escalation(row)

    def expire(self, escalation_id: str, now: float | None = None) -> tuple[Escalation, bool]:
        """Time out one escalation if it is due; return it as it now stands, and whether
        this call is the one that timed it out."""
        now = now or time.time()
        e = escalations.c
        with self.engine.begin() as conn:
            changed = bool(conn.execute(escalations.update().where(
                e.id == escalation_id, e.status == "pending", e.expires_at <= now
            ).values(status="timeout")).rowcount)
            if changed:
                self._announce(conn, [escalation_id])
        return self.get_escalation(escalation_id), changed

    def claim(self, escalation_id: str, decision_id: str, now: float | None = None) -> bool:
        """Use up an answered escalation for one call; False if another call used it."""
        e = escalations.c
        with self.engine.begin() as conn:
            return bool(conn.execute(escalations.update().where(
                e.id == escalation_id, e.status.in_(("approved", "denied")),
                e.consumed_at.is_(None)
            ).values(consumed_at=now or time.time(), consumed_by=decision_id)).rowcount)

    # -- decision log -------------------------------------------------------------------
    def write_decisions(self, rows: Iterable[dict[str, Any]],
                        updates: Iterable[tuple[str, dict[str, Any]]] = ()) -> None:
        """Insert decision rows (a retried row changes nothing) and apply updates, in one
        transaction. Rows go through the driver's executemany with JSON encoded once here:
        SQLAlchemy's per-row parameter processing was most of a server's write cost."""
        rows, updates = list(rows), list(updates)
        if not rows and not updates:
            return
        try:
            # a locked SQLite file is waited for only a few seconds: the log reports
            # itself failing (and a server /healthz degraded) instead of hanging for 30 s
            with lock_waits_until(time.monotonic() + LOG_LOCK_WAIT):
                written = self._write_decisions(rows, updates)
            self._written_templates(written)  # (committed: known to be there from now)
        except sa.exc.DBAPIError as exc:
            if _cannot_write(exc):
                raise StoreUnavailable(f"the database could not be written: {exc}") from exc
            raise

    def _write_decisions(self, rows: list[dict[str, Any]],
                         updates: list[tuple[str, dict[str, Any]]]) -> list[str]:
        """Returns the keys of the results templates it wrote."""
        new_templates: list[str] = []
        with self.engine.connect().execution_options(relaxed_sync=True) as conn, \
                conn.begin():
            if rows:
                templates: dict[str, ResultTemplate] = {}
                groups: dict[int, list[tuple[Any, ...]]] = {}
                for row in rows:
                    held, values = _decision_values(row, templates)
                    groups.setdefault(held, []).append(values)
                new_templates = self._write_templates(conn, templates) if templates else []
                inserted = sum(conn.exec_driver_sql(self._insert_decisions(held), values)
                               .rowcount for held, values in groups.items())
                if inserted < len(rows):  # some ids were there: retries, or reused ids
                    self._check_same_calls(conn, groups)
            # consecutive updates of the same columns go in one executemany, in order:
            # building a SQLAlchemy UPDATE per tool execution cost more than the write
            start = 0
            while start < len(updates):
                names = tuple(updates[start][1])
                end = start + 1
                while end < len(updates) and tuple(updates[end][1]) == names:
                    end += 1
                conn.exec_driver_sql(self._update_decisions(names), [
                    (*(_decision_value(c, f[c]) for c in names), d)
                    for d, f in updates[start:end]])
                start = end
        return new_templates

    def _check_same_calls(self, conn: sa.Connection,
                          groups: dict[int, list[tuple[Any, ...]]]) -> None:
        """Raise DecisionIdReused if a row's id is already another call's: a retry of the
        same call is written once, but a reused id must not be acknowledged as recorded
        while the log keeps the other call under it."""
        c = decisions.c
        given: dict[str, set[tuple[Any, ...]]] = {}
        for held, values in groups.items():
            columns = _decision_columns(held)
            key = [columns.index(n) if n in columns else None
                   for n in ("agent_name", "tool_name", "tool_input")]
            for row in values:  # (the id is always the first column)
                given.setdefault(row[0], set()).add(
                    tuple(None if i is None else row[i] for i in key))
        stored = conn.execute(sa.select(c.id, c.agent_name, c.tool_name,
                                        sa.cast(c.tool_input, sa.Text))
                              .where(c.id.in_(list(given)))).all()
        reused = sorted(r[0] for r in stored if not all(
            (agent, tool) == (r[1], r[2]) and _same_json(text, r[3])
            for agent, tool, text in given[r[0]]))
        if reused:
            raise DecisionIdReused(f"decision id(s) {', '.join(reused[:5])} already belong to "
                                   "another call; the log keeps the first")

    def _update_decisions(self, names: tuple[str, ...]) -> str:
        unknown = set(names) - _DECISION_COLUMN_SET
        if unknown or not names:
            raise ValueError(f"not decision columns: {sorted(unknown) or 'none given'}")
        mark = self._mark
        return (f"UPDATE decisions SET {', '.join(f'{n} = {mark}' for n in names)} "
                f"WHERE id = {mark}")

    def _insert_decisions(self, held: int) -> str:
        columns = _decision_columns(held)
        return (f"INSERT INTO decisions ({', '.join(columns)}) VALUES "
                f"({', '.join([self._mark] * len(columns))}) ON CONFLICT DO NOTHING")

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(decisions).where(
                decisions.c.id == escape_text(decision_id))).first()
            if row is None:
                return None
            data = self._expanded(conn, [dict(row._mapping)])[0]
        return unescape_row(data, _DECISION_TEXT)

    def decision_agents(self, decision_ids: list[str]) -> dict[str, str]:
        """The agent name of each of these decisions that is recorded."""
        found: dict[str, str] = {}
        c = decisions.c
        with self._read() as conn:
            for i in range(0, len(decision_ids), 500):
                chunk = decision_ids[i:i + 500]
                found.update((r.id, unescape_text(r.agent_name)) for r in conn.execute(
                    sa.select(c.id, c.agent_name).where(c.id.in_(chunk))))
        return found

    def list_decisions(self, *, limit: int = 100, tool: str | None = None
                       ) -> list[dict[str, Any]]:
        query = sa.select(decisions).order_by(decisions.c.created_at.desc()).limit(limit)
        if tool:
            query = query.where(decisions.c.tool_name == escape_text(tool))
        with self._read() as conn:
            rows = self._expanded(conn, [dict(r._mapping) for r in conn.execute(query)])
        return [unescape_row(row, _DECISION_TEXT) for row in rows]

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["Store", "metadata", "sqlite_url"]
