"""StasoMiddleware in ``langchain.agents.create_agent``: the full decision table of
docs/integrations/langchain.md, with
``invoke`` and ``ainvoke``, on a real agent graph driven by a scripted chat model."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

import staso as st
from approvers import answer_later, while_waiting
from conftest import logged, use_policy
from lc_agents import Ledger, agent, calls, say, thread, tool_messages
from staso_langchain import StasoMiddleware


def run_agent(script, *, mode="sync", ledger=None, config=None, **options):
    ledger = ledger or Ledger()
    graph = agent(script, ledger.tools(), middleware=[StasoMiddleware(**options)])
    payload = {"messages": [("user", "please help")]}
    config = config or thread("t-1")
    if mode == "async":
        result = asyncio.run(graph.ainvoke(payload, config=config))
    else:
        result = graph.invoke(payload, config=config)
    return result, ledger


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
def test_allow_runs_the_tool(home, mode):
    result, ledger = run_agent([calls(("refund", {"amount": 50})), say("done")], mode=mode)
    assert ledger.ran == [("refund", {"amount": 50, "order_id": "A1"})]
    assert tool_messages(result)[0].content == "refunded $50 on A1"
    assert result["messages"][-1].content == "done"


@pytest.mark.parametrize("mode", MODES)
def test_modified_input_reaches_the_tool(home, mode):
    email = {"to": "bob@example.com", "body": "my SSN is 123-45-6789"}
    result, ledger = run_agent([calls(("send_email", email)), say("done")], mode=mode)
    assert ledger.ran == [("send_email", {"to": "bob@example.com",
                                          "body": "my SSN is [REDACTED:ssn]"})]
    assert tool_messages(result)[0].content == "sent to bob@example.com"


@pytest.mark.parametrize("mode", MODES)
def test_block_is_a_tool_message_naming_rule_and_reason(home, mode):
    result, ledger = run_agent([calls(("run_sql", {"query": "DROP TABLE users"})),
                                say("I could not do that")], mode=mode)
    assert ledger.ran == []
    message = tool_messages(result)[0]
    assert message.status == "error" and message.name == "run_sql"
    assert "'builtin/destructive_sql'" in message.content
    assert "Destructive SQL" in message.content and "not run" in message.content
    assert message.artifact["staso"]["action"] == "block"
    assert result["messages"][-1].content == "I could not do that"  # the model read it


@pytest.mark.parametrize("mode", MODES)
def test_pending_is_a_tool_message_with_the_escalation_id(home, mode):
    result, ledger = run_agent([calls(("refund", {"amount": 5000})), say("waiting")],
                               mode=mode)
    assert ledger.ran == []
    message = tool_messages(result)[0]
    esc_id = message.artifact["staso"]["escalation_id"]
    assert esc_id.startswith("esc_") and esc_id in message.content
    assert "'high_value_payment'" in message.content
    assert "Nothing was done" in message.content
    assert st.get_escalation(esc_id).status == "pending"


@pytest.mark.parametrize("mode", MODES)
def test_raise_options_raise_out_of_the_run(home, mode):
    with pytest.raises(st.GuardBlocked) as blocked:
        run_agent([calls(("run_sql", {"query": "DROP TABLE users"})), say("x")], mode=mode,
                  on_block="raise")
    assert blocked.value.rule_name == "builtin/destructive_sql"
    ledger = Ledger()
    with pytest.raises(st.EscalationPending) as pending:
        run_agent([calls(("refund", {"amount": 5000})), say("x")], mode=mode,
                  on_escalate="raise", ledger=ledger)
    assert pending.value.escalation_id.startswith("esc_")
    assert ledger.ran == []


def test_strings_and_defaults_are_guarded_as_the_tool_reads_them(home, tmp_path):
    """The guard sees the validated input: a default the model left out and "9000" as 9000."""
    use_policy(tmp_path, """
version: 1
rules:
  - name: big_refund
    tools: [refund]
    when: tool_input.amount > 1000
    action: block
    reason: too much
  - name: main_order
    tools: [refund]
    when: tool_input.order_id == "A1"
    action: escalate
    reason: the main order needs a look
