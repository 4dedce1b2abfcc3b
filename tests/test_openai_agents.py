"""staso_openai_agents: guarded function tools, the tool input guardrail, timeouts and
context, end to end through ``agents.Runner`` with a scripted ``Model`` (no network).

Runs on the SDK pip picks beside crewai (0.20) and, in a second environment, on the newest.
"""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("agents", reason="the OpenAI Agents SDK is part of the dev extras")

from agents import Runner, function_tool
from agents.exceptions import ToolInputGuardrailTripwireTriggered

import staso as st
from approvers import answer_later, while_waiting
from conftest import logged, use_policy
from oa_agents import Ledger, agent, calls, say, tool_outputs
from staso_openai_agents import guard_agent, guard_tools, staso_tool_guardrail


def run(turns, *, ledger=None, mode="sync", name="refund-agent", **options):
    ledger = ledger or Ledger()
    guarded = guard_agent(agent(turns, ledger.tools(), name=name), **options)
    if mode == "async":
        result = asyncio.run(Runner.run(guarded, "please help"))
    else:
        result = Runner.run_sync(guarded, "please help")
    return result, ledger


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
def test_allow_runs_and_modify_rewrites(home, mode):
    result, ledger = run([calls(("refund", {"order_id": "A1", "amount": 50}),
                                ("send_email", {"to": "bob@example.com",
                                                "body": "SSN 123-45-6789"})),
                          say("done")], mode=mode)
    assert ledger.ran == [("refund", {"order_id": "A1", "amount": 50.0}),
                          ("send_email", {"to": "bob@example.com",
                                          "body": "SSN [REDACTED:ssn]"})]
    assert tool_outputs(result) == ["refunded $50 on A1", "sent to bob@example.com"]
    assert result.final_output == "done"


@pytest.mark.parametrize("mode", MODES)
def test_block_and_pending_are_the_tool_output_the_model_reads(home, mode):
    result, ledger = run([calls(("run_sql", {"query": "DROP TABLE users"}),
                                ("refund", {"order_id": "A2", "amount": 5000})),
                          say("I could not do either")], mode=mode)
    assert ledger.ran == []
    blocked, pending = tool_outputs(result)
    assert "'builtin/destructive_sql'" in blocked and "not run" in blocked
    assert "'high_value_payment'" in pending and "Nothing was done" in pending
    [esc] = st.get_client().list_escalations(status="pending")
    assert esc.id in pending
    assert result.final_output == "I could not do either"


def test_raise_options_fail_the_run(home):
    with pytest.raises(st.GuardBlocked):
        run([calls(("run_sql", {"query": "DROP TABLE users"})), say("x")], on_block="raise")
    with pytest.raises(st.EscalationPending):
        run([calls(("refund", {"order_id": "A2", "amount": 5000})), say("x")],
            on_escalate="raise", ledger=(ledger := Ledger()))
    assert ledger.ran == []


def test_a_default_the_model_left_out_is_guarded(home, tmp_path):
    use_policy(tmp_path, """
version: 1
rules:
  - name: default_amount
    tools: [refund]
    when: tool_input.amount == 10.0
    action: block
    reason: the default amount is never right
""")
    result, ledger = run([calls(("refund", {"order_id": "A1"})), say("x")])
    assert "'default_amount'" in tool_outputs(result)[0] and ledger.ran == []


def test_text_that_is_not_a_json_object_is_guarded_as_text(home):
    seen = []

    @function_tool
    def shell(command: str) -> str:
        """Run a command."""
        seen.append(command)
        return "ran"

    # a tool whose invoker takes free text, as custom FunctionTools may
    raw = guard_tools([shell])[0]
    inner = raw.staso_original

    async def free_text(ctx, arguments):
        seen.append(arguments)
        return "ran"

    inner.on_invoke_tool = free_text
    raw = guard_tools([inner])[0]
    result = Runner.run_sync(agent([calls(("shell", "rm -rf /")), say("x")], [raw]), "go")
    assert "blocked" in tool_outputs(result)[0] and seen == []


