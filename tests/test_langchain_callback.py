"""StasoCallbackHandler: guards tool calls of any runnable from its callbacks. It can stop a
tool (raise before the body runs) but cannot rewrite its input or output."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.tools import tool

import staso as st
from approvers import answer_later
from conftest import logged
from lc_agents import Ledger, agent, calls, say, thread, tool_messages
from staso_langchain import StasoCallbackHandler, StasoMiddleware, guard_tools


def invoke(script, handler, *, ledger=None, tools=None, middleware=(), mode="sync",
           config=None):
    ledger = ledger or Ledger()
    graph = agent(script, tools if tools is not None else ledger.tools(),
                  middleware=middleware)
    config = {**(config or thread("t-cb")), "callbacks": [handler]}
    payload = {"messages": [("user", "go")]}
    if mode == "async":
        return asyncio.run(graph.ainvoke(payload, config=config)), ledger
    return graph.invoke(payload, config=config), ledger


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
def test_allow_runs_the_tool_and_records_it(home, mode):
    result, ledger = invoke([calls(("refund", {"amount": 50})), say("done")],
                            StasoCallbackHandler(), mode=mode)
    assert ledger.ran == [("refund", {"amount": 50, "order_id": "A1"})]
    assert tool_messages(result)[0].content == "refunded $50 on A1"
    [row] = logged("refund")
    assert row["action"] == "allow" and row["execution_status"] == "ok"
    assert row["context"]["agent_name"] == "refund-agent"
    assert row["context"]["thread_id"] == "t-cb"
    assert row["context"]["tool_call_id"].startswith("call_")
    assert row["context"]["run_id"]


@pytest.mark.parametrize("mode", MODES)
def test_block_raises_before_the_tool_body_runs(home, mode):
    with pytest.raises(st.GuardBlocked) as info:
        invoke([calls(("run_sql", {"query": "DROP TABLE users"})), say("x")],
               StasoCallbackHandler(), mode=mode, ledger=(ledger := Ledger()))
    assert info.value.rule_name == "builtin/destructive_sql"
    assert ledger.ran == []
    assert logged("run_sql")[0]["execution_status"] == "not_run"


@pytest.mark.parametrize("mode", MODES)
def test_escalate_raises_pending_with_the_id(home, mode):
    with pytest.raises(st.EscalationPending) as info:
        invoke([calls(("refund", {"amount": 5000})), say("x")], StasoCallbackHandler(),
               mode=mode, ledger=(ledger := Ledger()))
    assert ledger.ran == []
    assert st.get_escalation(info.value.escalation_id).status == "pending"
    assert "Nothing was done" in str(info.value)


def test_handle_tool_error_does_not_swallow_a_block(home):
    ran = []

    @tool
    def run_sql(query: str) -> str:
        """Run SQL."""
        ran.append(query)
        return "ok"

    run_sql.handle_tool_error = True

    with pytest.raises(st.GuardBlocked):
        run_sql.invoke({"query": "DROP TABLE users"},
                       config={"callbacks": [StasoCallbackHandler()]})
    assert ran == []


def test_wait_approval_runs_and_denial_raises(home):
    handler = StasoCallbackHandler(wait_for_escalation=True, escalation_timeout=20)
    t = answer_later(st.approve, by="manager")
    result, ledger = invoke([calls(("refund", {"amount": 5000})), say("done")], handler)
    t.join()
    assert ledger.ran == [("refund", {"amount": 5000, "order_id": "A1"})]
    assert tool_messages(result)[0].content == "refunded $5000 on A1"

    t = answer_later(st.deny, by="manager", comment="not this customer")
    with pytest.raises(st.GuardBlocked, match="not this customer"):
        invoke([calls(("refund", {"amount": 6000})), say("x")], handler,
               ledger=(ledger := Ledger()))
    t.join()
    assert ledger.ran == []


def test_a_rewrite_it_cannot_make_raises_and_says_what_to_use(home):
    email = {"to": "bob@example.com", "body": "SSN 123-45-6789"}
    with pytest.raises(st.GuardBlocked) as info:
        invoke([calls(("send_email", email)), say("x")], StasoCallbackHandler(),
               ledger=(ledger := Ledger()))
    assert ledger.ran == []
    message = str(info.value)
    assert "StasoMiddleware" in message and "guard_tools" in message
    assert "builtin/pii" in message


@pytest.mark.parametrize("layer", ["middleware", "guard_tools"])
def test_with_a_rewriting_layer_the_call_is_guarded_once_and_rewritten(home, layer):
    ledger = Ledger()
    email = {"to": "bob@example.com", "body": "SSN 123-45-6789"}
    tools = ledger.tools()
    if layer == "guard_tools":
        tools, middleware = guard_tools(tools), []
    else:
        middleware = [StasoMiddleware()]
    invoke([calls(("send_email", email)), say("done")], StasoCallbackHandler(),
           ledger=ledger, tools=tools, middleware=middleware)
    assert ledger.ran == [("send_email", {"to": "bob@example.com",
                                          "body": "SSN [REDACTED:ssn]"})]
    assert len(logged("send_email")) == 1


def test_any_runnable_not_only_agents(home):
    ran = []

    @tool
    def refund(amount: int) -> str:
        """Refund."""
        ran.append(amount)
        return "ok"

    handler = StasoCallbackHandler()
    assert refund.invoke({"amount": 10}, config={"callbacks": [handler]}) == "ok"
    with pytest.raises(st.EscalationPending):
        refund.invoke({"amount": 10_000}, config={"callbacks": [handler]})
    chain = refund.with_config(callbacks=[handler])
    with pytest.raises(st.EscalationPending):
        asyncio.run(chain.ainvoke({"amount": 20_000}))
    assert ran == [10]
