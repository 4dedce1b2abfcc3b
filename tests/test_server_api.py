"""The JSON API over real HTTP: every endpoint, its roles and its error codes (the README's
route table), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

import staso as st
from servers import Server, cli


def _guard_body(**extra: Any) -> dict[str, Any]:
    return {"tool_name": "process_refund", "tool_input": {"amount": 10}, **extra}


def _escalate(server: Server, amount: int) -> dict[str, Any]:
    r = server.request("POST", "/v1/guard",
                       json=_guard_body(tool_input={"customer": "c_9", "amount": amount}))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["action"] == "escalate"
    return body


def test_remote_guard_gives_each_action(remote: Server) -> None:
    assert st.guard("process_refund", {"amount": 50}).action == "allow"
    blocked = st.guard("run_sql", {"query": "DROP TABLE customers"})
    assert blocked.action == "block" and blocked.rule_name == "builtin/destructive_sql"
    redacted = st.guard("send_email", {"body": "SSN 123-45-6789"})
    assert redacted.action == "modify" and "123-45-6789" not in json.dumps(
        redacted.modified_input)
    pending = st.guard("process_refund", {"amount": 5000 + time.time_ns() % 1000})
    assert pending.action == "escalate" and pending.escalation_id.startswith("esc_")
    assert pending.escalation_status == "pending" and pending.decision_id.startswith("dec_")


def test_every_route_checks_roles(server: Server) -> None:
    esc = _escalate(server, 4001)
    path = f"/v1/escalations/{esc['escalation_id']}"
    cases = [  # (method, path, body, role, expected status)
        ("POST", "/v1/guard", _guard_body(), "agent", 200),
        ("POST", "/v1/guard", _guard_body(), "approver", 403),
        ("POST", "/v1/guard", _guard_body(), "admin", 200),
        ("GET", path, None, "agent", 200),
        ("GET", path, None, "approver", 200),
        ("GET", "/v1/escalations", None, "agent", 403),
        ("GET", "/v1/escalations", None, "approver", 200),
        ("POST", path + "/approve", {"comment": "x"}, "agent", 403),
        ("POST", path + "/deny", {"comment": "x"}, "agent", 403),
        ("GET", "/v1/policy", None, "agent", 200),
        ("PUT", "/v1/policy", {"source": "version: 1\nrules: []\n"}, "agent", 403),
        ("PUT", "/v1/policy", {"source": "version: 1\nrules: []\n"}, "approver", 403),
        ("POST", path + "/claim", {"decision_id": "dec_x"}, "approver", 403),
    ]
    for method, url, body, role, expected in cases:
        r = server.request(method, url, role=role, json=body)
        assert r.status_code == expected, (method, url, role, r.status_code, r.text)
    # the escalation is still pending: no agent or failed call approved it
    assert server.request("GET", path).json()["status"] == "pending"
    for headers in ({}, {"Authorization": "Bearer staso_agent_wrong"},
                    {"Authorization": "Basic abc"}):
        r = server.request("POST", "/v1/guard", role=None, headers=headers, json=_guard_body())
        assert r.status_code == 401 and "key" in r.json()["detail"]
    assert server.request("GET", "/healthz", role=None).json()["status"] == "ok"


def test_error_statuses_name_the_problem(server: Server) -> None:
    missing = server.request("GET", "/v1/escalations/esc_nope")
    assert missing.status_code == 404 and "esc_nope" in missing.json()["detail"]
    assert server.request("POST", "/v1/escalations/esc_nope/approve", role="approver",
                          json={}).status_code == 404
    bad_json = server.request("POST", "/v1/guard", content=b'{"tool_name": "x", "tool_',
                              headers={"content-type": "application/json"})
    assert bad_json.status_code == 422 and "JSON" in bad_json.json()["detail"]
    no_input = server.request("POST", "/v1/guard", json={"tool_name": "x"})
    assert no_input.status_code == 422 and "tool_input" in no_input.json()["detail"]
    not_dict = server.request("POST", "/v1/guard", json={"tool_name": "x", "tool_input": [1]})
    assert not_dict.status_code == 422
    nan = server.request("POST", "/v1/guard", content=b'{"tool_name":"x","tool_input":{"a":NaN}}',
                         headers={"content-type": "application/json"})
    assert nan.status_code == 422 and "NaN" in nan.json()["detail"]
    big = server.request("POST", "/v1/guard",
                         json={"tool_name": "x", "tool_input": {"blob": "x" * (1024 * 1024)}})
    assert big.status_code == 413 and "limit" in big.json()["detail"]
    huge = server.request("POST", "/v1/guard", content=b"x" * (3 * 1024 * 1024),
                          headers={"content-type": "application/json"})
    assert huge.status_code == 413
    bad_status = server.request("GET", "/v1/escalations?status=maybe", role="approver")
    assert bad_status.status_code == 422
    bad_id = server.request("POST", "/v1/guard", json=_guard_body(decision_id="a b/../c"))
    assert bad_id.status_code == 422
    esc = _escalate(server, 4011)
    nan_edit = server.request("POST", f"/v1/escalations/{esc['escalation_id']}/approve",
                              role="approver", content=b'{"modified_input": {"amount": NaN}}',
                              headers={"content-type": "application/json"})
    assert nan_edit.status_code == 422 and "modified_input" in nan_edit.json()["detail"]
    assert server.request("GET", f"/v1/escalations/{esc['escalation_id']}"
                          ).json()["status"] == "pending"


def test_resolution_is_exactly_once_and_expiry_is_final(server: Server) -> None:
    esc = _escalate(server, 4002)
    path = f"/v1/escalations/{esc['escalation_id']}"
    results: list[int] = []

    def answer(verb: str) -> None:
        results.append(server.request("POST", f"{path}/{verb}", role="approver",
                                      json={"comment": verb}).status_code)

    threads = [threading.Thread(target=answer, args=("approve" if i % 2 else "deny",))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * 7
    final = server.request("GET", path).json()
    assert final["status"] in ("approved", "denied") and final["resolved_by"] == "alice"
    assert final["time_to_resolution"] is not None and final["time_to_resolution"] >= 0
    # an escalation that expired cannot be approved later
    waiting = server.request("POST", "/v1/guard", json=_guard_body(
        tool_input={"amount": 4003}, wait=True, escalation_timeout=0.3)).json()
    time.sleep(0.5)
    late = server.request("POST", f"/v1/escalations/{waiting['escalation_id']}/approve",
                          role="approver", json={})
    assert late.status_code == 409 and late.json()["status"] == "timeout"
    assert "expired" in late.json()["detail"]
    assert server.request("GET", f"/v1/escalations/{waiting['escalation_id']}"
                          ).json()["status"] == "timeout"


def test_same_decision_id_never_makes_a_second_escalation(server: Server) -> None:
    body = _guard_body(tool_input={"amount": 4004}, decision_id="dec_retry_4004")
    first = server.request("POST", "/v1/guard", json=body).json()
    again = server.request("POST", "/v1/guard", json=body).json()
    assert first["escalation_id"] == again["escalation_id"]
    listed = server.request("GET", "/v1/escalations?tool=process_refund", role="approver").json()
    assert [e["id"] for e in listed if e["tool_input"] == {"amount": 4004}] == \
        [first["escalation_id"]]


def test_long_poll_wakes_a_waiting_agent_at_once(remote: Server) -> None:
    first = st.guard("process_refund", {"amount": 4005})
    approved_at: list[float] = []

    def approve() -> None:
        time.sleep(0.5)
        approved_at.append(time.monotonic())
        remote.request("POST", f"/v1/escalations/{first.escalation_id}/approve",
                       role="approver", json={"modified_input": {"amount": 900}})

    threading.Thread(target=approve).start()
    result = st.guard("process_refund", {"amount": 4005}, wait_for_escalation=True,
                      escalation_poll_interval=3.0, escalation_timeout=30)
    woke = time.monotonic() - approved_at[0]
    assert result.action == "modify" and result.modified_input == {"amount": 900}
    assert result.escalation_id == first.escalation_id
    assert woke < 1.0, f"the agent resumed {woke:.2f} s after the approval (poll 3 s)"


async def test_async_remote_wait_and_denial(remote: Server) -> None:
    import asyncio

    first = await st.aguard("process_refund", {"amount": 4006})
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    async def deny() -> None:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(remote.request, "POST",
                                f"/v1/escalations/{first.escalation_id}/deny",
                                role="approver", json={"comment": "not this customer"})

    tick = asyncio.create_task(ticker())
    denier = asyncio.create_task(deny())
    result = await st.aguard("process_refund", {"amount": 4006}, wait_for_escalation=True,
                             escalation_timeout=30)
    tick.cancel()
    await denier
    assert result.action == "block" and "not this customer" in result.reason
    assert ticks > 10  # the loop kept running while the call waited


def test_wait_times_out_with_the_spec_reason(remote: Server) -> None:
    started = time.monotonic()
    result = st.guard("process_refund", {"amount": 4007}, wait_for_escalation=True,
                      escalation_poll_interval=0.2, escalation_timeout=1.0)
    assert result.action == "block" and result.reason == "Escalation poll timeout"
    assert result.escalation_status == "timeout"
    assert time.monotonic() - started < 5


def test_fire_and_forget_retry_after_approval_runs_once(remote: Server) -> None:
    first = st.guard("process_refund", {"amount": 4008})
    st_approver = st.Client(st.Settings.resolve(api_key=remote.keys["approver"],
                                                base_url=remote.url))
    try:
        approved = st_approver.approve(first.escalation_id, by="alice", comment="fine")
        assert approved.status == "approved"
        with pytest.raises(st.EscalationConflict):
            st_approver.deny(first.escalation_id, by="alice")
        with pytest.raises(st.EscalationNotFound):
            st_approver.get_escalation("esc_missing")
    finally:
        st_approver.shutdown()
    assert st.guard("process_refund", {"amount": 4008}).action == "allow"
    assert st.guard("process_refund", {"amount": 4008}).action == "escalate"  # single use


def test_agent_key_cannot_approve_through_the_client(remote: Server) -> None:
    first = st.guard("process_refund", {"amount": 4009})
    with pytest.raises(st.AccessDenied, match="403"):
        st.approve(first.escalation_id, by="refund-bot")
    assert st.get_escalation(first.escalation_id).status == "pending"


def test_policy_versions(server: Server) -> None:
    before = server.request("GET", "/v1/policy").json()
    bad = server.request("PUT", "/v1/policy", role="admin", json={
        "source": "version: 1\nrules:\n  - name: a\n    action: block\n"
                  "    when: 'tool_input.x >'\n"})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("<uploaded policy>:5: rule 'a': invalid CEL")
    assert server.request("GET", "/v1/policy").json()["version"] == before["version"]
    source = ("version: 1\nrules:\n  - name: no_wire\n    tools: [wire_transfer]\n"
              "    action: block\n    reason: no wires today\n")
    put = server.request("PUT", "/v1/policy", role="admin", json={"source": source})
    assert put.status_code == 200 and put.json()["version"] == before["version"] + 1
    decided = server.request("POST", "/v1/guard", json={"tool_name": "wire_transfer",
                                                        "tool_input": {"amount": 1}}).json()
    assert decided["action"] == "block" and decided["reason"] == "no wires today"
    restore = server.request("PUT", "/v1/policy", role="admin", json={"source": before["source"]})
    assert restore.status_code == 200


def test_metrics_and_openapi(server: Server) -> None:
    server.request("POST", "/v1/guard", json=_guard_body())
    text = server.request("GET", "/metrics", role=None).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['staso_decisions_total{action="allow"}'] >= 1
    assert samples["staso_guard_latency_seconds_count"] >= 1
    assert "staso_escalations_pending" in samples
    spec = server.request("GET", "/openapi.json", role=None).json()
    for path in ("/v1/guard", "/v1/escalations/{escalation_id}", "/v1/escalations",
                 "/v1/escalations/{escalation_id}/approve", "/v1/escalations/{escalation_id}/deny",
                 "/v1/policy", "/healthz", "/metrics"):
        assert path in spec["paths"], path
    guard_body = spec["paths"]["/v1/guard"]["post"]["requestBody"]["content"]["application/json"]
    assert {"tool_name", "tool_input"} <= set(guard_body["schema"]["required"])


def test_tool_executions_are_recorded_on_the_server(remote: Server) -> None:
    @st.tool(name="lookup_order", guard=True)
    def lookup_order(order_id: str) -> str:
        return f"order {order_id} shipped"

    @st.tool(name="unguarded_note")
    def unguarded_note(text: str) -> str:
        return text.upper()

    assert lookup_order("o_1") == "order o_1 shipped"
    assert unguarded_note("hi") == "HI"
    st.get_client().flush()
    from staso.store import Store

    store = Store(remote.database_url)
    try:
        rows = [r for r in store.list_decisions(limit=500)
                if r["tool_name"] in ("lookup_order", "unguarded_note")]
    finally:
        store.close()
    by_tool = {r["tool_name"]: r for r in rows}
    assert by_tool["lookup_order"]["action"] == "allow"
    assert by_tool["lookup_order"]["execution_status"] == "ok"
    assert "shipped" in by_tool["lookup_order"]["execution_output"]
    assert by_tool["unguarded_note"]["action"] is None
    assert by_tool["unguarded_note"]["execution_status"] == "ok"


def test_cli_works_against_a_server(server: Server) -> None:
    esc = _escalate(server, 4010)
    env = {"STASO_BASE_URL": server.url, "STASO_API_KEY": server.keys["approver"]}
    listed = cli("escalations", "list", "--status", "pending", "--json", env=env)
    assert esc["escalation_id"] in {e["id"] for e in json.loads(listed.stdout)}
    denied = cli("escalations", "deny", esc["escalation_id"], "--by", "carol", "--comment", "no",
                 env=env)
    assert "denied" in denied.stdout
    again = cli("escalations", "approve", esc["escalation_id"], "--by", "carol", env=env,
                check=False)
    assert again.returncode == 1 and "already denied" in again.stderr
    agent = cli("escalations", "list", env={**env, "STASO_API_KEY": server.keys["agent"]},
                check=False)
    assert agent.returncode == 1 and "403" in agent.stderr


def test_keys_create_prints_only_the_key(server: Server) -> None:
    created = cli("keys", "create", "--role", "approver", "--name", "dave", env=server.env)
    key = created.stdout.strip()
    assert key.startswith("staso_approver_") and "\n" not in key
    assert "dave" in created.stderr
    r = server.request("GET", "/v1/escalations", role=None,
                       headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    bad = cli("keys", "create", "--role", "root", "--name", "x", env=server.env, check=False)
    assert bad.returncode == 1 and "role must be one of" in bad.stderr
