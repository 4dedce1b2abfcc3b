"""Standing approvals: an approval given with a scope lets calls like it through for a while.
A grant covers only its escalation's agent, tool and rule (and its ``when``), never a call
some rule blocks, and ends at its ttl, its last use (exactly, however many calls race for
it) or when revoked. Embedded and against a real ``staso serve``, on SQLite and PostgreSQL;
given through ``st.approve``, the API and the CLI."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

import sides
import staso as st
from conftest import make_policy
from servers import cli
from staso.approvers import AnswerRefused
from staso.client import Client
from staso.grants import Grant, GrantNotFound, GrantRevoked
from staso.models import GuardResult

POLICY = """version: 1
rules:
  - name: known_fraud
    tools: [process_refund]
    when: tool_input.customer == "c_fraud"
    action: block
  - name: big_refund
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
  - name: new_payee
    tools: [process_refund]
    when: '"payee" in tool_input'
    action: escalate
  - name: outbound_email
    tools: [send_email]
    action: escalate
  - name: two_keys
    tools: [wire_transfer]
    action: escalate
    approvals_required: 2
"""


# -- staso embedded or remote, on one database ----------------------------------------------
class Side(sides.Side):
    """One way of running staso. Each test has agents of its own (grants are per agent), so
    tests sharing a server never use each other's grants."""

    def guard(self, tool_input: dict[str, Any], tool: str = "process_refund",
              agent_name: str | None = None) -> GuardResult:
        return self.client(agent_name).guard(tool, tool_input)

    def approver(self, name: str) -> tuple[Client, str, str | None]:
        """(client answering as ``name``, name, remote key)."""
        client, key = self.answerer(name)
        return client, name, key

    def grant_of(self, escalation_id: str) -> Grant:
        return next(g for g in self.store.list_grants(limit=1000)
                    if g.escalation_id == escalation_id)


side, remote_side, cli_side, sqlite_policy_server, postgres_policy_server = \
    sides.side_fixtures(Side, POLICY, agent_name="refunds-{tag}")


def _escalated(side: Side, tool_input: dict[str, Any], **kw: Any) -> str:
    result = side.guard(tool_input, **kw)
    assert result.action == "escalate" and result.escalation_id, result
    return result.escalation_id


def _granted(result: GuardResult, grant: Grant) -> bool:
    return result.action == "allow" and result.grant_id == grant.id


# -- what a grant covers ---------------------------------------------------------------------
def test_a_grant_allows_the_calls_it_covers_and_nothing_else(side: Side) -> None:
    approver, name, _ = side.approver("gwen")
    esc_id = _escalated(side, {"customer": "c_1", "amount": 1500})
    answered = approver.approve(esc_id, by=name, comment="regular customer", grant={
        "agent": side.agent_name, "tool": "process_refund",
        "when": "tool_input.amount <= 2000", "ttl": "1h", "max_uses": 20})
    assert answered.status == "approved"
    grant = side.grant_of(esc_id)
    via = "python" if side.server is None else "api"
    assert (grant.agent_name, grant.tool_name, grant.rule_name) == (
        side.agent_name, "process_refund", "big_refund")
    assert (grant.condition, grant.max_uses, grant.uses) == ("tool_input.amount <= 2000", 20, 0)
    assert (grant.created_by, grant.created_via) == (name, via)
    assert grant.expires_at - grant.created_at == pytest.approx(3600)
    assert grant.state(time.time()) == "live"

    inside = side.guard({"customer": "c_2", "amount": 1800})
    assert _granted(inside, grant) and inside.escalation_id is None, inside
    assert f"allowed by standing approval {grant.id} (granted by {name}, use 1 of 20)" in \
        inside.reason and "Matched rule big_refund" in inside.reason
    row = side.decision(inside.decision_id)
    assert (row["action"], row["grant_id"], row["rule_name"]) == ("allow", grant.id,
                                                                  "big_refund")

    not_covered = {
        "outside its when": side.guard({"customer": "c_3", "amount": 2500}),
        "another agent": side.guard({"customer": "c_4", "amount": 1500},
                                    agent_name=f"other-{side.agent_name}"),
        "another tool": side.guard({"to": "c_5@example.com"}, tool="send_email"),
        "another rule": side.guard({"customer": "c_6", "amount": 50, "payee": "new"}),
        "another rule too": side.guard({"customer": "c_7", "amount": 1500, "payee": "new"}),
    }
    for why, result in not_covered.items():
        assert (result.action, result.grant_id) == ("escalate", None), (why, result)
        assert result.escalation_status == "pending", why
    # a block is a block, inside a grant too
    blocked = side.guard({"customer": "c_fraud", "amount": 1500})
    assert (blocked.action, blocked.rule_name, blocked.grant_id) == ("block", "known_fraud",
                                                                     None)
    assert side.store.get_grant(grant.id).uses == 1  # type: ignore[union-attr]


