"""Failures against real processes: ``staso serve`` killed with SIGKILL while agents wait
on it, and its PostgreSQL restarted under load. Nothing acknowledged is lost, and no
failure ever turns into an allow."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import BACKENDS, start_server, stop_server
from servers import PrivatePostgres, Server
from staso.client import Client
from staso.models import GuardResult
from tally import tally


def pending_ids(server: Server, expected: int, timeout: float = 20.0) -> set[str]:
    """The pending escalations' ids, once there are ``expected`` of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = server.request("GET", "/v1/escalations?status=pending&limit=1000",
                                role="approver").json()
        if len(listed) >= expected:
            return {e["id"] for e in listed}
        time.sleep(0.05)
    raise AssertionError(f"only {len(listed)} of {expected} escalations appeared")


class Loader:
    """Threads sending allow decisions over plain HTTP, each with its own decision id, and
    noting which ones were acknowledged (200): those must be in the database afterwards."""

    def __init__(self, server: Server, threads: int = 4) -> None:
        self.server, self.acknowledged, self.sent, self.refused = server, set(), 0, 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, n: int) -> None:
        client = httpx.Client(headers=self.server.headers("agent"), timeout=5)
        i = 0
        while not self._stop.is_set():
            i += 1
            decision_id = f"dec_load_{n}_{i}"
            try:
                answer = client.post(self.server.url + "/v1/guard", json={
                    "tool_name": "lookup_order", "decision_id": decision_id,
                    "tool_input": {"order_id": f"o_{n}_{i}"}})
                ok = answer.status_code == 200 and answer.json()["action"] == "allow"
            except httpx.HTTPError:
                ok = False
                time.sleep(0.02)
            with self._lock:
                self.sent += 1
                if ok:
                    self.acknowledged.add(decision_id)
                else:
                    self.refused += 1
        client.close()

    def __enter__(self) -> Loader:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


@pytest.fixture(params=BACKENDS)
def killable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path, request.param)
    yield server
    stop_server(server)


def start_agents(server: Server, agents: int, results: dict[int, GuardResult],
                 use_async: bool) -> list[threading.Thread]:
    """Agents waiting for their refund's approval: a thread each, or asyncio tasks (one
    client each) on one event loop in one thread."""
    def call(client: Client, i: int) -> Any:
        return (client.aguard if use_async else client.guard)(
            "process_refund", {"amount": 5000 + i}, wait_for_escalation=True,
            escalation_poll_interval=3.0, escalation_timeout=60)

    def agent(i: int) -> None:
        client = server.agent_client(f"agent-{i}")
        try:
            results[i] = call(client, i)
        finally:
            client.shutdown()

    async def fleet() -> None:
        clients = [server.agent_client(f"agent-{i}") for i in range(agents)]
        try:
            done = await asyncio.gather(*(call(c, i) for i, c in enumerate(clients)))
            results.update(enumerate(done))
        finally:
            for c in clients:
                c.shutdown()

    threads = [threading.Thread(target=asyncio.run, args=(fleet(),))] if use_async else [
        threading.Thread(target=agent, args=(i,)) for i in range(agents)]
    return threads


@pytest.mark.parametrize("use_async", [False, True], ids=["threads", "asyncio"])
def test_agents_waiting_through_a_sigkill_resume_after_restart(killable: Server,
                                                               use_async: bool) -> None:
    server, agents = killable, 20
    results: dict[int, GuardResult] = {}
    threads = start_agents(server, agents, results, use_async)
    with Loader(server) as load:
        for t in threads:
            t.start()
        acknowledged = pending_ids(server, agents)
        time.sleep(0.3)  # the loader keeps deciding while the agents wait
        server.stop(signal.SIGKILL)
        time.sleep(1.0)  # the agents retry against a dead port meanwhile
        server.start()
        time.sleep(0.3)
    # nothing acknowledged before the kill is lost
    assert pending_ids(server, agents) == acknowledged
    assert load.acknowledged and load.acknowledged <= server.stored_ids("decisions")
    for escalation_id in acknowledged:
        answer = server.request("POST", f"/v1/escalations/{escalation_id}/approve",
                                role="approver", json={"comment": "after the crash"})
        assert answer.status_code == 200, answer.text
    for t in threads:
        t.join(30)
    assert sorted(results) == list(range(agents))
    assert {r.action for r in results.values()} == {"allow"}, [
        r.reason for r in results.values() if r.action != "allow"]
    how = "asyncio" if use_async else "threads"
    tally(f"server SIGKILL while {agents} agents wait, {how} ({server.backend})",
          sent=load.sent + agents, escalations=len(acknowledged),
          acknowledged=len(load.acknowledged) + len(acknowledged), resumed=len(results),
          allowed_by_failure=0, lost=0)