""")
    result, ledger = run_agent([calls(("refund", {"amount": "9000", "order_id": "B2"}),
                                      ("refund", {"amount": 10})), say("done")])
    first, second = tool_messages(result)
    assert "'big_refund'" in first.content
    assert "'main_order'" in second.content  # order_id defaulted to A1 in the tool
    assert ledger.ran == []


def test_wait_sync_approved_runs_and_denied_blocks(home):
    t = answer_later(st.approve, by="manager")
    result, ledger = run_agent([calls(("refund", {"amount": 5000})), say("done")],
                               wait_for_escalation=True, escalation_timeout=20)
    t.join()
    assert ledger.ran == [("refund", {"amount": 5000, "order_id": "A1"})]
    assert tool_messages(result)[0].content == "refunded $5000 on A1"

    t = answer_later(st.deny, by="manager", comment="customer is flagged for fraud")
    result, ledger = run_agent([calls(("refund", {"amount": 6000})), say("ok")],
                               wait_for_escalation=True, escalation_timeout=20)
    t.join()
    assert ledger.ran == []
    message = tool_messages(result)[0]
    assert "customer is flagged for fraud" in message.content and "not run" in message.content


def test_wait_approved_with_an_edit_runs_the_edit(home):
    t = answer_later(st.approve, by="manager", modified_input={"amount": 1000,
                                                               "order_id": "A1"})
    _, ledger = run_agent([calls(("refund", {"amount": 5000})), say("done")],
                          wait_for_escalation=True, escalation_timeout=20)
    t.join()
    assert ledger.ran == [("refund", {"amount": 1000, "order_id": "A1"})]


def test_wait_async_keeps_the_event_loop_free(home):
    """While one call waits for a person, other tasks on the same loop keep running."""
    ledger = Ledger()
    graph = agent([calls(("refund", {"amount": 5000})), say("done")], ledger.tools(),
                  middleware=[StasoMiddleware(wait_for_escalation=True, escalation_timeout=20)])

    waiting = graph.ainvoke({"messages": [("user", "refund")]}, config=thread("t-async"))
    started = time.monotonic()
    result, progressed = asyncio.run(while_waiting(waiting))
    assert progressed >= 10, f"the loop ticked only {progressed} times in 0.3 s of waiting"
    assert ledger.ran == [("refund", {"amount": 5000, "order_id": "A1"})]
    assert tool_messages(result)[0].content == "refunded $5000 on A1"
    assert time.monotonic() - started < 3.0  # resumed on the answer, not the 3 s poll


def test_fire_and_forget_finishes_when_the_model_retries_after_approval(home):
    """Fire-and-forget: pending → a person approves → the identical call runs once, and only
    once."""
    ledger = Ledger()
    refund = {"amount": 5000, "order_id": "A7"}
    graph = agent([calls(("refund", refund)), say("I asked a manager to approve it."),
                   calls(("refund", refund)), say("Refunded."),
                   calls(("refund", refund)), say("Asked again.")],
                  ledger.tools(), middleware=[StasoMiddleware()], checkpointer=InMemorySaver())
    config = thread("customer-42")
    first = graph.invoke({"messages": [("user", "refund A7")]}, config=config)
    esc_id = tool_messages(first)[-1].artifact["staso"]["escalation_id"]
    assert ledger.ran == []
    st.approve(esc_id, by="manager")

    second = graph.invoke({"messages": [("user", "approved, try again")]}, config=config)
    assert ledger.ran == [("refund", refund)]
    assert tool_messages(second)[-1].content == "refunded $5000 on A7"

    third = graph.invoke({"messages": [("user", "once more")]}, config=config)
    again = tool_messages(third)[-1]
    assert ledger.ran == [("refund", refund)]  # the approval was used up
    assert again.artifact["staso"]["escalation_id"] not in (None, esc_id)


def test_parallel_calls_in_one_turn_are_each_decided(home):
    result, ledger = run_agent([calls(("refund", {"amount": 20}),
                                      ("run_sql", {"query": "DROP TABLE orders"}),
                                      ("refund", {"amount": 9000})), say("done")])
    contents = [m.content for m in tool_messages(result)]
    assert contents[0] == "refunded $20 on A1"
    assert "blocked" in contents[1] and "needs a person's approval" in contents[2]
    assert ledger.ran == [("refund", {"amount": 20, "order_id": "A1"})]


def test_unknown_tool_is_left_to_the_tool_node(home):
    result, ledger = run_agent([calls(("delete_everything", {})), say("oops")])
    message = tool_messages(result)[0]
    assert "delete_everything" in message.content and "not a valid tool" in message.content
    assert ledger.ran == []
    assert not [r for r in logged()
                if r["tool_name"] == "delete_everything"]


def test_framework_context_reaches_rules_and_the_decision_log(home, tmp_path):
    use_policy(tmp_path, """
