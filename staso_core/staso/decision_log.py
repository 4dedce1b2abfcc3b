"""The decision log writer: guard calls append to memory; a thread writes batches.

Embedded, the allow path never waits on a disk sync: ``flush()`` (called by
``st.shutdown()`` and at exit) writes whatever is queued. The server instead waits for its
record's commit before answering (``committed``), so nothing it acknowledged is lost on a
crash; concurrent requests share each commit (group commit), which keeps that cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from typing import Any, Protocol

log = logging.getLogger("staso")
_OUTPUT_LIMIT = 2000


class Sink(Protocol):
    """Where records go: the store, or a staso server (remote mode)."""

    def write_decisions(self, rows: list[dict[str, Any]],
                        updates: list[tuple[str, dict[str, Any]]]) -> None: ...


class DecisionLog:
    def __init__(self, store: Sink, *, interval: float = 0.2, batch: int = 1000) -> None:
        self._store = store
        self._interval = interval
        self._batch = batch
        self._queue: deque[tuple[int, str, Any, Any]] = deque()
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._committed = 0  # every record up to this sequence number is written
        self._done = threading.Condition()
        self._futures: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def add(self, row_factory: Any, payload: Any, *, urgent: bool = False) -> int:
        """Queue a decision; ``row_factory(payload)`` builds its row later, off the hot path.

        Returns the record's sequence number for ``committed``; ``urgent`` writes it now
        instead of at the next interval.
        """
        return self._push("insert", row_factory, payload, urgent)

    def update(self, decision_id: str, fields: dict[str, Any], *, urgent: bool = False) -> int:
        return self._push("update", decision_id, fields, urgent)

    def _push(self, kind: str, a: Any, b: Any, urgent: bool) -> int:
        with self._seq_lock:  # queue order is sequence order
            self._seq += 1
            seq = self._seq
            self._queue.append((seq, kind, a, b))
        if self._thread is None and not self._closed:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="staso-decision-log",
                                                    daemon=True)
                    self._thread.start()
        if (urgent or len(self._queue) >= self._batch) and not self._wake.is_set():
            self._wake.set()  # set() takes a lock: under load every push would pay it
        return seq

    async def committed(self, seq: int) -> None:
        """Return once record ``seq`` is written; raise if its write failed."""
        if self._committed >= seq:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._done:
            if self._committed >= seq:
                return
            self._futures.append((seq, loop, future))
        self._wake.set()
        await future

    def wait_committed(self, seq: int, timeout: float) -> bool:
        with self._done:
            return self._done.wait_for(lambda: self._committed >= seq, timeout=timeout)

    def _settle(self, upto: int, error: BaseException | None) -> None:
        """Wake whoever waits for records up to ``upto`` (written, or failed with ``error``)."""
        with self._done:
            if error is None:
                self._committed = max(self._committed, upto)
                self._done.notify_all()
            ready = [f for f in self._futures if f[0] <= upto]
            self._futures = [f for f in self._futures if f[0] > upto]
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, loop, future in ready:
            by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():  # one wake-up per loop for the whole batch
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_set_futures, futures, error)

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
                items: list[tuple[int, str, Any, Any]] = []
                while self._queue and len(items) < self._batch:
                    items.append(self._queue.popleft())
                rows, updates = [], []
                for _, kind, a, b in items:
                    if kind == "insert":
                        rows.append(a(b))
                    else:
                        updates.append((a, b))
                try:
                    self._store.write_decisions(rows, updates)
                except Exception as exc:
                    self._queue.extendleft(reversed(items))  # kept for the next round
                    self._settle(items[-1][0], exc)
                    raise
                self._settle(items[-1][0], None)
                written += len(items)
        return written

    def latest(self) -> int:
        """The sequence number of the newest record queued (to wait for with committed)."""
        return self._seq

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


def _set_futures(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def truncate(text: str, limit: int = _OUTPUT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"
