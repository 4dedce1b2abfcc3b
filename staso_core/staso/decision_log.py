"""The decision log writer: guard calls append to memory; a thread writes batches.

The allow path never waits on a disk sync. ``flush()`` (called by ``st.shutdown()`` and at
exit) writes whatever is queued before returning.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

from .store import Store

log = logging.getLogger("staso")
_OUTPUT_LIMIT = 2000


class DecisionLog:
    def __init__(self, store: Store, *, interval: float = 0.2, batch: int = 1000) -> None:
        self._store = store
        self._interval = interval
        self._batch = batch
        self._queue: deque[tuple[str, Any, Any]] = deque()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def add(self, row_factory: Any, payload: Any) -> None:
        """Queue a decision; ``row_factory(payload)`` builds its row later, off the hot path."""
        self._queue.append(("insert", row_factory, payload))
        self._ensure_thread()

    def update(self, decision_id: str, fields: dict[str, Any]) -> None:
        self._queue.append(("update", decision_id, fields))
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closed:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="staso-decision-log",
                                                    daemon=True)
                    self._thread.start()
        if len(self._queue) >= self._batch:
            self._wake.set()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # keep the records; try again next round
                log.warning("staso: decision log write failed, will retry: %s", exc)

    def flush(self) -> int:
        """Write everything queued now; return how many records were written."""
        written = 0
        with self._write_lock:
            while self._queue:
                items: list[tuple[str, Any, Any]] = []
                while self._queue and len(items) < self._batch:
                    items.append(self._queue.popleft())
                rows, updates = [], []
                for kind, a, b in items:
                    if kind == "insert":
                        rows.append(a(b))
                    else:
                        updates.append((a, b))
                try:
                    self._store.write_decisions(rows, updates)
                except Exception:
                    self._queue.extendleft(reversed(items))
                    raise
                written += len(items)
        return written

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


def truncate(text: str, limit: int = _OUTPUT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"
