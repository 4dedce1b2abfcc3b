"""A guard call with a timeout fails closed in time when another process holds the
embedded store's write lock: it does not wait out SQLite's 30 s busy timeout."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import staso as st
from conftest import REFUND_POLICY

HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")  # the write lock, held until stdin closes
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""
SQLITE_BUSY_S = 30.0


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    st.init(home=tmp_path, policy=REFUND_POLICY, agent_name="bot")
    assert st.guard("process_refund", {"amount": 2000}).action == "escalate"  # db is made
    yield tmp_path
    st.shutdown()


def _hold_lock(home: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(home / "staso.db")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def _release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(10)


def test_an_escalation_on_a_locked_store_fails_closed_within_the_timeout(home: Path) -> None:
    holder = _hold_lock(home)
    try:
        started = time.monotonic()
        result = st.guard("process_refund", {"amount": 5000}, timeout=1.0, fail_closed=False)
        took = time.monotonic() - started
        # an escalation never falls back to allow; it comes back near the 1 s timeout, far
        # from the 30 s SQLite would wait (a generous bound: CI machines are busy)
        assert result.action == "block", result
        assert "could not decide" in result.reason and "locked" in result.reason
        assert took < SQLITE_BUSY_S / 2, took

        async def call() -> st.GuardResult:
            return await st.aguard("process_refund", {"amount": 6000}, timeout=1.0)

        started = time.monotonic()
        assert asyncio.run(call()).action == "block"
        assert time.monotonic() - started < SQLITE_BUSY_S / 2
        # a call that needs no write is not held up at all
        assert st.guard("search", {"q": "x"}, timeout=1.0).action == "allow"
    finally:
        _release(holder)
    # the lock gone, the same call escalates as usual (and the store waits as long as ever)
    assert st.guard("process_refund", {"amount": 5000}, timeout=5.0).action == "escalate"


def test_writes_outside_a_guard_call_still_wait_for_the_lock(home: Path) -> None:
    (esc,) = st.get_client().transport.list_escalations(status="pending")
    holder = _hold_lock(home)
    release_later = threading.Timer(1.5, _release, args=(holder,))
    release_later.start()
    try:
        started = time.monotonic()
        # no guard deadline around it: an approval waits for the lock as it always did
        st.approve(esc.id, by="alice")
        assert time.monotonic() - started >= 1.0  # it waited for the holder to let go
        assert st.get_escalation(esc.id).status == "approved"
    finally:
        release_later.join()
