"""MCP tools loaded with langchain-mcp-adapters, guarded by ``guard_tools`` (in
``create_agent`` and in a LangGraph ``ToolNode``) and by ``StasoMiddleware``, against real
MCP servers: the FastMCP notes server of ``mcp_peers``, run by this Python, and the npm
reference filesystem server run by node. The tools are what the adapters make of MCP tools (async
only, a JSON-schema ``args_schema``, ``content_and_artifact``); the model is a scripted
LangChain chat model. What the server receives is read back from its side (files it wrote,
a log of its calls)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.tools import load_mcp_tools

import staso as st
from approvers import while_waiting
from conftest import logged, use_policy
from lc_agents import agent, calls, say, thread, tool_messages, tool_node_graph
from mcp_peers import (
    FS_POLICY,
    NOTE_RULES,
    answer_from_cli,
    notes_upstream,
    received,
    require_filesystem_server,
)
from staso_langchain import StasoMiddleware, guard_tools

NOTES_POLICY = """version: 1
rules:
""" + NOTE_RULES + """  - name: no_ssn_in_notes
    tools: [write_note]
    action: modify
    modify: {redact: {detectors: [ssn]}}
  - name: no_sudo
    tools: [echo]
    when: has(tool_input.sudo)
    action: block
    reason: echo takes no sudo
  - name: only_the_notes_server
    tools: ["*"]
    when: context.mcp_server != "notes"
    action: block
    reason: the context names the MCP server
"""
FS_POLICY_WITH_REDACTION = FS_POLICY + """  - name: no_ssn_on_disk
    tools: [write_file]
    action: modify
    modify: {redact: {detectors: [ssn]}}
"""
WAYS = ["middleware", "guard_tools", "tool_node"]
BIG = {"name": "long.txt", "content": "y" * 500}


@asynccontextmanager
async def notes_tools(tmp_path: Path) -> AsyncIterator[list[BaseTool]]:
    """The notes server's tools, on one stdio session (one server process)."""
    command, *args = notes_upstream(tmp_path)
    client = MultiServerMCPClient({"notes": {
        "transport": "stdio", "command": command, "args": args}})
    async with client.session("notes") as session:
        yield await load_mcp_tools(session)


@asynccontextmanager
async def filesystem_tools(files: Path) -> AsyncIterator[list[BaseTool]]:
    server_js = require_filesystem_server()
    client = MultiServerMCPClient({"filesystem": {
        "transport": "stdio", "command": "node", "args": [str(server_js), str(files)]}})
    async with client.session("filesystem") as session:
        yield await load_mcp_tools(session)


def guarded(way: str, tools: list[BaseTool], script: list[AIMessage], **options: Any) -> Any:
    """An agent whose MCP tools are guarded one of the three ways."""
    if way == "middleware":
        return agent(script, tools, middleware=[StasoMiddleware(**options)])
    if way == "guard_tools":
        return agent(script, guard_tools(tools, **options))
    return tool_node_graph(guard_tools(tools, **options), script)


async def run(graph: Any, thread_id: str = "t-mcp") -> dict[str, Any]:
    return await graph.ainvoke({"messages": [("user", "go")]}, config=thread(thread_id))


def server_calls(tmp_path: Path) -> list[str]:
    """The notes the server was asked to write, in order."""
    return [arguments["name"] for tool, arguments in received(tmp_path / "notes")
            if tool == "write_note"]