def test_wait_approve_edit_and_deny(home):
    t = answer_later(st.approve, by="manager", modified_input={"order_id": "A2",
                                                               "amount": 900})
    result, ledger = run([calls(("refund", {"order_id": "A2", "amount": 5000})), say("ok")],
                         wait_for_escalation=True, escalation_timeout=20)
    t.join()
    assert ledger.ran == [("refund", {"order_id": "A2", "amount": 900.0})]
    t = answer_later(st.deny, by="manager", comment="fraud suspected")
    result, ledger = run([calls(("refund", {"order_id": "A3", "amount": 5000})), say("ok")],
                         wait_for_escalation=True, escalation_timeout=20)
    t.join()
    assert ledger.ran == [] and "fraud suspected" in tool_outputs(result)[0]


def test_wait_awaits_without_blocking_the_event_loop(home):
    ledger = Ledger()
    guarded = guard_agent(agent([calls(("refund", {"order_id": "A2", "amount": 5000})),
                                 say("done")], ledger.tools()),
                          wait_for_escalation=True, escalation_timeout=20)

    started = time.monotonic()
    result, progressed = asyncio.run(while_waiting(Runner.run(guarded, "refund")))
    assert progressed >= 10, f"the loop ticked only {progressed} times in 0.3 s of waiting"
    assert ledger.ran == [("refund", {"order_id": "A2", "amount": 5000.0})]
    assert time.monotonic() - started < 3.0
    assert tool_outputs(result) == ["refunded $5000 on A2"]


def test_the_identical_call_after_approval_runs_once(home):
    ledger = Ledger()
    args = {"order_id": "A7", "amount": 5000}
    tools = guard_tools(ledger.tools())
    first = Runner.run_sync(agent([calls(("refund", args)), say("asked a manager")], tools),
                            "refund A7")
    assert "Nothing was done" in tool_outputs(first)[0] and ledger.ran == []
    st.approve(st.get_client().list_escalations(status="pending")[0].id, by="manager")
    second = Runner.run_sync(agent([calls(("refund", args)), say("done")], tools),
                             [*first.to_input_list(), {"role": "user", "content": "approved"}])
    assert tool_outputs(second) == ["refunded $5000 on A7"]
    third = Runner.run_sync(agent([calls(("refund", args)), say("again")], tools), "again")
    assert "needs a person's approval" in tool_outputs(third)[0]
    assert ledger.ran == [("refund", {"order_id": "A7", "amount": 5000.0})]


def test_a_tool_timeout_bounds_the_tool_not_the_wait(home):
    """timeout_seconds=0.5 and a 1 s wait for approval: the tool still runs once approved;
    a slow tool body still times out with the SDK's own message."""
    ran = []

    @function_tool
    async def refund(order_id: str, amount: float) -> str:
        """Refund."""
        ran.append(amount)
        if amount == 1:
            await asyncio.sleep(2)
        return "refunded"

    refund.timeout_seconds = 0.5  # the field on 0.20 and the newest (0.20's decorator lacks it)

    [guarded] = guard_tools([refund], wait_for_escalation=True, escalation_timeout=20)
    assert guarded.timeout_seconds is None and refund.timeout_seconds == 0.5
    t = answer_later(st.approve, delay=1.0, by="manager")
    result = Runner.run_sync(agent([calls(("refund", {"order_id": "A", "amount": 5000})),
                                    say("x")], [guarded]), "go")
    t.join()
    assert tool_outputs(result) == ["refunded"] and ran == [5000]
    slow = Runner.run_sync(agent([calls(("refund", {"order_id": "A", "amount": 1})),
                                  say("x")], [guarded]), "go")
    assert "timed out after 0.5 seconds" in tool_outputs(slow)[0]


def test_when_staso_gives_up_the_tool_never_runs(home):
    ledger = Ledger()
    result, _ = run([calls(("refund", {"order_id": "A9", "amount": 5000})), say("x")],
                    ledger=ledger, wait_for_escalation=True, escalation_timeout=0.5,
                    escalation_poll_interval=0.1)
    assert "Escalation poll timeout" in tool_outputs(result)[0]
    [esc] = st.get_client().list_escalations()
    assert esc.status == "timeout"
    with pytest.raises(st.EscalationConflict):
        st.approve(esc.id, by="late manager")
    assert ledger.ran == []


