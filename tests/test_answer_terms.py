"""Who must answer a call, found by attacking it: every rule that escalates a call lends its
terms (the strictest together), an answer given under lax terms is never taken by a call
that needs stricter ones, a name that looks like an entry is not that entry, and the
requester is recognised however their name is spelled. Embedded (SQLite) and against a real
``staso serve`` on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import staso as st
from conftest import make_policy, start_server, stop_server, use_policy
from staso.approvers import NotAnApprover
from staso.store.keys import create_key

POLICY = """version: 1
rules:
  - name: refund
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
  - name: large-refund
    tools: [process_refund]
    when: tool_input.amount > 10000
    action: escalate
    approvers: [carol, dave, "group:finance-leads"]
    approvals_required: 2
    forbid_self_approval: true
  - name: payout
    tools: [payout]
    action: escalate
  - name: prod-payout
    tools: [payout]
    when: context.env == "prod"
    action: escalate
    approvers: [carol, dave]
    approvals_required: 2
  - name: narrow
    tools: [wire]
    action: escalate
    approvers: [carol, erin]
  - name: narrower
    tools: [wire]
    action: escalate
    approvers: [carol, frank]
"""


def _escalated(tool: str, tool_input: dict[str, Any], **kw: Any) -> str:
    result = st.guard(tool, tool_input, **kw)
    assert result.action == "escalate" and result.escalation_id, result
    return result.escalation_id


def test_every_escalating_rule_lends_its_terms(home: Path) -> None:
    use_policy(home, POLICY)
    esc_id = _escalated("process_refund", {"amount": 50000},
                        context={"requested_by": "carol"})
    esc = st.get_escalation(esc_id)
    assert (esc.rule_name, esc.approvals_required, esc.forbid_self_approval) == (
        "refund", 2, True)
    assert esc.approvers == ["carol", "dave", "group:finance-leads"]
    for who in ("eve", "carol"):  # not listed; the requester
        with pytest.raises(NotAnApprover):
            st.approve(esc_id, by=who)
    assert st.approve(esc_id, by="dave").status == "pending"  # one of two
    # two rules naming approvers: only those both name may answer
    wire = st.get_escalation(_escalated("wire", {"to": "x"}))
    assert wire.approvers == ["carol"]
    with pytest.raises(NotAnApprover):
        st.approve(wire.id, by="erin")
    assert st.approve(wire.id, by="carol").status == "approved"


def test_an_answer_under_lax_terms_is_not_taken_by_a_stricter_call(home: Path) -> None:
    use_policy(home, POLICY)
    dev = _escalated("payout", {"amount": 10}, context={"env": "dev"})
    assert st.approve(dev, by="eve").status == "approved"
    prod = st.guard("payout", {"amount": 10}, context={"env": "prod"})
    assert (prod.action, st.get_escalation(prod.escalation_id).approvals_required) == (
        "escalate", 2)
    assert st.guard("payout", {"amount": 10}, context={"env": "dev"}).action == "allow"


def test_an_answer_in_one_environment_lets_nothing_through_in_another(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STASO_HOME", str(tmp_path))
    policy = make_policy(tmp_path, POLICY)
    st.init(agent_name="payer", home=tmp_path, policy=policy, environment="staging")
    try:
        st.approve(_escalated("payout", {"amount": 7}), by="eve")
        st.init(agent_name="payer", home=tmp_path, policy=policy, environment="production")
        assert st.guard("payout", {"amount": 7}).action == "escalate"
    finally:
        st.shutdown()


def test_a_name_that_looks_like_an_entry_is_not_that_entry(home: Path) -> None:
    use_policy(home, POLICY)
    esc = _escalated("process_refund", {"amount": 20000})
    with pytest.raises(NotAnApprover):
        st.approve(esc, by="group:finance-leads")


@pytest.mark.parametrize("asked", ["Carol", "carol\u200b", " carol ", "\uff43arol"])
def test_the_requester_is_known_however_their_name_is_spelled(home: Path, asked: str) -> None:
    use_policy(home, POLICY)
    esc = _escalated("process_refund", {"amount": 30000}, context={"requested_by": asked})
    with pytest.raises(NotAnApprover, match="forbids approving one's own request"):
        st.approve(esc, by="carol")


@pytest.fixture
def served(tmp_path: Path) -> Any:
    server = start_server(tmp_path, "postgres", make_policy(tmp_path, POLICY))
    yield server
    stop_server(server)


def test_remote_strictest_terms_and_entry_looking_key_names(served: Any) -> None:
    from staso.store import open_store

    store = open_store(served.database_url)
    try:
        _, impostor = create_key(store, role="approver", name="group:finance-leads")
        _, dave = create_key(store, role="approver", name="dave")
    finally:
        store.close()
    agent = served.agent_client("refund-agent")
    try:
        result = agent.guard("process_refund", {"amount": 60000})
        path = f"/v1/escalations/{result.escalation_id}/approve"
        import httpx
        refused = httpx.post(served.url + path, json={},
                             headers={"Authorization": f"Bearer {impostor}"})
        assert refused.status_code == 403, refused.text
        counted = httpx.post(served.url + path, json={},
                             headers={"Authorization": f"Bearer {dave}"})
        assert counted.status_code == 200 and counted.json()["status"] == "pending"
        assert counted.json()["approvals_required"] == 2
    finally:
        agent.shutdown()
