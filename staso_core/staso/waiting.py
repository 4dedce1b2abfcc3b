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
import math
import threading
from collections import defaultdict
from collections.abc import Iterable


class ChangeFeed:
    """Waiters and wake-ups within one process; alone, it sees only in-process changes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._all = 0  # bumped by changed(None): every waiter re-checks
        self._versions: dict[str, int] = {}
        # async waiters: one bare future each, set when its escalation changes (an Event
        # and wait_for's inner task per waiter cost ~1.5 KB more, measured)
        self._async: dict[str, set[asyncio.Future[None]]] = {}
        # their timeouts, per event loop (each touched only from its own loop's thread)
        self._deadlines: dict[asyncio.AbstractEventLoop, _Deadlines] = {}
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
                targets = [f for fs in self._async.values() for f in fs]
            else:
                self._versions[key] = self._versions.get(key, 0) + 1
                targets = list(self._async.get(key, ()))
            if len(self._versions) > 50_000:  # forget idle ids; waiters re-check once
                self._versions = {k: v for k, v in self._versions.items() if k in self._waiting}
                self._all += 1
            self._cond.notify_all()
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for future in targets:
            by_loop.setdefault(future.get_loop(), []).append(future)
        for loop, futures in by_loop.items():  # one hop per loop, however many wake
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_wake_all, futures)

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
        """``wait_change`` for asyncio."""
        hold = self.hold(key, since, timeout)
        try:
            await hold.future
        finally:
            self.release(hold)

    def hold(self, key: str, since: int, timeout: float) -> Hold:
        """An asyncio wait on escalation ``key``: its future is set once the escalation
        changes after ``since`` (at once if it did) or ``timeout`` seconds pass. Call
        ``release`` after it. It costs one future: a server holds thousands."""
        loop = asyncio.get_running_loop()
        hold = Hold(key, loop.create_future())
        with self._cond:
            if self._all + self._versions.get(key, 0) != since:
                hold.future.set_result(None)
                return hold
            self._async.setdefault(key, set()).add(hold.future)
            self._enter(key)
        deadlines = self._deadlines.get(loop)
        if deadlines is None:
            deadlines = self._deadlines[loop] = _Deadlines(loop)
        hold.slot = deadlines.add(hold.future, loop.time() + max(timeout, 0))
        return hold

    def release(self, hold: Hold) -> None:
        """End a wait from ``hold`` (in the loop that holds it), whether or not it woke."""
        if hold.slot is None:  # it had changed already: nothing was registered
            return
        loop = hold.future.get_loop()
        deadlines = self._deadlines.get(loop)
        if deadlines is not None and deadlines.discard(hold.future, hold.slot):
            del self._deadlines[loop]  # none left on that loop: no map of dead loops
        hold.slot = None
        with self._cond:
            self._leave(hold.key)
            waiters = self._async.get(hold.key)
            if waiters is not None:
                waiters.discard(hold.future)
                if not waiters:
                    del self._async[hold.key]

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


class Hold:
    """One asyncio wait on an escalation (``ChangeFeed.hold``)."""

    __slots__ = ("future", "key", "slot")

    def __init__(self, key: str, future: asyncio.Future[None]) -> None:
        self.key, self.future = key, future
        self.slot: int | None = None  # its timeout's slot in _Deadlines, while registered

    def wake(self) -> None:
        """End the wait now (e.g. its caller hung up)."""
        _wake(self.future)


class _Deadlines:
    """Wakes futures at their timeouts, one timer per 50 ms slot shared by every future
    due in it: a timer per waiter (uvloop's handle, timer and context) cost 0.65 KB each,
    measured. A wait ends at most one slot late."""

    SLOT = 0.05  # seconds

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, tuple[asyncio.TimerHandle, set[asyncio.Future[None]]]] = {}

    def add(self, future: asyncio.Future[None], when: float) -> int:
        """Wake ``future`` at ``when`` (``loop.time()``); returns its slot."""
        slot = math.ceil(when / self.SLOT)
        entry = self._slots.get(slot)
        if entry is None:
            entry = self._slots[slot] = (
                self._loop.call_at(slot * self.SLOT, self._due, slot), set())
        entry[1].add(future)
        return slot

    def discard(self, future: asyncio.Future[None], slot: int) -> bool:
        """Forget ``future``; True if no slot is left."""
        entry = self._slots.get(slot)
        if entry is not None:
            entry[1].discard(future)
            if not entry[1]:
                entry[0].cancel()
                del self._slots[slot]
        return not self._slots

    def _due(self, slot: int) -> None:
        entry = self._slots.get(slot)
        if entry is not None:
            _wake_all(entry[1])


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wake_all(futures: Iterable[asyncio.Future[None]]) -> None:
    for future in futures:
        _wake(future)