@pytest.mark.parametrize("way", WAYS)
async def test_the_table_on_a_fastmcp_server(home: Path, way: str) -> None:
    """allow runs the MCP tool and its result (and artifact) reaches the model; block and a
    pending escalation answer with staso's text and the server never sees the call; modify
    sends the rewritten argument to the server; an argument the tool's JSON schema does not
    declare is guarded too (the server would get it)."""
    use_policy(home, NOTES_POLICY)
    async with notes_tools(home) as tools:
        result = await run(guarded(way, tools, [
            calls(("echo", {"text": "hi"}),
                  ("write_note", {"name": "secret.txt", "content": "x"}),
                  ("write_note", BIG),
                  ("write_note", {"name": "pii.txt", "content": "my SSN is 123-45-6789"}),
                  ("echo", {"text": "hi", "sudo": True})),
            say("done")], context={"mcp_server": "notes"}))
    echoed, blocked, pending, redacted, sudo = tool_messages(result)

    assert echoed.status == "success" and echoed.text == "hi"
    assert echoed.artifact == {"structured_content": {"result": "hi"}}
    assert blocked.status == "error" and "blocked by rule 'no_secret_notes'" in blocked.text
    assert "The tool was not run" in blocked.text
    assert blocked.artifact["staso"]["action"] == "block"
    esc_id = pending.artifact["staso"]["escalation_id"]
    assert pending.status == "error" and "needs a person's approval" in pending.text
    assert esc_id.startswith("esc_") and esc_id in pending.text
    assert "Nothing was done" in pending.text
    assert st.get_escalation(esc_id).status == "pending"
    assert redacted.status == "success" and "wrote" in redacted.text
    assert (home / "notes" / "pii.txt").read_text() == "my SSN is [REDACTED:ssn]"
    assert sudo.status == "error" and "'no_sudo'" in sudo.text
    assert result["messages"][-1].content == "done"  # the model read them all

    assert server_calls(home) == ["pii.txt"]  # nothing else reached the server
    assert sorted(p.name for p in (home / "notes").iterdir()) == ["pii.txt"]

    rows = {(r["tool_name"], r["action"]): r for r in logged()}
    ran = rows[("echo", "allow")]
    assert ran["tool_input"] == {"text": "hi"}  # not the runtime LangGraph injects
    assert ran["execution_status"] == "ok" and ran["execution_output"] == "hi"
    assert rows[("echo", "block")]["tool_input"] == {"text": "hi", "sudo": True}
    assert rows[("write_note", "modify")]["execution_status"] == "ok"
    assert rows[("write_note", "block")]["execution_status"] == "not_run"
    assert rows[("write_note", "escalate")]["execution_status"] == "not_run"
    assert ran["context"]["mcp_server"] == "notes"
    assert ran["context"]["framework"] == "langchain"
    assert ran["context"]["thread_id"] == "t-mcp"
    assert ran["context"]["tool_call_id"] == echoed.tool_call_id


@pytest.mark.parametrize("way", ["middleware", "guard_tools"])
async def test_an_approved_call_runs_once_when_the_model_makes_it_again(
        home: Path, way: str) -> None:
    """Fire-and-forget: the model reads the pending text; once a person approves, the
    identical call runs on the server once; the next identical call asks again."""
    use_policy(home, NOTES_POLICY)
    async with notes_tools(home) as tools:
        graph = guarded(way, tools, [
            calls(("write_note", BIG)), say("waiting for approval"),
            calls(("write_note", BIG)), calls(("write_note", BIG)), say("done")],
            context={"mcp_server": "notes"})
        first = tool_messages(await run(graph))
        assert len(first) == 1 and "needs a person's approval" in first[0].text
        assert server_calls(home) == []
        st.approve(first[0].artifact["staso"]["escalation_id"], by="alice")

        again = tool_messages(await run(graph))[1:]  # the thread keeps the first message
    ran, asked = again
    assert ran.status == "success" and ran.text == "wrote 500 characters to long.txt"
    assert "needs a person's approval" in asked.text
    assert asked.artifact["staso"]["escalation_id"] != first[0].artifact["staso"][
        "escalation_id"]
    assert server_calls(home) == ["long.txt"]
    assert (home / "notes" / "long.txt").read_text() == BIG["content"]


@pytest.mark.parametrize("way", WAYS)
async def test_waiting_for_a_person_then_running_once(home: Path, way: str) -> None:
    """``wait_for_escalation=True``: the call waits (the event loop keeps running) until a
    person approves from another task, then the server runs it once."""
    use_policy(home, NOTES_POLICY)
    async with notes_tools(home) as tools:
        graph = guarded(way, tools, [calls(("write_note", BIG)), say("done")],
                        wait_for_escalation=True, escalation_timeout=30,
                        context={"mcp_server": "notes"})
        result, ticks = await while_waiting(run(graph))
    assert ticks > 5  # the loop was free while the call waited
    (message,) = tool_messages(result)
    assert message.status == "success" and message.text == "wrote 500 characters to long.txt"
    assert server_calls(home) == ["long.txt"]
    (row,) = logged("write_note")
    assert row["escalation_status"] == "approved" and row["execution_status"] == "ok"


