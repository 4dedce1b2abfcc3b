"""The original product description's examples, run as written (embedded, no server)."""

from __future__ import annotations

import time

import staso as st
from approvers import answer_later
from staso import guard

WIRE = {"amount": 50000, "destination": "external-bank"}


def test_fire_and_forget_returns_escalation_id(home):
    result = guard(tool_name="wire_transfer", tool_input=WIRE)
    assert result.action == "escalate"
    assert result.escalation_id.startswith("esc_")
    assert result.escalation_status == "pending"
    message = f"This transfer requires approval. Reference: {result.escalation_id}"
    assert result.escalation_id in message
    assert st.get_escalation(result.escalation_id).status == "pending"


def test_wait_approved_is_allow(home):
    t = answer_later(st.approve, by="manager")
    result = guard(tool_name="wire_transfer", tool_input={"amount": 50000},
                   wait_for_escalation=True, escalation_poll_interval=3.0,
                   escalation_timeout=10.0)
    t.join()
    assert (result.action, result.escalation_status) == ("allow", "approved")


def test_wait_approved_with_edit_is_modify(home):
    t = answer_later(st.approve, by="manager", modified_input={"amount": 20000})
    result = guard(tool_name="wire_transfer", tool_input={"amount": 50000},
                   wait_for_escalation=True, escalation_timeout=10.0)
    t.join()
    assert result.action == "modify"
    assert result.modified_input == {"amount": 20000}


def test_wait_denied_is_block_with_comment(home):
    t = answer_later(st.deny, by="manager", comment="customer is flagged for fraud")
    result = guard(tool_name="wire_transfer", tool_input={"amount": 50000},
                   wait_for_escalation=True, escalation_timeout=10.0)
    t.join()
    assert result.action == "block"
    assert "customer is flagged for fraud" in result.reason
    assert result.escalation_status == "denied"


def test_wait_timeout_is_block(home):
    started = time.monotonic()
    result = guard(tool_name="wire_transfer", tool_input={"amount": 50000},
                   wait_for_escalation=True, escalation_poll_interval=0.1,
                   escalation_timeout=0.5)
    assert time.monotonic() - started >= 0.5
    assert result.action == "block"
    assert result.reason == "Escalation poll timeout"
    assert st.get_escalation(result.escalation_id).status == "timeout"


def test_refund_example_runs_unchanged(home):
    refunds = []

    def do_refund(customer_id, amount):
        refunds.append((customer_id, amount))

    @st.tool(name="process_refund")
    def process_refund(customer_id: str, amount: float) -> str:
        result = guard(
            tool_name="process_refund",
            tool_input={"customer_id": customer_id, "amount": amount},
            wait_for_escalation=True,
            escalation_timeout=120.0,
        )
        if result.action == "block":
            return f"Refund denied: {result.reason}"
        if result.action == "allow":
            do_refund(customer_id, amount)
            return f"Refund of ${amount} processed"
        adjusted = result.modified_input["amount"]
        do_refund(customer_id, adjusted)
        return f"Refund of ${adjusted} processed (adjusted from ${amount})"

    assert process_refund("c1", 50.0) == "Refund of $50.0 processed"
    t = answer_later(st.approve, by="manager", modified_input={"customer_id": "c2",
                                                              "amount": 900.0})
    assert process_refund("c2", 5000.0) == "Refund of $900.0 processed (adjusted from $5000.0)"
    t.join()
    t = answer_later(st.deny, by="manager", comment="no")
    assert process_refund("c3", 7000.0).startswith("Refund denied: Denied by manager: no")
    t.join()
    assert refunds == [("c1", 50.0), ("c2", 900.0)]
    st.shutdown()
