"""How the SQL store learns that another process changed an escalation (its change feed).

- SQLite: ``PRAGMA data_version`` changes whenever another connection commits. The watcher
  checks it every ``interval`` seconds while anyone waits, and on a change looks up only the
  escalations being waited on, waking the waiters of those no longer pending.
- PostgreSQL: the store sends ``NOTIFY staso_escalations, '<id>'`` inside every transaction
  that changes an escalation (``announce``); a listener turns each into ``changed(id)``.
  This is how a resolution on one ``staso serve`` replica wakes long-polls on every other.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ..waiting import ChangeFeed

log = logging.getLogger("staso")
CHANNEL = "staso_escalations"
_CHUNK = 500


class SqliteChanges(ChangeFeed):
    watches = True

    def __init__(self, path: str, interval: float = 0.02) -> None:
        super().__init__()
        self._path, self._interval = path, interval

    def _watch(self) -> None:
        conn: Any = sqlite3.connect(self._path, timeout=5, check_same_thread=False)
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            idle = threading.Event()
            while not self.closed and not self._idle():
                idle.wait(self._interval)
                current = conn.execute("PRAGMA data_version").fetchone()[0]
                if current != last:
                    last = current
                    for key in self._answered(conn):
                        self.changed(key)
        except sqlite3.Error as exc:
            log.warning("staso: escalation watcher stopped: %s", exc)
        finally:
            conn.close()

    def _answered(self, conn: Any) -> list[str]:
        """The waited-on escalations that are no longer pending."""
        keys = self._waited_on()
        found: list[str] = []
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            try:
                found += [r[0] for r in conn.execute(
                    f"SELECT id FROM escalations WHERE status != 'pending' AND id IN ({marks})",
                    chunk)]
            except sqlite3.OperationalError:  # no table yet
                return []
        return found


class PostgresChanges(ChangeFeed):
    watches = True

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._dsn = dsn  # libpq form: LISTEN needs a connection of its own, outside the pool

    def _watch(self) -> None:
        import psycopg

        delay = 0.1
        while not self.closed:
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.changed(None)  # anything missed while (re)connecting
                    delay = 0.1
                    while not self.closed:
                        for note in conn.notifies(timeout=1.0):
                            self.changed(note.payload or None)
            except Exception as exc:
                log.warning("staso: lost the PostgreSQL notification connection (%s); "
                            "retrying in %.1f s", exc, delay)
                self.changed(None)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


def announce(conn: sa.Connection, ids: Iterable[str]) -> None:
    """NOTIFY every replica's listener when ``conn``'s transaction commits (PostgreSQL)."""
    for escalation_id in ids:
        conn.execute(sa.text("SELECT pg_notify(:channel, :id)"),
                     {"channel": CHANNEL, "id": escalation_id})