def test_context_reaches_rules_and_the_decision_log(home, tmp_path):
    from agents import RunConfig, set_trace_processors, set_tracing_disabled, trace

    use_policy(tmp_path, """
version: 1
rules:
  - name: interns_cannot_refund
    tools: [refund]
    when: context.agent_name == "intern"
    action: block
    reason: interns cannot refund
""")
    set_trace_processors([])  # real trace ids, exported nowhere
    set_tracing_disabled(False)
    try:
        with trace("support", group_id="thread-7") as current:
            Runner.run_sync(guard_agent(agent([calls(("refund", {"order_id": "A1"})),
                                               say("x")], Ledger().tools())),
                            "go", run_config=RunConfig(group_id="thread-7"))
    finally:
        set_tracing_disabled(True)
    [row] = logged("refund")
    assert row["context"]["framework"] == "openai-agents"
    assert row["context"]["agent_name"] == "refund-agent"
    assert row["context"]["tool_call_id"].startswith("call_")
    assert row["context"]["trace_id"] == current.trace_id
    assert row["context"]["group_id"] == "thread-7"
    assert row["execution_status"] == "ok"
    result, ledger = run([calls(("refund", {"order_id": "A1"})), say("x")], name="intern")
    assert "'interns_cannot_refund'" in tool_outputs(result)[0] and ledger.ran == []


def test_guard_agent_covers_handoffs_and_leaves_the_original_alone(home):
    from agents import Agent

    ledger = Ledger()
    billing = agent([calls(("refund", {"order_id": "A1", "amount": 5000})), say("pending")],
                    ledger.tools(), name="billing")
    triage = Agent(name="triage", model=billing.model, tools=[], handoffs=[billing])
    billing.handoffs = [triage]  # a cycle
    guarded = guard_agent(triage)
    guarded_billing = guarded.handoffs[0]
    assert guarded_billing is not billing and guarded_billing.handoffs[0] is guarded
    assert all(hasattr(t, "staso_original") for t in guarded_billing.tools)
    assert not any(hasattr(t, "staso_original") for t in billing.tools)
    result = Runner.run_sync(guarded_billing, "refund")
    assert "Nothing was done" in tool_outputs(result)[0] and ledger.ran == []


@pytest.mark.parametrize("mode", MODES)
def test_tool_input_guardrail_allows_and_rejects(home, mode):
    ledger = Ledger()
    tools = ledger.tools()
    for tool in tools:
        tool.tool_input_guardrails = [staso_tool_guardrail()]
    turns = [calls(("refund", {"order_id": "A1", "amount": 50}),
                   ("run_sql", {"query": "DROP TABLE users"}),
                   ("send_email", {"to": "a@b.co", "body": "SSN 123-45-6789"})), say("x")]
    runner = agent(turns, tools)
    result = asyncio.run(Runner.run(runner, "go")) if mode == "async" else \
        Runner.run_sync(runner, "go")
    ok, blocked, rewrite = tool_outputs(result)
    assert ok == "refunded $50 on A1"
    assert "'builtin/destructive_sql'" in blocked
    assert "guard_tools" in rewrite and "not run" in rewrite
    assert ledger.ran == [("refund", {"order_id": "A1", "amount": 50.0})]


def test_tool_input_guardrail_can_stop_the_run(home):
    ledger = Ledger()
    tools = ledger.tools()
    for tool in tools:
        tool.tool_input_guardrails = [staso_tool_guardrail(on_block="raise")]
    with pytest.raises(ToolInputGuardrailTripwireTriggered):
        Runner.run_sync(agent([calls(("run_sql", {"query": "DROP TABLE x"})), say("x")],
                              tools), "go")
    assert ledger.ran == []


def test_guardrail_defers_to_guard_tools_one_decision(home):
    ledger = Ledger()
    tools = ledger.tools()
    for tool in tools:
        tool.tool_input_guardrails = [staso_tool_guardrail()]
    guarded = guard_tools(tools)
    Runner.run_sync(agent([calls(("send_email", {"to": "a@b.co", "body": "SSN 123-45-6789"})),
                           say("x")], guarded), "go")
    assert ledger.ran == [("send_email", {"to": "a@b.co", "body": "SSN [REDACTED:ssn]"})]
    assert len(logged("send_email")) == 1


def test_hosted_tools_pass_through_with_a_warning(home, caplog):
    from agents import WebSearchTool

    web = WebSearchTool()
    assert guard_tools([web]) == [web]
    assert "cannot guard" in caplog.text


def test_remote_mode(remote):
    result, ledger = run([calls(("refund", {"order_id": "A1", "amount": 20}),
                                ("run_sql", {"query": "DROP TABLE users"})), say("x")],
                         mode="async")
    assert ledger.ran == [("refund", {"order_id": "A1", "amount": 20.0})]
    assert "'builtin/destructive_sql'" in tool_outputs(result)[1]