def test_agents_fail_closed_when_the_server_stays_down(killable: Server) -> None:
    server, agents, timeout = killable, 5, 2.0
    results: dict[int, tuple[GuardResult, float]] = {}

    def agent(i: int) -> None:
        client = server.agent_client(f"waiter-{i}", guard_timeout=1.0)
        started = time.monotonic()
        try:
            result = client.guard("process_refund", {"amount": 7000 + i},
                                  wait_for_escalation=True, escalation_timeout=timeout)
            results[i] = (result, time.monotonic() - started)
        finally:
            client.shutdown()

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(agents)]
    for t in threads:
        t.start()
    acknowledged = pending_ids(server, agents)
    server.stop(signal.SIGKILL)
    for t in threads:
        t.join(30)
    for result, elapsed in results.values():
        assert result.action == "block" and result.rule_name == "staso/unavailable"
        assert "unreachable" in result.reason or "failed" in result.reason, result.reason
        assert elapsed < timeout + 1.0 + 2.0  # its timeout, one guard_timeout, and slack
    server.start()  # the escalations are still there, and expired: a late approval fails
    listed = server.request("GET", "/v1/escalations?limit=1000", role="approver").json()
    expiry = max(e["expires_at"] for e in listed if e["id"] in acknowledged)
    # a quick restart can come back before the escalations' own timeout: wait it out
    time.sleep(max(0.0, expiry - time.time() + 0.2))
    for escalation_id in acknowledged:
        late = server.request("POST", f"/v1/escalations/{escalation_id}/approve",
                              role="approver", json={})
        assert late.status_code == 409 and late.json()["status"] == "timeout"
    tally(f"server killed for good while {agents} agents wait ({server.backend})", sent=agents,
          escalations=len(acknowledged), failed_closed=len(results), allowed_by_failure=0,
          lost=0)


def test_database_restart_under_load(tmp_path: Path) -> None:
    """Agents keep guarding while PostgreSQL restarts: each call is either acknowledged and
    stored, or fails closed; retries with the same decision id make no duplicates."""
    pg = PrivatePostgres().start()
    try:
        server = Server(home=tmp_path, database_url=pg.url)
        server.create_keys()
        server.start()
        results: list[GuardResult] = []
        stop = threading.Event()
        lock = threading.Lock()

        def agent(n: int) -> None:
            client = server.agent_client(f"fleet-{n}", guard_timeout=15.0)
            i = 0
            try:
                while not stop.is_set():
                    i += 1
                    # an allow, and one of ten escalating calls every agent of the fleet makes
                    allowed = client.guard("lookup_order", {"order_id": f"o_{n}_{i}"})
                    pending = client.guard("process_refund", {"amount": 5000 + i % 10})
                    with lock:
                        results.extend((allowed, pending))
            finally:
                client.shutdown()

        threads = [threading.Thread(target=agent, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        before = len(results)
        pg.restart("immediate")
        restarted = len(results)
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(60)
        after = len(results) - restarted
        failed = [r for r in results if r.rule_name == "staso/unavailable"]
        acknowledged = [r for r in results if r.rule_name != "staso/unavailable"]
        assert all(r.action == "block" for r in failed)  # a failure never allows
        assert before > 0 and after > 0  # it served before the restart and again after it
        stored = server.stored_ids("decisions")
        missing = [r.decision_id for r in acknowledged if r.decision_id not in stored]
        assert not missing, f"{len(missing)} acknowledged decisions are not stored"
        escalations = server.request("GET", "/v1/escalations?tool=process_refund&limit=1000",
                                     role="approver").json()
        per_agent: dict[tuple[str, str], int] = {}
        for e in escalations:
            key = (e["agent_name"], repr(e["tool_input"]))
            per_agent[key] = per_agent.get(key, 0) + 1
        assert max(per_agent.values()) == 1, "a pending call was escalated twice"
        assert len(escalations) == 8 * 10
        server.stop()
        tally("PostgreSQL restarted under load (8 agents)", sent=len(results),
              escalations=len(escalations), acknowledged=len(acknowledged),
              failed_closed=len(failed), allowed_by_failure=0, lost=len(missing))
    finally:
        pg.stop()