version: 1
rules:
  - name: frozen_thread
    tools: ["*"]
    when: context.thread_id == "frozen"
    action: block
    reason: this conversation is frozen
""")
    run_id = "0b9a3c2e-5d41-4e7a-9a8e-3f1c2d4b5a69"
    result, ledger = run_agent([calls(("refund", {"amount": 5})), say("done")],
                               config=thread("t-ctx", run_id=run_id))
    assert ledger.ran
    call_id = next(m for m in result["messages"] if isinstance(m, AIMessage)
                   and m.tool_calls).tool_calls[0]["id"]
    row = logged("refund")[0]
    assert row["context"] == {"framework": "langchain", "agent_name": "refund-agent",
                              "thread_id": "t-ctx", "run_id": run_id,
                              "tool_call_id": call_id}
    assert row["execution_status"] == "ok"
    assert row["execution_output"] == "refunded $5 on A1"

    blocked, ledger = run_agent([calls(("refund", {"amount": 5})), say("done")],
                                config=thread("frozen"))
    assert "'frozen_thread'" in tool_messages(blocked)[0].content
    assert ledger.ran == []


def test_static_context_and_conversation_are_merged(home):
    with st.conversation("conv-9"):
        run_agent([calls(("refund", {"amount": 5})), say("done")],
                  context={"tenant": "acme"})
    row = logged("refund")[0]
    assert row["context"]["tenant"] == "acme"
    assert row["context"]["conversation_id"] == "conv-9"
    assert row["context"]["thread_id"] == "t-1"


def test_a_failing_tool_is_recorded_as_an_error(home):
    ledger = Ledger()
    from langchain_core.tools import tool

    @tool
    def flaky(order_id: str) -> str:
        """Always fails."""
        raise RuntimeError("warehouse offline")

    graph = agent([calls(("flaky", {"order_id": "A1"})), say("x")], [flaky],
                  middleware=[StasoMiddleware()])
    with pytest.raises(RuntimeError, match="warehouse offline"):
        graph.invoke({"messages": [("user", "go")]}, config=thread("t-err"))
    row = logged("flaky")[0]
    assert row["execution_status"] == "error"
    assert "warehouse offline" in row["execution_error"]
    assert ledger.ran == []


def test_options_are_checked_when_the_middleware_is_made():
    with pytest.raises(ValueError, match="on_block"):
        StasoMiddleware(on_block="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="escalation_timeout"):
        StasoMiddleware(escalation_timeout=0)


def test_remote_wait_resumes_on_an_api_approval(remote):
    """The same middleware against a real ``staso serve``; the person answers over HTTP."""
    import httpx

    approver = httpx.Client(base_url=remote.url, headers={
        "Authorization": f"Bearer {remote.keys['approver']}"})

    def approve_first_pending():
        deadline = time.time() + 10
        while time.time() < deadline:
            pending = approver.get("/v1/escalations", params={"status": "pending"}).json()
            if pending:
                approver.post(f"/v1/escalations/{pending[0]['id']}/approve",
                              json={"by": "manager"}).raise_for_status()
                return
            time.sleep(0.05)

    t = threading.Thread(target=approve_first_pending)
    t.start()
    result, ledger = run_agent([calls(("refund", {"amount": 7000})), say("done")],
                               mode="async", wait_for_escalation=True, escalation_timeout=20)
    t.join()
    approver.close()
    assert ledger.ran == [("refund", {"amount": 7000, "order_id": "A1"})]
    assert tool_messages(result)[0].content == "refunded $7000 on A1"
    blocked, ledger = run_agent([calls(("run_sql", {"query": "DROP TABLE users"})),
                                 say("x")])
    assert "'builtin/destructive_sql'" in tool_messages(blocked)[0].content
    assert not ledger.ran


@pytest.mark.parametrize("mode", MODES)
def test_arguments_no_rule_can_read_are_refused_not_crashed_on(home, mode):
    """A model can put NaN or any object in its arguments: the tool does not run, the model
    is told why, and the run goes on."""
    result, ledger = run_agent([calls(("refund", {"amount": float("nan"), "order_id": "A1"}),
                                      ("refund", {"amount": 5})), say("done")], mode=mode)
    refused, ok = tool_messages(result)
    assert "cannot be guarded" in refused.content and "NaN" in refused.content
    assert "not run" in refused.content
    assert ok.content == "refunded $5 on A1"
    assert ledger.ran == [("refund", {"amount": 5, "order_id": "A1"})]
    assert result["messages"][-1].content == "done"