def test_max_uses_hold_when_calls_race_for_the_last_ones(side: Side) -> None:
    """40 calls at once against a grant of 5 uses: exactly 5 are allowed by it."""
    approver, name, _ = side.approver("max")
    esc_id = _escalated(side, {"customer": "c_0", "amount": 5000})
    approver.approve(esc_id, by=name, grant={"max_uses": 5})
    grant = side.grant_of(esc_id)
    calls = 40
    start = threading.Barrier(calls)
    results: list[Any] = [None] * calls
    client = side.client()

    def call(i: int) -> None:
        tool_input = {"customer": f"c_{i}", "amount": 1001 + i}
        start.wait()
        try:
            if side.server is None:
                result = client.guard("process_refund", tool_input)
                results[i] = (result.action, result.grant_id, result.decision_id)
            else:  # as many agents would: each its own request
                r = httpx.post(f"{side.server.url}/v1/guard", timeout=120,
                               headers=side.server.headers("agent"),
                               json={"tool_name": "process_refund", "tool_input": tool_input,
                                     "agent_name": side.agent_name})
                body = r.json()
                results[i] = (body.get("action"), body.get("grant_id"),
                              body.get("decision_id")) if r.status_code == 200 else r.text
        except Exception as exc:
            results[i] = repr(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    counted = Counter(r[:2] if isinstance(r, tuple) else r for r in results)
    assert counted == {("allow", grant.id): 5, ("escalate", None): calls - 5}, counted
    used = side.store.get_grant(grant.id)
    assert used is not None and used.uses == 5 and used.state(time.time()) == "used up"
    for _, grant_id, decision_id in results:
        if grant_id is not None:
            assert side.decision(decision_id)["grant_id"] == grant.id
    after = side.guard({"customer": "c_x", "amount": 1200})
    assert (after.action, after.grant_id) == ("escalate", None)
    assert grant.id not in {g.id for g in side.store.list_grants(live_only=True)}


def test_a_grant_ends_at_its_ttl(side: Side) -> None:
    approver, name, _ = side.approver("tess")
    esc_id = _escalated(side, {"customer": "c_1", "amount": 4000})
    approver.approve(esc_id, by=name, grant={"ttl": "5s"})
    grant = side.grant_of(esc_id)
    assert grant.expires_at - grant.created_at == pytest.approx(5)
    assert _granted(side.guard({"customer": "c_2", "amount": 4000}), grant)
    while time.time() < grant.expires_at + 1.0:  # past its end, with a margin
        time.sleep(0.25)
    late = side.guard({"customer": "c_3", "amount": 4000})
    assert (late.action, late.grant_id) == ("escalate", None)
    assert side.store.get_grant(grant.id).state(time.time()) == "expired"  # type: ignore[union-attr]
    assert grant.id not in {g.id for g in side.store.list_grants(live_only=True)}


@pytest.mark.parametrize("scope", [
    {"agent": "someone-else"}, {"tool": "send_email"}, {"when": "tool_input.amount <="},
    {"when": "tool_input.amount + "}, {"when": 5}, {"when": ""}, {"ttl": 0}, {"ttl": "0s"},
    {"ttl": "31d"}, {"ttl": "soon"}, {"ttl": True}, {"max_uses": 0}, {"max_uses": 1.5},
    {"max_uses": "5"}, {"everyone": True},
], ids=lambda scope: json.dumps(scope))
def test_a_grant_reaching_beyond_its_escalation_is_refused(side: Side,
                                                           scope: dict[str, Any]) -> None:
    approver, name, key = side.approver("rex")
    esc_id = _escalated(side, {"customer": "c_1", "amount": 3000})
    with pytest.raises(AnswerRefused):
        approver.approve(esc_id, by=name, grant=scope)
    if side.server is not None:  # and the API's answer to it
        r = side.server.request("POST", f"/v1/escalations/{esc_id}/approve", role=None,
                                headers={"Authorization": f"Bearer {key}"},
                                json={"grant": scope})
        assert r.status_code == 422 and r.json()["error"] == "AnswerRefused", r.text
    esc = side.store.get_escalation(esc_id)
    assert (esc.status, esc.approvals) == ("pending", [])
    assert not [g for g in side.store.list_grants(limit=1000) if g.escalation_id == esc_id]


def test_no_grant_where_the_rule_needs_several_approvers(side: Side) -> None:
    approver, name, _ = side.approver("quinn")
    esc_id = _escalated(side, {"amount": 10}, tool="wire_transfer")
    with pytest.raises(AnswerRefused, match="needs 2 approvers for each call"):
        approver.approve(esc_id, by=name, grant={"ttl": "1h"})
    assert side.store.get_escalation(esc_id).approvals == []


# -- reviewing and revoking ------------------------------------------------------------------
def test_a_revoked_grant_allows_nothing_more(side: Side) -> None:
    approver, name, key = side.approver("rita")
    esc_id = _escalated(side, {"customer": "c_1", "amount": 2222})
    if side.server is None:
        approver.approve(esc_id, by=name, grant={"ttl": "2h"})
    else:  # the API itself
        r = side.server.request("POST", f"/v1/escalations/{esc_id}/approve", role=None,
                                headers={"Authorization": f"Bearer {key}"},
                                json={"comment": "fine", "grant": {"ttl": "2h"}})
        assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    grant = side.grant_of(esc_id)
    assert _granted(side.guard({"customer": "c_2", "amount": 2222}), grant)

    listed = {g.id: g for g in approver.list_grants()}
    assert listed[grant.id].uses == 1 and listed[grant.id].created_by == name
    assert grant.id in {g.id for g in approver.list_grants(live_only=True)}
    assert approver.get_grant(grant.id).id == grant.id
    revoked = approver.revoke_grant(grant.id, by=name)
    assert (revoked.revoked_by, revoked.state(time.time())) == (name, "revoked")
    assert revoked.revoked_at is not None
    after = side.guard({"customer": "c_3", "amount": 2222})
    assert (after.action, after.grant_id) == ("escalate", None)
    with pytest.raises(GrantRevoked, match=f"already revoked by {name}"):
        approver.revoke_grant(grant.id, by=name)
    with pytest.raises(GrantNotFound, match="no standing approval with id 'grant_0000'"):
        approver.revoke_grant("grant_0000", by=name)
    with pytest.raises(GrantNotFound):
        approver.get_grant("grant_0000")
    assert grant.id not in {g.id for g in approver.list_grants(live_only=True)}
    assert side.store.get_grant(grant.id).uses == 1  # type: ignore[union-attr]


def test_the_grants_routes(remote_side: Side) -> None:
    side = remote_side
    server = side.server
    assert server is not None
    approver, name, key = side.approver("ravi")
    bearer = {"Authorization": f"Bearer {key}"}
    esc_id = _escalated(side, {"customer": "c_1", "amount": 7777})
    approver.approve(esc_id, by=name, grant={"ttl": "1h", "max_uses": 3,
                                             "when": "tool_input.amount < 8000"})
    grant = side.grant_of(esc_id)
    side.guard({"customer": "c_2", "amount": 7000})

    everything = server.request("GET", "/v1/grants", role=None, headers=bearer)
    assert everything.status_code == 200
    mine = next(g for g in everything.json() if g["id"] == grant.id)
    assert mine["state"] == "live" and mine["uses"] == 1 and mine["max_uses"] == 3
    assert (mine["agent_name"], mine["rule_name"], mine["condition"]) == (
        side.agent_name, "big_refund", "tool_input.amount < 8000")
    assert mine["escalation_id"] == esc_id and mine["created_by"] == name
    one = server.request("GET", f"/v1/grants/{grant.id}", role="admin")
    assert one.status_code == 200 and one.json()["state"] == "live"
    assert len(server.request("GET", "/v1/grants?limit=1", role="admin").json()) == 1
    assert server.request("GET", "/v1/grants?limit=0", role="admin").status_code == 422

    for method, path in (("GET", "/v1/grants"), ("GET", f"/v1/grants/{grant.id}"),
                         ("DELETE", f"/v1/grants/{grant.id}")):
        r = server.request(method, path, role="agent")
        assert r.status_code == 403, (method, path, r.text)
        assert server.request(method, path, role=None).status_code == 401
    assert server.request("GET", f"/v1/grants/{grant.id}", role="admin").json()["state"] \
        == "live"  # the agent's DELETE changed nothing

    gone = server.request("DELETE", f"/v1/grants/{grant.id}", role=None, headers=bearer)
    assert gone.status_code == 200, gone.text
    assert (gone.json()["state"], gone.json()["revoked_by"]) == ("revoked", name)
    again = server.request("DELETE", f"/v1/grants/{grant.id}", role="admin")
    assert again.status_code == 409 and f"already revoked by {name}" in again.json()["detail"]
    for path in ("/v1/grants/grant_00ff", "/v1/grants/nonsense"):
        assert server.request("DELETE", path, role="admin").status_code == 404
        assert server.request("GET", path, role="admin").status_code == 404
    live = server.request("GET", "/v1/grants?live=true", role="admin").json()
    assert grant.id not in {g["id"] for g in live}
    revoked = server.request("GET", "/v1/grants", role="admin").json()
    assert next(g for g in revoked if g["id"] == grant.id)["state"] == "revoked"
    # a revocation by someone named with the key shows both
    second = _escalated(side, {"customer": "c_9", "amount": 9999})
    approver.approve(second, by=name, grant={"ttl": "1h"})
    other = side.grant_of(second)
    said = server.request("DELETE", f"/v1/grants/{other.id}?by=nina", role="admin").json()
    assert said["revoked_by"] == "nina via root"


def test_cli_grants_approve_list_and_revoke(cli_side: Side) -> None:
    side = cli_side
    _, name, key = side.approver("cleo")
    env = side.cli_env(key)
    env["COLUMNS"] = "250"
    esc_id = _escalated(side, {"customer": "c_1", "amount": 1900})

    for bad, message in ((["--grant-ttl", "0"], "ttl must be more than 0"),
                         (["--grant-when", "tool_input.amount <="],
                          "grant invalid CEL in 'when': Failed to parse expression"),
                         (["--grant-max-uses", "0"], "max_uses must be a whole number")):
        refused = cli("escalations", "approve", esc_id, "--by", name, *bad, env=env,
                      check=False)
        assert refused.returncode == 1 and refused.stdout == "", refused
        assert len(refused.stderr.strip().splitlines()) == 1 and message in refused.stderr
    assert side.store.get_escalation(esc_id).status == "pending"

    approved = cli("escalations", "approve", esc_id, "--by", name, "--grant-ttl", "1h",
                   "--grant-max-uses", "3", "--grant-when", "tool_input.amount <= 2000",
                   env=env).stdout.splitlines()
    assert approved[0] == f"{esc_id} approved by {name}"
    assert approved[1] == (f"standing approval: {side.agent_name}'s process_refund calls "
                           "escalated by big_refund are allowed for 1h and at most 3 times "
                           "and when tool_input.amount <= 2000 (staso grants list)")
    grant = side.grant_of(esc_id)
    assert (grant.created_via, grant.max_uses, grant.condition) == (
        "cli", 3, "tool_input.amount <= 2000")
    assert _granted(side.guard({"customer": "c_2", "amount": 1500}), grant)

    listed = json.loads(cli("grants", "list", "--json", env=env).stdout)
    mine = next(g for g in listed if g["id"] == grant.id)
    assert (mine["state"], mine["uses"], mine["max_uses"]) == ("live", 1, 3)
    table = cli("grants", "list", env=env).stdout
    line = next(x for x in table.splitlines() if grant.id in x)
    for shown in ("live", side.agent_name, "big_refund", "tool_input.amount <= 2000",
                  "1 of 3", f"{name} via cli"):
        assert shown in line, (shown, line)

    revoked = cli("grants", "revoke", grant.id, "--by", name, env=env)
    assert revoked.stdout.strip() == f"{grant.id} revoked by {name} (it was used 1 time(s))"
    twice = cli("grants", "revoke", grant.id, "--by", name, env=env, check=False)
    assert twice.returncode == 1 and len(twice.stderr.strip().splitlines()) == 1
    assert f"already revoked by {name}" in twice.stderr
    unknown = cli("grants", "revoke", "grant_0000", "--by", name, env=env, check=False)
    assert unknown.returncode == 1 and "no standing approval with id 'grant_0000'" in \
        unknown.stderr
    assert grant.id not in cli("grants", "list", env=env).stdout
    everything = json.loads(cli("grants", "list", "--all", "--json", env=env).stdout)
    assert next(g for g in everything if g["id"] == grant.id)["state"] == "revoked"
    after = side.guard({"customer": "c_3", "amount": 1500})
    assert (after.action, after.grant_id) == ("escalate", None)
    if side.server is not None:  # an agent key may not see them
        denied = cli("grants", "list", env={**env, "STASO_API_KEY": side.server.keys["agent"]},
                     check=False)
        assert denied.returncode == 1 and "403" in denied.stderr


def test_st_approve_gives_a_grant_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """The module-level functions, as an application embedding staso calls them."""
    monkeypatch.setenv("STASO_HOME", str(tmp_path))
    st.init(agent_name="refund-agent", home=tmp_path, policy=make_policy(tmp_path, POLICY))
    try:
        first = st.guard("process_refund", {"customer": "c_1", "amount": 1500})
        esc = st.approve(first.escalation_id, by="sam", grant={"ttl": "1h", "max_uses": 1})
        assert esc.status == "approved"
        again = st.guard("process_refund", {"customer": "c_2", "amount": 1600})
        assert again.action == "allow" and again.grant_id is not None
        assert "granted by sam, use 1 of 1" in again.reason
        third = st.guard("process_refund", {"customer": "c_3", "amount": 1700})
        assert third.action == "escalate"
        st.get_client().flush()
        store = st.get_client().transport.service.store  # type: ignore[attr-defined]
        assert store.get_decision(again.decision_id)["grant_id"] == again.grant_id
        assert re.fullmatch(r"grant_[0-9a-f]{20}", again.grant_id)
    finally:
        st.shutdown()
