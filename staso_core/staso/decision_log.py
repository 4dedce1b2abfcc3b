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
import time
from collections import deque
from typing import Any, Protocol

from .dead_letters import DeadLetters
from .errors import AccessDenied, DecisionIdReused, DecisionNotRecorded, StoreUnavailable

log = logging.getLogger("staso")
_OUTPUT_LIMIT = 2000


class Sink(Protocol):
    """Where records go: the store, or a staso server (remote mode)."""

    def write_decisions(self, rows: list[dict[str, Any]],
                        updates: list[tuple[str, dict[str, Any]]]) -> None: ...


# how long records wait for an unreachable database before they go to the dead-letter file
RETRY_SECONDS = 60.0
_REFUSED_KEPT = 10_000  # dead-lettered sequence numbers remembered for late waiters
_BACKOFF_LIMIT = 5.0  # seconds between two tries while the database cannot be reached

Item = tuple[int, str, Any, Any]  # (sequence number, "insert" | "update", a, b)


class DecisionLog:
    """A bad record never stops the log: a batch the database refuses is split until the
    record it refuses stands alone, and that one goes to the dead-letter file with the
    reason (``dead_letters.py``) while everything behind it is written. While the database
    cannot be reached at all, records are kept and tried again with backoff for
    ``retry_seconds``, then they too go to the dead-letter file; ``failing`` says why
    meanwhile (the server's ``/healthz`` answers 503 with it)."""

    def __init__(self, store: Sink, *, interval: float = 0.2, batch: int = 1000,
                 dead_letters: DeadLetters | None = None,
                 retry_seconds: float = RETRY_SECONDS) -> None:
        self._store = store
        self._interval = interval
        self._batch = batch
        self.dead_letters = dead_letters or DeadLetters(None)
        self._retry_seconds = retry_seconds
        self._queue: deque[Item] = deque()
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
        self.failing: str | None = None  # why records cannot be written now, if they cannot
        self._failing_since = 0.0
        self._backoff = 0.0
        self.write_failures = 0  # writes the database refused or could not take
        self._refused: dict[int, BaseException] = {}  # dead-lettered records' sequence numbers
        self._failed_upto = 0  # records up to here were tried while the database was away

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
        if self._closed:  # a call that was deciding while its client shut down (st.init
            # again, from another thread): its record is not left in a queue no one writes
            self._drain("recorded after the log closed")
        elif (urgent or len(self._queue) >= self._batch) and not self._wake.is_set():
            self._wake.set()  # set() takes a lock: under load every push would pay it
        return seq

    async def committed(self, seq: int) -> None:
        """Return once record ``seq`` is written; raise DecisionNotRecorded if it was not
        (dead-lettered, or the database could not be reached when it was tried)."""
        if self._committed >= seq and seq not in self._refused:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._done:
            why = self._refused.get(seq)
            if why is not None:
                raise why
            if self._committed >= seq:
                return
            if seq <= self._failed_upto and self.failing is not None:
                raise DecisionNotRecorded(self.failing)
            self._futures.append((seq, loop, future))
        if not self._wake.is_set():  # (an urgent push set it already: set() takes a lock
            self._wake.set()         # and notifies, ~2 µs on every waiting request)
        await future

    def wait_committed(self, seq: int, timeout: float) -> bool:
        with self._done:
            return self._done.wait_for(lambda: self._committed >= seq, timeout=timeout)

    def _settle(self, upto: int, refused: dict[int, BaseException],
                error: BaseException | None = None) -> None:
        """Wake whoever waits for records up to ``upto``: written, except those in
        ``refused`` (dead-lettered); with ``error``, none of them was written."""
        with self._done:
            if error is None:
                self._committed = max(self._committed, upto)
                if refused:
                    self._refused.update(refused)
                    while len(self._refused) > _REFUSED_KEPT:  # oldest first
                        del self._refused[next(iter(self._refused))]
                self._done.notify_all()
            else:
                self._failed_upto = max(self._failed_upto, upto)
            ready = [f for f in self._futures if f[0] <= upto]
            self._futures = [f for f in self._futures if f[0] > upto]
        by_loop: dict[asyncio.AbstractEventLoop,
                      list[tuple[asyncio.Future[None], BaseException | None]]] = {}
        for seq, loop, future in ready:
            why = error or refused.get(seq)
            by_loop.setdefault(loop, []).append((future, why))
        for loop, futures in by_loop.items():  # one wake-up per loop for the whole batch
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_set_futures, futures)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(max(self._interval, self._backoff))
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # flush keeps what it could not write; never stop the thread
                log.exception("staso: the decision log writer failed")

    def flush(self) -> int:
        """Write everything queued now; return how many records were written. Never
        raises for a record: one the database refuses is dead-lettered, and while the
        database cannot be reached the records stay queued (``failing`` says why)."""
        written = 0
        with self._write_lock:
            while self._queue:
                items: list[Item] = []
                while self._queue and len(items) < self._batch:
                    items.append(self._queue.popleft())
                refused: dict[int, BaseException] = {}
                left, error = self._write(items, refused)
                if error is not None:
                    self._queue.extendleft(reversed(left))  # kept for the next round
                    self._unavailable(error, left, refused)
                    return written
                self._recovered()
                self._settle(items[-1][0], refused)
                written += len(items) - len(refused)
        return written

    def _write(self, items: list[Item], refused: dict[int, BaseException]
               ) -> tuple[list[Item], StoreUnavailable | None]:
        """Write ``items``, isolating records the database refuses (into ``refused``, and
        the dead-letter file). Returns the items not written because the database could
        not be reached, and why."""
        parts = [items]
        while parts:
            part = parts.pop()
            try:
                rows, updates = _split_kinds(part)
                self._store.write_decisions(rows, updates)
                continue
            except StoreUnavailable as exc:
                left = [item for p in (part, *reversed(parts)) for item in p]
                return left, exc
            except Exception as exc:
                self.write_failures += 1
                if len(part) > 1 and not isinstance(exc, AccessDenied):
                    middle = len(part) // 2
                    parts += [part[middle:], part[:middle]]  # the first half next
                    continue
                self._dead_letter(part, f"{type(exc).__name__}: {exc}", refused,
                                  reused=isinstance(exc, DecisionIdReused))
        return [], None

    def _dead_letter(self, items: list[Item], reason: str,
                     refused: dict[int, BaseException], *, reused: bool = False) -> None:
        self.dead_letters.keep([_entry(item) for item in items], reason)
        why = f"the decision could not be recorded ({reason}); it went to the dead-letter " \
              "file and is not acknowledged"
        for item in items:  # a reused id is the caller's mistake (409), not the server's
            refused[item[0]] = DecisionIdReused(why) if reused else DecisionNotRecorded(why)

    def _unavailable(self, error: StoreUnavailable, left: list[Item],
                     refused: dict[int, BaseException]) -> None:
        """The database cannot be reached: tell the waiting callers now (not
        acknowledged), retry later with backoff, and after ``retry_seconds`` move the
        records to the dead-letter file so the retries end."""
        now = time.monotonic()
        self.write_failures += 1
        if self.failing is None:
            self._failing_since = now
        self.failing = f"decisions cannot be recorded: {error}"
        self._backoff = min(max(self._backoff * 2, self._interval), _BACKOFF_LIMIT)
        log.warning("staso: decision log write failed, will retry: %s", error)
        upto = left[-1][0]
        self._settle(left[0][0] - 1, refused)  # what was written before the failure
        self._settle(upto, {}, DecisionNotRecorded(self.failing))
        if now - self._failing_since >= self._retry_seconds:
            with self._seq_lock:
                stale = [self._queue.popleft() for _ in range(len(left))]
            self._dead_letter(stale, f"the database could not be reached for "
                                     f"{self._retry_seconds:g} s: {error}", {})

    def _recovered(self) -> None:
        if self.failing is not None:
            log.warning("staso: the decision log is written again")
        self.failing, self._backoff = None, 0.0

    def latest(self) -> int:
        """The sequence number of the newest record queued (to wait for with committed)."""
        return self._seq

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop the writer and write what is queued; what the database still cannot take
        goes to the dead-letter file. Never raises."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._drain("still unwritten at shutdown")

    def _drain(self, why: str) -> None:
        """Write what is queued now (a closed store reconnects); what the database still
        cannot take goes to the dead-letter file. Never raises."""
        try:
            self.flush()
            if self._queue:
                with self._write_lock:
                    stale = list(self._queue)
                    self._queue.clear()
                self._dead_letter(stale, f"{why}: {self.failing}", {})
        except Exception:
            log.exception("staso: the decision log could not be written out (%s)", why)


def _split_kinds(items: list[Item]) -> tuple[list[dict[str, Any]],
                                             list[tuple[str, dict[str, Any]]]]:
    rows, updates = [], []
    for _, kind, a, b in items:
        if kind == "insert":
            rows.append(a(b))
        else:
            updates.append((a, b))
    return rows, updates


def _entry(item: Item) -> tuple[str, str, Any]:
    """A queued record as the dead-letter file keeps it."""
    _, kind, a, b = item
    if kind == "update":
        return kind, a, b
    try:
        row = a(b)
    except Exception as exc:  # the row could not even be built: keep what it came from
        return kind, "", {"unbuildable": repr(b)[:100_000], "error": repr(exc)}
    return kind, str(row.get("id", "")), row


def _set_futures(futures: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for future, error in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def truncate(text: str, limit: int = _OUTPUT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"
