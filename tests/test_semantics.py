"""Decision semantics: strictest wins, audit, composed modifies, expiry, exactly-once,
fingerprints,
fail-closed, idempotent decision ids."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace

import pytest

import staso as st
from approvers import LoopTicker, first_pending
from staso.models import GuardRequest

POLICY = """
version: 1
escalation_ttl: 1h
rules:
  - name: big_refund
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
  - name: huge_refund
    tools: [process_refund]
    when: tool_input.amount > 100000
    action: block
    reason: Refunds over $100,000 are never automatic
  - name: cap_refund
    tools: [process_refund]
    when: tool_input.amount > 500
    action: modify
    modify: {cap: {amount: 500}}
  - name: usd_only
    tools: [process_refund]
    action: modify
    modify: {set: {currency: USD}, drop: [debug_token]}
  - name: audit_everything
    mode: audit
    action: block
    reason: would block
"""


@pytest.fixture
def policy_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    client = st.init(agent_name="refund-agent", home=tmp_path, policy=POLICY)
    yield client
    st.shutdown()


def test_strictest_wins_and_rules_triggered(policy_home):
    r = st.guard("process_refund", {"amount": 200000, "currency": "EUR"})
    assert r.action == "block" and r.rule_name == "huge_refund"
    assert r.reason == "Refunds over $100,000 are never automatic"
    assert set(r.rules_triggered) == {"big_refund", "huge_refund", "cap_refund", "usd_only",
                                      "audit_everything"}
    r = st.guard("process_refund", {"amount": 5000})
    assert r.action == "escalate" and r.rule_name == "big_refund"


def test_audit_rule_recorded_but_never_decides(policy_home):
    r = st.guard("lookup", {"q": "x"})
    assert r.action == "allow"
    audit = next(x for x in r.results if x.rule_name == "audit_everything")
    assert (audit.passed, audit.action, audit.mode) == (False, "block", "audit")


def test_modify_rules_compose_in_order(policy_home):
    r = st.guard("process_refund", {"amount": 800, "currency": "EUR", "debug_token": "t"})
    assert r.action == "modify"
    assert r.modified_input == {"amount": 500, "currency": "USD"}
    assert [m["field"] for m in r.modifications] == ["amount", "currency", "debug_token"]


def test_fingerprint_dedup_and_single_use(policy_home):
    a = st.guard("process_refund", {"amount": 5000, "currency": "USD"})
    b = st.guard("process_refund", {"currency": "USD", "amount": 5000})  # same call, key order
    other = st.guard("process_refund", {"amount": 5001, "currency": "USD"})
    assert a.escalation_id == b.escalation_id != other.escalation_id
    st.approve(a.escalation_id, by="m")
    runs = [st.guard("process_refund", {"amount": 5000, "currency": "USD"}) for _ in range(2)]
    assert runs[0].action == "modify" and runs[0].escalation_status == "approved"
    assert runs[1].action == "escalate" and runs[1].escalation_id != a.escalation_id


def test_denial_is_reported_once_to_the_retrying_agent(policy_home):
    a = st.guard("process_refund", {"amount": 5000, "currency": "USD"})
    st.deny(a.escalation_id, by="m", comment="not this customer")
    retry = st.guard("process_refund", {"amount": 5000, "currency": "USD"})
    assert retry.action == "block" and "not this customer" in retry.reason


def test_expired_escalation_refuses_late_approval(policy_home):
    r = st.guard("process_refund", {"amount": 5000, "currency": "USD"},
                 wait_for_escalation=True, escalation_timeout=0.3, escalation_poll_interval=0.05)
    assert r.reason == "Escalation poll timeout"
    with pytest.raises(st.EscalationConflict, match="expired"):
        st.approve(r.escalation_id, by="late")
    assert st.get_escalation(r.escalation_id).status == "timeout"


def test_no_approval_lands_after_a_waiting_call_gave_up(tmp_path):
    """The escalation is stored a moment after the caller's deadline was taken (here 0.3 s,
    by a slow plugin): the call waits out the escalation's own expiry before it answers
    "timeout", so a person approving right after that is refused, not recorded as approved
    for a call that never ran."""
    from staso.hookspecs import hookimpl

    class Slow:
        @hookimpl
        def staso_before_guard(self, request):
            time.sleep(0.3)

    st.init(agent_name="refund-agent", home=tmp_path, policy=POLICY, plugins=[Slow()])
    try:
        r = st.guard("process_refund", {"amount": 5000, "currency": "USD"},
                     wait_for_escalation=True, escalation_timeout=0.5,
                     escalation_poll_interval=0.05)
        assert r.reason == "Escalation poll timeout"
        with pytest.raises(st.EscalationConflict, match="expired"):
            st.approve(r.escalation_id, by="late")
        assert st.get_escalation(r.escalation_id).status == "timeout"
    finally:
        st.shutdown()


def test_concurrent_approvers_exactly_one_wins(policy_home):
    esc = st.guard("process_refund", {"amount": 5000, "currency": "USD"}).escalation_id
    outcomes, barrier = [], threading.Barrier(8)

    def approver(i):
        barrier.wait()
        try:
            st.approve(esc, by=f"approver-{i}")
            outcomes.append("won")
        except st.EscalationConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=approver, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["won"]


def test_idempotent_decision_id(policy_home):
    service = policy_home.transport.service
    req = GuardRequest(tool_name="process_refund", tool_input={"amount": 5000, "c": 1},
                       decision_id="dec_fixed", agent_name="refund-agent")
    first = service.decide(req)
    service.finish(req, first)
    again = service.decide(req)
    assert again.escalation_id == first.escalation_id
    service._recent.clear()  # a retry that reaches a fresh process: the store answers
    third = service.decide(req)
    assert third.escalation_id == first.escalation_id
    assert len(service.list_escalations()) == 1


def test_fail_closed_default_and_opt_out(policy_home, monkeypatch):
    service = policy_home.transport.service

    def broken(*a, **k):
        raise OSError("disk on fire")

    monkeypatch.setattr(service.store, "open_escalation", broken)
    r = st.guard("process_refund", {"amount": 5000})
    assert r.action == "block" and "disk on fire" in r.reason
    r = st.guard("process_refund", {"amount": 5000}, fail_closed=False)
    assert r.action == "block", "an escalation never degrades to allow"
    monkeypatch.setattr(service, "evaluate", broken)
    assert st.guard("lookup", {}, fail_closed=False).action == "allow"
    assert st.guard("lookup", {}).action == "block"


async def test_aguard_waits_without_blocking_the_loop(policy_home):
    async def approve_soon():
        pending = await first_pending()
        await asyncio.to_thread(st.approve, pending.id, by="m")

    async with LoopTicker() as ticker:
        a = asyncio.create_task(approve_soon())
        started = time.monotonic()
        r = await st.aguard("process_refund", {"amount": 5000, "currency": "USD"},
                            wait_for_escalation=True, escalation_timeout=10)
        elapsed = time.monotonic() - started
        await a
    assert r.action == "modify" and r.escalation_status == "approved"
    assert ticker.ticks >= int(elapsed / 0.01) // 3, "the event loop was blocked while waiting"


def test_conversation_context_reaches_decision_log(policy_home):
    with st.conversation("conv-123", user="u1"):
        r = st.guard("lookup", {"q": 1}, context={"thread": "t9"})
    policy_home.flush()
    row = policy_home.transport.service.store.get_decision(r.decision_id)
    assert row["context"] == {"conversation_id": "conv-123", "user": "u1", "thread": "t9"}
    assert row["action"] == "allow" and row["results"]


def test_unused_replace_is_frozen():
    r = st.GuardResult(action="allow")
    with pytest.raises(AttributeError):
        r.action = "block"  # type: ignore[misc]
    assert replace(r, action="block").action == "block"
