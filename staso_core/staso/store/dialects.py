"""What differs between the databases the SQL store runs on, in one place: how an engine
is set up, the driver's parameter marks, how other processes hear of a change.

SQLite runs in WAL mode with immediate write locks; PostgreSQL (any URL that is not
SQLite) gets a connection pool and NOTIFY on every escalation change.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from ..errors import StoreUnavailable
from ..waiting import ChangeFeed
from .changes import PostgresChanges, SqliteChanges, announce

BUSY_TIMEOUT_MS = 30_000  # how long a write waits for another process's lock, at most
MIN_BUSY_MS = 50
HEALTH_LOCK_WAIT = 1.0  # seconds a health check waits for another process's write lock
_lock_deadline: ContextVar[float | None] = ContextVar("staso_lock_deadline", default=None)


@contextlib.contextmanager
def lock_waits_until(deadline: float | None) -> Iterator[None]:
    """Within this block (and the threads it hands work to with ``asyncio.to_thread``), a
    transaction waits for a locked database only until ``deadline`` (``time.monotonic()``),
    not the store's 30 s: a guard call with a timeout then fails closed in time instead of
    hanging behind another process's write lock."""
    token = _lock_deadline.set(deadline)
    try:
        yield
    finally:
        _lock_deadline.reset(token)


def _busy_ms() -> int:
    deadline = _lock_deadline.get()
    if deadline is None:
        return BUSY_TIMEOUT_MS
    # at least a moment: with a deadline already (nearly) gone, a write that merely meets
    # another in passing would fail instead of waiting the milliseconds it needs
    return max(MIN_BUSY_MS, min(BUSY_TIMEOUT_MS, int((deadline - time.monotonic()) * 1000)))


class Dialect:
    name = ""
    mark = "%s"  # the driver's parameter placeholder, for SQL handed to it directly

    def engine(self, url: str) -> sa.Engine:
        raise NotImplementedError

    def announce(self, conn: sa.Connection, ids: Iterable[str]) -> None:
        """Tell other processes, inside ``conn``'s transaction, that escalations changed."""

    def changes(self, engine: sa.Engine) -> ChangeFeed:
        """A change feed that also hears of other processes' changes."""
        raise NotImplementedError

    def unwritable(self, engine: sa.Engine) -> str | None:
        """Why the decision log cannot be written now, or None."""
        raise NotImplementedError


class SQLite(Dialect):
    name, mark = "sqlite", "?"

    def engine(self, url: str) -> sa.Engine:
        return _sqlite_engine(url)

    # announce: nothing to send; other processes see commits through PRAGMA data_version

    def changes(self, engine: sa.Engine) -> ChangeFeed:
        path = engine.url.database
        return SqliteChanges(path) if path else ChangeFeed()

    def unwritable(self, engine: sa.Engine) -> str | None:
        # take the write lock and let it go (an empty transaction writes nothing)
        with lock_waits_until(time.monotonic() + HEALTH_LOCK_WAIT), engine.begin():
            pass
        return None


class PostgreSQL(Dialect):
    name = "postgresql"

    def engine(self, url: str) -> sa.Engine:
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)

    def announce(self, conn: sa.Connection, ids: Iterable[str]) -> None:
        announce(conn, ids)

    def unwritable(self, engine: sa.Engine) -> str | None:
        with engine.connect() as conn:
            may_write, read_only = conn.execute(sa.text(
                "SELECT has_table_privilege('decisions', 'INSERT, UPDATE'), "
                "current_setting('transaction_read_only')")).one()
        if read_only == "on":
            return "the database is read-only"
        return None if may_write else "no permission to write the decisions table"

    def changes(self, engine: sa.Engine) -> ChangeFeed:
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresChanges(dsn)


def dialect_for(url: str) -> Dialect:
    return SQLite() if url.startswith("sqlite") else PostgreSQL()


def _sqlite_engine(url: str) -> sa.Engine:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a wrong STASO_HOME, a file where a folder should be: one line
            raise StoreUnavailable(f"cannot create the folder of the SQLite store {path}: "
                                   f"{exc.strerror or exc} ({exc.filename})") from exc
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # an acknowledged escalation survives a crash
        record.info["synchronous"] = "FULL"
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        record.info["busy_ms"] = BUSY_TIMEOUT_MS
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        options = conn.get_execution_options()
        # FULL syncs each commit to disk (survives power loss); NORMAL in WAL mode survives
        # any crash of the process (kill -9) but not of the machine. The decision log uses
        # NORMAL so a server can acknowledge decisions without an fsync each.
        sync = "NORMAL" if options.get("relaxed_sync") else "FULL"
        info = conn.connection.info
        if info.get("synchronous") != sync:
            conn.exec_driver_sql(f"PRAGMA synchronous={sync}")
            info["synchronous"] = sync
        busy = _busy_ms()  # a guard call's deadline bounds the wait for a lock
        if info.get("busy_ms") != busy:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={busy}")
            info["busy_ms"] = busy
        # writers take the lock up front, so two writers never deadlock on lock upgrade
        conn.exec_driver_sql("BEGIN" if options.get("readonly") else "BEGIN IMMEDIATE")

    return engine