@pytest.mark.parametrize("way", WAYS)
async def test_the_reference_filesystem_server(home: Path, way: str) -> None:
    """The npm reference server (`@modelcontextprotocol/server-filesystem`, run by node):
    a read runs; a write to `.env` is blocked and nothing is written; a large write is
    pending, then, made again with waiting on, held until a person approves it from the CLI; an SSN
    reaches the disk redacted; an error the server answers (a path outside its directory)
    is recorded as the tool's error."""
    use_policy(home, FS_POLICY_WITH_REDACTION)
    files = home / "files"
    files.mkdir()
    (files / "hello.txt").write_text("hello from disk")
    big = {"path": str(files / "big.txt"), "content": "z" * 5000}
    async with filesystem_tools(files) as tools:
        result = await run(guarded(way, tools, [
            calls(("read_text_file", {"path": str(files / "hello.txt")}),
                  ("write_file", {"path": str(files / ".env"), "content": "API_KEY=x"}),
                  ("write_file", big),
                  ("write_file", {"path": str(files / "pii.txt"),
                                  "content": "SSN 123-45-6789"}),
                  ("list_directory", {"path": str(home)})),
            say("done")]))
        read, dotenv, pending, redacted, outside = tool_messages(result)
        assert read.status == "success" and read.text == "hello from disk"
        assert dotenv.status == "error" and "'builtin/protected_paths'" in dotenv.text
        assert not (files / ".env").exists()
        assert pending.status == "error" and "needs a person's approval" in pending.text
        assert pending.artifact["staso"]["escalation_id"] in pending.text
        assert not (files / "big.txt").exists()
        assert redacted.status == "success"
        assert (files / "pii.txt").read_text() == "SSN [REDACTED:ssn]"
        assert outside.status == "error" and "Access denied" in outside.text

        (denied_row,) = logged("list_directory")
        assert denied_row["action"] == "allow" and denied_row["execution_status"] == "error"
        assert "Access denied" in denied_row["execution_error"]

        waiting = guarded(way, tools, [calls(("write_file", big)), say("done")],
                          wait_for_escalation=True, escalation_timeout=60)
        approved, waited = await asyncio.gather(answer_from_cli(home),  # from the CLI
                                                run(waiting, "t-wait"))
    # the identical call waits on the escalation already pending for it
    assert approved == pending.artifact["staso"]["escalation_id"]
    (wrote,) = tool_messages(waited)
    assert wrote.status == "success", wrote.text
    assert (files / "big.txt").read_text() == "z" * 5000


async def test_a_guarded_mcp_tool_called_directly(home: Path) -> None:
    """Called outside an agent: plain arguments give the tool's content (or the refusal
    text), a tool call gives a ToolMessage; like every MCP tool it runs only async."""
    use_policy(home, NOTES_POLICY)
    async with notes_tools(home) as tools:
        by_name = {t.name: t for t in guard_tools(tools, context={"mcp_server": "notes"})}
        original = next(t for t in tools if t.name == "echo")
        assert by_name["echo"].args_schema == original.args_schema  # the JSON schema, kept
        assert by_name["echo"].response_format == "content_and_artifact"
        content = await by_name["echo"].ainvoke({"text": "hi"})
        assert [b["text"] for b in content] == ["hi"]
        refusal = await by_name["write_note"].ainvoke({"name": "secret.txt", "content": "x"})
        assert isinstance(refusal, str) and "'no_secret_notes'" in refusal
        message = await by_name["write_note"].ainvoke({
            "name": "write_note", "args": {"name": "ok.txt", "content": "fine"},
            "id": "call_direct", "type": "tool_call"})
        assert isinstance(message, ToolMessage) and message.text == \
            "wrote 4 characters to ok.txt"
        with pytest.raises(NotImplementedError):  # the adapters' tools have no sync form
            by_name["echo"].invoke({"text": "hi"})
    assert server_calls(home) == ["ok.txt"]
