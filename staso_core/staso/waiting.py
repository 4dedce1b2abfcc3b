"""Wake waiting agents as soon as an escalation may have changed.

In-process resolutions call ``changed()`` directly. Resolutions by another process (the CLI,
``staso serve`` on the same SQLite file) are seen through SQLite's ``PRAGMA data_version``,
which changes whenever another connection commits: a watcher thread checks it every
``interval`` seconds, but only while someone is waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from typing import Any


class ChangeNotifier:
    def __init__(self, sqlite_path: str | None = None, interval: float = 0.02) -> None:
        self._cond = threading.Condition()
        self._version = 0
        self._async: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._sqlite_path = sqlite_path
        self._interval = interval
        self._waiters = 0
        self._watcher: threading.Thread | None = None

    @property
    def version(self) -> int:
        return self._version

    def changed(self) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()
            waiters = list(self._async)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(event.set)

    def wait(self, since: int, timeout: float) -> None:
        """Return when the version moves past ``since`` or ``timeout`` passes."""
        self._enter()
        try:
            with self._cond:
                self._cond.wait_for(lambda: self._version != since, timeout=max(timeout, 0))
        finally:
            self._leave()

    async def wait_async(self, since: int, timeout: float) -> None:
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._cond:
            self._async.add(entry)
        self._enter()
        try:
            if self._version == since:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=max(timeout, 0))
        finally:
            self._leave()
            with self._cond:
                self._async.discard(entry)

    def _enter(self) -> None:
        with self._cond:
            self._waiters += 1
            if self._sqlite_path and (self._watcher is None or not self._watcher.is_alive()):
                self._watcher = threading.Thread(target=self._watch, name="staso-watcher",
                                                 daemon=True)
                self._watcher.start()

    def _leave(self) -> None:
        with self._cond:
            self._waiters -= 1

    def _watch(self) -> None:
        assert self._sqlite_path is not None
        conn: Any = sqlite3.connect(self._sqlite_path, timeout=5, check_same_thread=False)
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            idle = threading.Event()
            while True:
                with self._cond:
                    if self._waiters <= 0:
                        self._watcher = None
                        return
                idle.wait(self._interval)
                current = conn.execute("PRAGMA data_version").fetchone()[0]
                if current != last:
                    last = current
                    self.changed()
        except sqlite3.Error:
            with self._cond:
                self._watcher = None
        finally:
            conn.close()
