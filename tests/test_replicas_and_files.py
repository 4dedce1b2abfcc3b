"""The same store on SQLite and PostgreSQL: the embedded agent's file opened by `staso serve`,
two replicas on one PostgreSQL, and the store's concurrency guarantees on both."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import staso as st
from conftest import start_server, stop_server
from servers import Server, drop_pg_database, new_pg_database
from staso.store import Store


def test_serve_opens_the_embedded_agents_sqlite_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STASO_HOME", str(tmp_path))
    st.init(agent_name="refund-agent", home=tmp_path)  # embedded, no server
    server = start_server(tmp_path, "sqlite")  # its database is the same staso.db
    try:
        first = st.guard("process_refund", {"amount": 7001})
        assert first.action == "escalate"
        listed = server.request("GET", "/v1/escalations?status=pending", role="approver").json()
        assert first.escalation_id in [e["id"] for e in listed]
        approved_at: list[float] = []

        def approve() -> None:
            time.sleep(0.5)
            approved_at.append(time.monotonic())
            r = server.request("POST", f"/v1/escalations/{first.escalation_id}/approve",
                               role="approver", json={"comment": "from the dashboard's API"})
            assert r.status_code == 200, r.text

        threading.Thread(target=approve).start()
        result = st.guard("process_refund", {"amount": 7001}, wait_for_escalation=True,
                          escalation_poll_interval=3.0, escalation_timeout=30)
        woke = time.monotonic() - approved_at[0]
        assert result.action == "allow" and result.escalation_status == "approved"
        assert woke < 1.0, f"embedded agent woke {woke:.2f} s after the server's approval"
    finally:
        st.shutdown()
        stop_server(server)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start_server(tmp_path / "a", "postgres")
    second = Server(home=tmp_path / "b", database_url=first.database_url, keys=first.keys)
    second.start()
    yield first, second
    second.stop()
    stop_server(first)


def test_a_resolution_on_one_replica_wakes_long_polls_on_the_other(
        replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    st.init(api_key=a.keys["agent"], base_url=a.url, agent_name="refund-agent")
    try:
        first = st.guard("process_refund", {"amount": 7002})
        assert first.action == "escalate"
        approved_at: list[float] = []

        def approve_on_b() -> None:
            time.sleep(0.7)
            approved_at.append(time.monotonic())
            r = b.request("POST", f"/v1/escalations/{first.escalation_id}/approve",
                          role="approver", json={})
            assert r.status_code == 200, r.text

        threading.Thread(target=approve_on_b).start()
        result = st.guard("process_refund", {"amount": 7002}, wait_for_escalation=True,
                          escalation_poll_interval=3.0, escalation_timeout=30)
        woke = time.monotonic() - approved_at[0]
        assert result.action == "allow" and result.escalation_id == first.escalation_id
        assert woke < 1.0, f"the waiter on replica A woke {woke:.2f} s after B approved"
    finally:
        st.shutdown()


def test_a_policy_put_on_one_replica_reaches_the_other(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    source = ("version: 1\nrules:\n  - name: no_wire\n    tools: [wire_transfer]\n"
              "    action: block\n    reason: wires are off\n")
    assert a.request("PUT", "/v1/policy", role="admin", json={"source": source}).status_code == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        answer = b.request("POST", "/v1/guard", json={"tool_name": "wire_transfer",
                                                      "tool_input": {"amount": 1}}).json()
        if answer["action"] == "block":
            break
        time.sleep(0.1)
    assert answer["action"] == "block" and answer["reason"] == "wires are off"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'staso.db'}" if request.param == "sqlite" \
        else new_pg_database()
    s = Store(url)
    yield s
    s.close()
    if request.param == "postgres":
        drop_pg_database(url)


def test_concurrent_identical_calls_make_one_escalation(store: Store) -> None:
    outcomes: list[tuple[str, str]] = []
    barrier = threading.Barrier(8)

    def open_one(i: int) -> None:
        barrier.wait()
        esc, how = store.open_escalation(
            fingerprint="f" * 64, decision_id=f"dec_{i}", expires_at=time.time() + 60,
            claim_window=60, values={"agent_name": "a", "environment": "", "tool_name": "t",
                                     "tool_input": {"amount": 1}, "context": {},
                                     "rule_name": "r", "reason": "why", "severity": "high",
                                     "proposed_input": None})
        outcomes.append((esc.id, how))

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({esc_id for esc_id, _ in outcomes}) == 1
    assert sorted(how for _, how in outcomes) == ["created"] + ["pending"] * 7
    assert len(store.list_escalations()) == 1


def test_migrations_are_idempotent_and_decisions_insert_once(store: Store) -> None:
    store.migrate()
    Store(store.url).close()  # a second process opening the same database migrates nothing
    row = {"id": "dec_1", "created_at": 1.0, "agent_name": "a", "environment": "",
           "tool_name": "t", "tool_input": {"a": 1}, "context": {}, "action": "allow"}
    store.write_decisions([row])
    store.write_decisions([{**row, "action": "block"}])  # a retried batch changes nothing
    stored = store.get_decision("dec_1")
    assert stored is not None and stored["action"] == "allow"
    assert stored["modified_input"] is None  # JSON null is stored as SQL NULL


def _logged_in(server: Server) -> httpx.Client:
    browser = httpx.Client(base_url=server.url, timeout=10)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/login").text)
    assert csrf is not None
    browser.post("/login", data={"csrf_token": csrf.group(1),
                                 "api_key": server.keys["approver"]})
    assert browser.cookies.get("staso_session")
    return browser


def test_logout_on_one_replica_ends_a_copied_session_on_the_other(
        replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    esc = first.request("POST", "/v1/guard", json={
        "tool_name": "process_refund", "tool_input": {"amount": 8000}}).json()["escalation_id"]
    browser = _logged_in(first)
    try:
        cookie = browser.cookies["staso_session"]
        # the same cookie, copied to another machine, works on the other replica...
        with httpx.Client(base_url=second.url, timeout=10,
                          cookies={"staso_session": cookie}) as thief:
            page = thief.get("/")
            assert page.status_code == 200 and 'id="pending"' in page.text
            token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
            assert token is not None
            # ...until its owner logs out on the first replica
            own = re.search(r'name="csrf-token" content="([^"]+)"', browser.get("/").text)
            assert own is not None
            assert browser.post("/logout", data={"csrf_token": own.group(1)}).status_code \
                in (200, 303)
            replayed = thief.post(f"/dashboard/escalations/{esc}/approve",
                                  data={"csrf_token": token.group(1)})
            assert replayed.status_code == 401, replayed.text
            assert thief.get("/", follow_redirects=False).status_code in (302, 303, 307)
    finally:
        browser.close()
    with httpx.Client(base_url=first.url, timeout=10,
                      cookies={"staso_session": cookie}) as replay_here:
        assert replay_here.post(f"/dashboard/escalations/{esc}/approve",
                                data={"csrf_token": token.group(1)}).status_code == 401
    assert second.request("GET", f"/v1/escalations/{esc}").json()["status"] == "pending"
    # logging in again gives a new session that works
    again = _logged_in(second)
    try:
        assert again.get("/").status_code == 200
    finally:
        again.close()
