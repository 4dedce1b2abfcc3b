"""StasoApprovals: a staso escalation as the approval source of the SDK's own
``needs_approval`` / ``RunState`` flow; the person answers in staso."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("agents", reason="the OpenAI Agents SDK is part of the dev extras")

from agents import Runner
from agents.run_state import RunState

import staso as st
from approvers import answer_later
from conftest import logged
from oa_agents import Ledger, agent, calls, say, tool_outputs
from staso_openai_agents import StasoApprovals


async def run_until_settled(approvals, guarded, text):
    result = await Runner.run(guarded, text)
    interrupted = len(result.interruptions)
    while result.interruptions:
        state = await approvals.settle(result)
        result = await Runner.run(guarded, state)
    return result, interrupted


def test_an_escalation_interrupts_the_run_and_an_approval_resumes_it(home):
    ledger = Ledger()
    approvals = StasoApprovals(answer_timeout=20)
    guarded = approvals.agent(agent([calls(("refund", {"order_id": "A1", "amount": 50}),
                                           ("refund", {"order_id": "A2", "amount": 5000})),
                                     say("both done")], ledger.tools()))
    t = answer_later(st.approve, by="manager")
    result, interrupted = asyncio.run(run_until_settled(approvals, guarded, "refunds"))
    t.join()
    assert interrupted == 1  # only the $5,000 refund waited for a person
    assert ledger.ran == [("refund", {"order_id": "A1", "amount": 50.0}),
                          ("refund", {"order_id": "A2", "amount": 5000.0})]
    assert sorted(tool_outputs(result)) == ["refunded $50 on A1", "refunded $5000 on A2"]
    assert result.final_output == "both done"
    rows = logged()
    assert sorted(r["action"] for r in rows) == ["allow", "allow", "escalate"]
    [esc] = st.get_client().list_escalations()
    assert esc.status == "approved" and esc.consumed_at is not None


def test_a_denial_is_a_rejection_the_model_reads(home):
    ledger = Ledger()
    approvals = StasoApprovals(answer_timeout=20)
    guarded = approvals.agent(agent([calls(("refund", {"order_id": "A2", "amount": 5000})),
                                     say("ok")], ledger.tools()))
    t = answer_later(st.deny, by="manager", comment="customer is flagged")
    result, _ = asyncio.run(run_until_settled(approvals, guarded, "refund"))
    t.join()
    assert ledger.ran == []
    [output] = tool_outputs(result)
    assert "denied by manager: customer is flagged" in output and "not run" in output


def test_an_edited_approval_runs_the_edit(home):
    ledger = Ledger()
    approvals = StasoApprovals(answer_timeout=20)
    guarded = approvals.agent(agent([calls(("refund", {"order_id": "A2", "amount": 5000})),
                                     say("ok")], ledger.tools()))
    t = answer_later(st.approve, by="manager", modified_input={"order_id": "A2",
                                                               "amount": 800})
    asyncio.run(run_until_settled(approvals, guarded, "refund"))
    t.join()
    assert ledger.ran == [("refund", {"order_id": "A2", "amount": 800.0})]


def test_block_and_modify_are_decided_once_without_interrupting(home):
    ledger = Ledger()
    approvals = StasoApprovals()
    guarded = approvals.agent(agent([calls(("run_sql", {"query": "DROP TABLE users"}),
                                           ("send_email", {"to": "a@b.co",
                                                           "body": "SSN 123-45-6789"})),
                                     say("x")], ledger.tools()))
    result = Runner.run_sync(guarded, "go")
    assert not result.interruptions
    blocked, sent = tool_outputs(result)
    assert "'builtin/destructive_sql'" in blocked and sent == "sent to a@b.co"
    assert ledger.ran == [("send_email", {"to": "a@b.co", "body": "SSN [REDACTED:ssn]"})]
    assert sorted(r["action"] for r in logged()) == ["block", "modify"]


def test_a_saved_run_state_is_settled_by_another_process(home):
    """The interrupted run is saved as JSON with the escalation ids; a fresh StasoApprovals
    (another process, no memory of the run) settles it and the tool runs once."""
    ledger = Ledger()
    turns = [calls(("refund", {"order_id": "A5", "amount": 5000})), say("done")]
    first = StasoApprovals()
    guarded = first.agent(agent(turns, ledger.tools()))
    result = Runner.run_sync(guarded, "refund")
    saved = json.dumps({"state": result.to_state().to_json(),
                        "escalations": first.escalations})
    [esc] = st.get_client().list_escalations(status="pending")
    st.approve(esc.id, by="manager")

    async def later():
        loaded = json.loads(saved)
        second = StasoApprovals(answer_timeout=5, escalations=loaded["escalations"])
        again = second.agent(guarded)
        state = await RunState.from_json(again, loaded["state"])
        interrupted = await Runner.run(again, state)
        state = await second.settle(interrupted)
        return await Runner.run(again, state)

    final = asyncio.run(later())
    assert ledger.ran == [("refund", {"order_id": "A5", "amount": 5000.0})]
    assert final.final_output == "done"
    assert len(st.get_client().list_escalations()) == 1
