"""guard_tools: guarded copies of LangChain tools, for LangGraph's ToolNode, create_agent
without middleware, and hand-written loops."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from langchain.tools import ToolRuntime
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, StructuredTool, tool
from langgraph.prebuilt import InjectedState

import staso as st
from approvers import answer_later
from conftest import logged
from lc_agents import Ledger, agent, calls, say, thread, tool_messages, tool_node_graph
from staso_langchain import guard_tools


def by_name(tools: list[BaseTool]) -> dict[str, BaseTool]:
    return {t.name: t for t in tools}


def test_copies_keep_class_name_schema_and_leave_the_originals_alone(home):
    ledger = Ledger()
    originals = ledger.tools()
    guarded = guard_tools(originals)
    for before, after in zip(originals, guarded, strict=True):
        assert isinstance(after, type(before)) and after is not before
        assert (after.name, after.description) == (before.name, before.description)
        assert after.tool_call_schema.model_json_schema() == \
            before.tool_call_schema.model_json_schema()
    assert by_name(originals)["refund"].invoke({"amount": 9000}) == "refunded $9000 on A1"
    assert ledger.ran == [("refund", {"amount": 9000, "order_id": "A1"})]  # unguarded


def test_the_table_on_direct_calls(home):
    ledger = Ledger()
    tools = by_name(guard_tools(ledger.tools()))
    assert tools["refund"].invoke({"amount": 50}) == "refunded $50 on A1"
    blocked = tools["run_sql"].invoke({"query": "DROP TABLE users"})
    assert "blocked by rule 'builtin/destructive_sql'" in blocked
    pending = tools["refund"].invoke({"name": "refund", "args": {"amount": 5000},
                                      "id": "call_x", "type": "tool_call"})
    assert isinstance(pending, ToolMessage) and pending.tool_call_id == "call_x"
    assert pending.artifact["staso"]["escalation_id"] in pending.content
    assert tools["send_email"].invoke({"to": "a@b.co", "body": "SSN 123-45-6789"}) \
        == "sent to a@b.co"
    assert asyncio.run(tools["slow_lookup"].ainvoke({"order_id": "A1"})) == \
        "order A1: shipped"
    assert ledger.ran == [("refund", {"amount": 50, "order_id": "A1"}),
                          ("send_email", {"to": "a@b.co", "body": "SSN [REDACTED:ssn]"}),
                          ("slow_lookup", {"order_id": "A1"})]


def test_raise_options(home):
    tools = by_name(guard_tools(Ledger().tools(), on_block="raise", on_escalate="raise"))
    with pytest.raises(st.GuardBlocked):
        tools["run_sql"].invoke({"query": "DROP TABLE users"})
    with pytest.raises(st.EscalationPending):
        asyncio.run(tools["refund"].ainvoke({"amount": 5000}))


def test_wait_for_escalation(home):
    ledger = Ledger()
    tools = by_name(guard_tools(ledger.tools(), wait_for_escalation=True,
                                escalation_timeout=20))
    t = answer_later(st.approve, by="manager", modified_input={"amount": 900,
                                                               "order_id": "A1"})
    assert tools["refund"].invoke({"amount": 5000}) == "refunded $900 on A1"
    t.join()
    assert ledger.ran == [("refund", {"amount": 900, "order_id": "A1"})]


def test_in_a_langgraph_tool_node_with_injected_arguments(home):
    """Injected state and runtime reach the tool; the guard sees only the model's args."""
    seen: list[Any] = []

    @tool
    def refund(amount: int, runtime: ToolRuntime,
               messages: Annotated[list, InjectedState("messages")]) -> str:
        """Refund."""
        seen.append((amount, runtime.tool_call_id, len(messages)))
        return f"refunded {amount}"

    graph = tool_node_graph(guard_tools([refund]), [
        calls(("refund", {"amount": 40}), ("refund", {"amount": 4000})), say("done")])
    result = graph.invoke({"messages": [("user", "refunds")]}, config=thread("t-node"))
    ok, pending = tool_messages(result)
    assert ok.content == "refunded 40"
    assert "needs a person's approval" in pending.content
    assert [(a, n) for a, _, n in seen] == [(40, 2)] and seen[0][1] == ok.tool_call_id
    rows = logged("refund")
    assert sorted(r["tool_input"]["amount"] for r in rows) == [40, 4000]
    assert all(set(r["tool_input"]) == {"amount"} for r in rows)
    assert {r["context"]["thread_id"] for r in rows} == {"t-node"}
    assert {r["context"]["tool_call_id"] for r in rows} == \
        {ok.tool_call_id, pending.tool_call_id}


def test_in_create_agent_without_middleware(home):
    ledger = Ledger()
    result = agent([calls(("refund", {"amount": 5000}), ("refund", {"amount": 5})),
                    say("done")], guard_tools(ledger.tools())).invoke(
        {"messages": [("user", "go")]}, config=thread("t-agent"))
    pending, ok = tool_messages(result)
    assert "Nothing was done" in pending.content and ok.content == "refunded $5 on A1"
    assert ledger.ran == [("refund", {"amount": 5, "order_id": "A1"})]


def test_single_string_input_and_plain_functions(home):
    ran = []

    def run_shell(command: str) -> str:
        """Run a shell command."""
        ran.append(command)
        return "done"

    [shell] = guard_tools([run_shell])
    assert isinstance(shell, StructuredTool)
    assert shell.invoke("ls -la") == "done"
    assert "blocked" in shell.invoke("rm -rf /")
    assert ran == ["ls -la"]


def test_content_and_artifact_tools_keep_their_artifact(home):
    @tool(response_format="content_and_artifact")
    def lookup(order_id: str) -> tuple[str, dict[str, Any]]:
        """Look up an order."""
        return f"order {order_id}", {"rows": 3}

    [guarded] = guard_tools([lookup])
    message = guarded.invoke({"name": "lookup", "args": {"order_id": "A1"}, "id": "c1",
                              "type": "tool_call"})
    assert message.content == "order A1" and message.artifact == {"rows": 3}


def test_guarding_twice_replaces_the_guard_and_decides_once(home):
    ledger = Ledger()
    once = guard_tools(ledger.tools(), on_block="raise")
    twice = by_name(guard_tools(once))  # outputs now, not raises
    assert "blocked" in twice["run_sql"].invoke({"query": "DROP TABLE users"})
    twice["refund"].invoke({"amount": 5})
    assert len(logged("refund")) == 1


def test_what_cannot_be_guarded_is_refused_clearly():
    with pytest.raises(TypeError, match="provider's built-in tool"):
        guard_tools([{"type": "web_search"}])
    with pytest.raises(ValueError, match="on_escalate"):
        guard_tools([], on_escalate="wait")  # type: ignore[arg-type]
