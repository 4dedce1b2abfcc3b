"""Wake waiting agents as soon as the escalation they wait on may have changed.

Waiters wait on one escalation id. In-process resolutions call ``changed(id)`` directly.
How resolutions by another process are seen depends on the database, so each store backend
hands out its own ``ChangeFeed`` (``store.changes()``): a subclass whose ``_watch()`` runs on
a thread while anyone waits and calls ``changed`` for what it learns (the SQL store's feeds,
polling SQLite and listening on PostgreSQL, are in ``staso.store.changes``). This module is
the part every backend shares: tokens, waiters, wake-ups.

A token (``token(id)``) taken before reading the escalation makes the wait race-free: a
change between the read and the wait ends the wait at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict


class ChangeFeed:
    """Waiters and wake-ups within one process; alone, it sees only in-process changes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._all = 0  # bumped by changed(None): every waiter re-checks
        self._versions: dict[str, int] = {}
        self._async: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = \
            defaultdict(set)
        self._waiting: dict[str, int] = defaultdict(int)  # id → number of waiters
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
    def wait_change(self, key: str, since: int, timeout: float) -> None:
        """Return when escalation ``key`` changes after ``since``, or after ``timeout``."""
        self._enter(key)
        try:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._all + self._versions.get(key, 0) != since,
                    timeout=max(timeout, 0))
        finally:
            self._leave(key)

    async def await_change(self, key: str, since: int, timeout: float) -> None:
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
            if self.watches and not self._closed and (
                    self._watcher is None or not self._watcher.is_alive()):
                self._watcher = threading.Thread(target=self._run_watcher,
                                                 name="staso-watcher", daemon=True)
                self._watcher.start()

    def _leave(self, key: str) -> None:
        with self._cond:
            self._waiting[key] -= 1
            if self._waiting[key] <= 0:
                del self._waiting[key]

    def close(self) -> None:
        self._closed = True

    # -- other processes: what a backend's feed overrides --------------------------------
    watches = False  # True where _watch() learns of other processes' changes

    def _watch(self) -> None:
        """Call ``changed`` for changes made elsewhere until ``closed``, or until
        ``_idle()`` says no one waits. Runs on its own thread, started by the first
        waiter."""

    @property
    def closed(self) -> bool:
        return self._closed

    def _waited_on(self) -> list[str]:
        """The escalation ids someone waits on now."""
        with self._cond:
            return list(self._waiting)

    def _idle(self) -> bool:
        """Whether no one waits; if so the watcher is forgotten at once (under the same
        lock a new waiter takes), so the next waiter starts a fresh one."""
        with self._cond:
            if self._waiting:
                return False
            self._watcher = None
            return True

    def _run_watcher(self) -> None:
        try:
            self._watch()
        finally:
            with self._cond:
                if self._watcher is threading.current_thread():
                    self._watcher = None
