"""Where a standing approval stops, found by attacking it: a person's own answer to the very
call comes first (a denial stands, an edited approval runs as edited), an edit cannot also
grant, a grant's condition stays cheap, its environment is its escalation's, and it holds
only while its rule says the same and its maker may still approve. Embedded (SQLite) and
against a real ``staso serve`` on PostgreSQL (a policy change through ``PUT /v1/policy``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import staso as st
from conftest import REFUND_POLICY, make_policy, start_server, stop_server, use_policy
from staso.approvers import AnswerRefused
from staso.store.keys import create_key

GRANT = {"ttl": "1h", "max_uses": 20}


def _escalated(tool_input: dict[str, Any], **options: Any) -> str:
    result = st.guard("process_refund", tool_input, **options)
    assert result.action == "escalate" and result.escalation_id, result
    return result.escalation_id


def _grant_from_a_routine_refund(by: str = "alice") -> None:
    routine = _escalated({"amount": 1200, "to": "acct-routine"})
    assert st.approve(routine, by=by, grant=GRANT).status == "approved"


def test_a_denial_of_the_very_call_outlives_a_later_grant(home: Path) -> None:
    use_policy(home, REFUND_POLICY)
    fraud = {"amount": 4000, "to": "acct-mule"}
    st.deny(_escalated(fraud), by="bob", comment="fraud")
    _grant_from_a_routine_refund()
    for _ in range(3):  # the denial, then a person again: never the grant
        again = st.guard("process_refund", fraud)
        assert again.action in ("block", "escalate") and again.grant_id is None, again
    assert st.guard("process_refund", {"amount": 1500, "to": "acct-x"}).grant_id is not None


def test_an_edited_approval_runs_as_edited_whatever_grant_lives(home: Path) -> None:
    use_policy(home, REFUND_POLICY)
    asked = {"amount": 50000, "to": "acct-attacker"}
    edited = {"amount": 1500, "to": "acct-customer"}
    esc = _escalated(asked)
    with pytest.raises(AnswerRefused, match="edited approval cannot also approve"):
        st.approve(esc, by="alice", modified_input=edited, grant=GRANT)
    assert st.get_escalation(esc).status == "pending"
    st.approve(esc, by="alice", modified_input=edited)
    _grant_from_a_routine_refund(by="carol")
    retried = st.guard("process_refund", asked)
    assert (retried.action, retried.modified_input, retried.grant_id) == ("modify", edited, None)


@pytest.mark.parametrize("when", [
    "tool_input.ids.all(a, tool_input.ids.exists_one(b, b == a))",
    "tool_input.items.exists(i, i > 5)",
    "tool_input.items . map(i, i * 2).size() < 3",
    "tool_input.items.filter(i, i > 5).size() == 0",
])
def test_a_grant_condition_that_grows_with_the_input_is_refused(home: Path, when: str) -> None:
    use_policy(home, REFUND_POLICY)
    esc = _escalated({"amount": 1200, "ids": [1, 2], "items": [1]})
    with pytest.raises(AnswerRefused, match="may not use all, exists"):
        st.approve(esc, by="alice", grant={**GRANT, "when": when})
    assert st.get_escalation(esc).status == "pending"
    assert st.get_client().list_grants() == []


def test_a_grant_keeps_to_its_escalations_environment(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STASO_HOME", str(tmp_path))
    policy = make_policy(tmp_path, REFUND_POLICY)
    st.init(agent_name="refund-agent", home=tmp_path, policy=policy)  # no environment: ""
    try:
        _grant_from_a_routine_refund()
        assert st.guard("process_refund", {"amount": 1300}).grant_id is not None
        st.init(agent_name="refund-agent", home=tmp_path, policy=policy,
                environment="production")
        elsewhere = st.guard("process_refund", {"amount": 1300})
        assert (elsewhere.action, elsewhere.grant_id) == ("escalate", None)
    finally:
        st.shutdown()


def test_tool_names_with_separators_at_their_ends_meet_the_rules(home: Path) -> None:
    use_policy(home, REFUND_POLICY)
    for name in ("process_refund ", " process_refund", "process_refund\n", "_processRefund_"):
        assert st.guard(name, {"amount": 5000}).action == "escalate", repr(name)


POLICY = REFUND_POLICY + '    approvers: [alice, "group:payments"]\n'


@pytest.fixture
def served(tmp_path: Path) -> Any:
    server = start_server(tmp_path, "postgres", make_policy(tmp_path, POLICY))
    yield server
    stop_server(server)


def _put_policy(server: Any, source: str) -> None:
    server.request("PUT", "/v1/policy", role="admin", json={"source": source}
                   ).raise_for_status()
    time.sleep(0.1)  # (the server that took the PUT applies it at once; there is one)


def test_a_grant_holds_only_while_its_rule_and_its_maker_do(served: Any) -> None:
    from staso.client import Client
    from staso.settings import Settings
    from staso.store import open_store

    store = open_store(served.database_url)
    try:
        record, key = create_key(store, role="approver", name="carol", groups=["payments"])
    finally:
        store.close()
    carol = Client(Settings.resolve(api_key=key, base_url=served.url))
    agent = served.agent_client("refund-agent")
    try:
        first = agent.guard("process_refund", {"amount": 1200})
        carol.approve(first.escalation_id, by="carol", grant=GRANT)
        assert agent.guard("process_refund", {"amount": 1250}).grant_id is not None
        # an unrelated rule added: the refund rule says the same, the grant holds
        _put_policy(served, POLICY + "  - name: no_wires\n    tools: [wire]\n"
                                     "    action: block\n")
        assert agent.guard("process_refund", {"amount": 1260}).grant_id is not None
        # the maker leaves the rule's approvers: her grant stops
        _put_policy(served, POLICY.replace('"group:payments"', '"group:treasury"'))
        assert agent.guard("process_refund", {"amount": 1270}).grant_id is None
        # back in; then the rule itself says more (every refund): the grant stops again
        _put_policy(served, POLICY)
        assert agent.guard("process_refund", {"amount": 1280}).grant_id is not None
        # the same rule, but the maker's key leaves the group: her grant stops with it
        store = open_store(served.database_url)
        try:
            store.set_groups(record.id, [])
            assert agent.guard("process_refund", {"amount": 1285}).grant_id is None
            store.set_groups(record.id, ["payments"])
            assert agent.guard("process_refund", {"amount": 1290}).grant_id is not None
        finally:
            store.close()
        _put_policy(served, POLICY.replace("tool_input.amount > 1000", "true"))
        stricter = agent.guard("process_refund", {"amount": 90000})
        assert (stricter.action, stricter.grant_id) == ("escalate", None)
    finally:
        agent.shutdown()
        carol.shutdown()
