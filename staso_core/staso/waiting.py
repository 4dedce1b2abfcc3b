"""Wake waiting agents as soon as the escalation they wait on may have changed.

Waiters wait on one escalation id. In-process resolutions call ``changed(id)`` directly.
Resolutions by another process are seen two ways:

- SQLite: ``PRAGMA data_version`` changes whenever another connection commits. A watcher
  thread checks it every ``interval`` seconds while anyone waits, and on a change looks up
  only the escalations being waited on, waking the waiters of those no longer pending.
- PostgreSQL: the store sends ``NOTIFY staso_escalations, '<id>'`` inside every transaction
  that changes an escalation; a listener thread turns each into ``changed(id)``. This is how
  a resolution on one ``staso serve`` replica wakes long-polls on every other one.

A token (``token(id)``) taken before reading the escalation makes the wait race-free: a
change between the read and the wait ends the wait at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections import defaultdict
from typing import Any

log = logging.getLogger("staso")
CHANNEL = "staso_escalations"
_CHUNK = 500


class ChangeNotifier:
    def __init__(self, sqlite_path: str | None = None, interval: float = 0.02,
                 postgres_dsn: str | None = None) -> None:
        self._cond = threading.Condition()
        self._all = 0  # bumped by changed(None): every waiter re-checks
        self._versions: dict[str, int] = {}
        self._async: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = \
            defaultdict(set)
        self._waiting: dict[str, int] = defaultdict(int)  # id → number of waiters
        self._sqlite_path = sqlite_path
        self._postgres_dsn = postgres_dsn
        self._interval = interval
        self._watcher: threading.Thread | None = None
        self._closed = False

    # -- signalling ---------------------------------------------------------------------
    def token(self, key: str) -> int:
        with self._cond:
            return self._all + self._versions.get(key, 0)

    def changed(self, key: str | None = None) -> None:
        """Something about escalation ``key`` changed (None: maybe any of them)."""
        with self._cond:
            if key is None:
                self._all += 1
                targets = [w for ws in self._async.values() for w in ws]
            else:
                self._versions[key] = self._versions.get(key, 0) + 1
                targets = list(self._async.get(key, ()))
            if len(self._versions) > 50_000:  # forget idle ids; waiters re-check once
                self._versions = {k: v for k, v in self._versions.items() if k in self._waiting}
                self._all += 1
            self._cond.notify_all()
        for loop, event in targets:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(event.set)

    # -- waiting ------------------------------------------------------------------------
    def wait(self, key: str, since: int, timeout: float) -> None:
        """Return when escalation ``key`` changes after ``since``, or after ``timeout``."""
        self._enter(key)
        try:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._all + self._versions.get(key, 0) != since,
                    timeout=max(timeout, 0))
        finally:
            self._leave(key)

    async def wait_async(self, key: str, since: int, timeout: float) -> None:
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._cond:
            self._async[key].add(entry)
            changed = self._all + self._versions.get(key, 0) != since
        self._enter(key)
        try:
            if not changed:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=max(timeout, 0))
        finally:
            self._leave(key)
            with self._cond:
                waiters = self._async.get(key)
                if waiters is not None:
                    waiters.discard(entry)
                    if not waiters:
                        del self._async[key]

    def _enter(self, key: str) -> None:
        with self._cond:
            self._waiting[key] += 1
            if (self._sqlite_path or self._postgres_dsn) and not self._closed and (
                    self._watcher is None or not self._watcher.is_alive()):
                target = self._watch_sqlite if self._sqlite_path else self._listen_postgres
                self._watcher = threading.Thread(target=target, name="staso-watcher",
                                                 daemon=True)
                self._watcher.start()

    def _leave(self, key: str) -> None:
        with self._cond:
            self._waiting[key] -= 1
            if self._waiting[key] <= 0:
                del self._waiting[key]

    def close(self) -> None:
        self._closed = True

    # -- other processes ----------------------------------------------------------------
    def _watch_sqlite(self) -> None:
        assert self._sqlite_path is not None
        conn: Any = sqlite3.connect(self._sqlite_path, timeout=5, check_same_thread=False)
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            idle = threading.Event()
            while not self._closed:
                with self._cond:
                    if not self._waiting:
                        self._watcher = None
                        return
                idle.wait(self._interval)
                current = conn.execute("PRAGMA data_version").fetchone()[0]
                if current != last:
                    last = current
                    for key in self._answered(conn):
                        self.changed(key)
        except sqlite3.Error as exc:
            log.warning("staso: escalation watcher stopped: %s", exc)
            with self._cond:
                self._watcher = None

    def _answered(self, conn: Any) -> list[str]:
        """The waited-on escalations that are no longer pending."""
        with self._cond:
            keys = list(self._waiting)
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

    def _listen_postgres(self) -> None:
        import psycopg

        assert self._postgres_dsn is not None
        delay = 0.1
        while not self._closed:
            try:
                with psycopg.connect(self._postgres_dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.changed(None)  # anything missed while (re)connecting
                    delay = 0.1
                    while not self._closed:
                        for note in conn.notifies(timeout=1.0):
                            self.changed(note.payload or None)
            except Exception as exc:
                log.warning("staso: lost the PostgreSQL notification connection (%s); "
                            "retrying in %.1f s", exc, delay)
                self.changed(None)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
