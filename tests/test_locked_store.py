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
from tally import tally

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
        tally("SQLite write lock held by another process, guard(timeout=1)", sent=1,
              failed_closed=1, allowed_by_failure=0)

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


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_waiting_call_on_a_locked_store_fails_closed_within_its_timeout(
        home: Path, mode: str) -> None:
    """With the lock taken while the call waits, the call still ends near its wait plus
    its timeout, blocked."""
    amount = {"sync": 7000, "async": 8000}[mode]
    before = {e.id for e in st.get_client().transport.list_escalations(status="pending")}
    outcome: dict[str, object] = {}

    def waiting_call() -> None:
        started = time.monotonic()
        if mode == "sync":
            result = st.guard("process_refund", {"amount": amount}, wait_for_escalation=True,
                              escalation_timeout=2.0, timeout=1.0, fail_closed=False)
        else:
            result = asyncio.run(st.aguard(
                "process_refund", {"amount": amount}, wait_for_escalation=True,
                escalation_timeout=2.0, timeout=1.0, fail_closed=False))
        outcome.update(result=result, took=time.monotonic() - started)

    caller = threading.Thread(target=waiting_call)
    caller.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # its escalation is stored: it is waiting now
        pending = st.get_client().transport.list_escalations(status="pending")
        if {e.id for e in pending} - before:
            break
        time.sleep(0.02)
    holder = _hold_lock(home)
    try:
        caller.join(SQLITE_BUSY_S * 2)
        result = outcome["result"]
        assert isinstance(result, st.GuardResult)
        assert result.action == "block", result  # never allow, fail_closed=False or not
        assert outcome["took"] < SQLITE_BUSY_S / 2, outcome["took"]  # not 2 s + 30 s
    finally:
        _release(holder)
        caller.join(5)
    st.get_client().flush()  # the lock gone, the log has the block the caller was told
    row = st.get_client().transport.service.store.get_decision(result.decision_id)
    assert row is not None and row["action"] == "block", row
    tally(f"SQLite write lock held while a call waits ({mode})", sent=1, escalations=1,
          failed_closed=1, recorded=1, allowed_by_failure=0, lost=0)


def test_each_waiting_step_that_writes_honours_the_call_timeout(home: Path) -> None:
    """Expire and claim write to the store: given the call's timeout, each gives up on a
    locked store near it (and the flow then fails closed), not after SQLite's 30 s."""
    transport = st.get_client().transport
    (esc,) = transport.list_escalations(status="pending")
    answered = st.approve(esc.id, by="alice")
    holder = _hold_lock(home)
    try:
        for step in (lambda: transport.claim(answered, "dec_locked", timeout=1.0),
                     lambda: transport.expire(esc.id, timeout=1.0),
                     lambda: asyncio.run(transport.aclaim(answered, "dec_locked", timeout=1.0))):
            started = time.monotonic()
            with pytest.raises(Exception, match="locked"):
                step()
            assert time.monotonic() - started < SQLITE_BUSY_S / 2
    finally:
        _release(holder)
    assert transport.claim(answered, "dec_unlocked", timeout=5.0) is True


def test_shutdown_with_the_store_locked_ends_soon_and_loses_nothing(tmp_path: Path) -> None:
    st.init(home=tmp_path, agent_name="bot")
    st.guard("warm", {})
    st.get_client().flush()
    ids = [st.guard("search", {"q": i}).decision_id for i in range(3)]
    holder = _hold_lock(tmp_path)
    try:
        started = time.monotonic()
        st.shutdown()  # the log waits a few seconds for the lock, then dead-letters
        assert time.monotonic() - started < SQLITE_BUSY_S / 2
    finally:
        _release(holder)
    from staso.dead_letters import read_dead_letters

    kept = {e["decision_id"] for e in read_dead_letters(tmp_path / "dead-letter.jsonl")}
    assert set(ids) <= kept


def test_a_server_on_a_locked_store_answers_in_time_and_says_degraded(tmp_path: Path) -> None:
    from conftest import start_server, stop_server

    (tmp_path / "staso.yaml").write_text(REFUND_POLICY)
    server = start_server(tmp_path, "sqlite", tmp_path / "staso.yaml")
    try:
        st.init(api_key=server.keys["agent"], base_url=server.url, agent_name="bot")
        assert st.guard("search", {"q": 0}).action == "allow"
        holder = _hold_lock(tmp_path)
        try:
            health = server.request("GET", "/healthz", role=None)  # before any call fails
            assert health.status_code == 503 and "locked" in health.json()["reason"]
            started = time.monotonic()
            allowed = server.request("POST", "/v1/guard", json={
                "tool_name": "search", "tool_input": {"q": 1}, "timeout": 2})
            assert allowed.status_code == 503, allowed.text  # not recorded: not acknowledged
            assert time.monotonic() - started < SQLITE_BUSY_S / 2
            # an escalation (or a block) never falls back to allow, fail_closed=False or not
            result = st.guard("process_refund", {"amount": 5000}, timeout=2.0,
                              fail_closed=False)
            assert result.action == "block", result
            deadline = time.monotonic() + 30
            health = server.request("GET", "/healthz", role=None)
            while health.status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.2)
                health = server.request("GET", "/healthz", role=None)
            assert health.status_code == 503 and health.json()["status"] == "degraded"
            assert "locked" in health.json()["reason"]
        finally:
            _release(holder)
        deadline = time.monotonic() + 30
        while server.request("GET", "/healthz", role=None).status_code != 200 \
                and time.monotonic() < deadline:
            st.guard("search", {"q": 2})  # a write that succeeds ends the degraded state
            time.sleep(0.2)
        assert server.request("GET", "/healthz", role=None).json()["status"] == "ok"
        tally("a server's SQLite store locked by another process", sent=3, refused=1,
              failed_closed=1, allowed_by_failure=0, lost=0)
    finally:
        st.shutdown()
        stop_server(server)
