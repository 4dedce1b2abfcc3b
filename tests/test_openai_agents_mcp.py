"""staso_openai_agents.guard_agent on an agent's MCP servers: every MCP tool call goes through
the decision → outcome mapping of function tools, end to end through ``agents.Runner`` with
a scripted ``Model`` and real MCP servers run over stdio by ``agents.mcp.MCPServerStdio``: a
FastMCP server written here, and the npm reference filesystem server run by node.

Runs on the SDK pip picks beside crewai (0.20) and, in a second environment, on the newest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("agents", reason="the OpenAI Agents SDK is part of the dev extras")

import anyio
from agents import Agent, Runner
from agents.mcp import MCPServerStdio

import staso as st
from approvers import answer_later
from conftest import logged, use_policy
from mcp_peers import (
    FS_POLICY,
    answer_from_cli,
    notes_upstream,
    received,
    require_filesystem_server,
)
from oa_agents import ScriptedModel, calls, say, tool_outputs
from staso_openai_agents import guard_agent

POLICY = """version: 1
rules:
  - use: builtin/protected_paths
  - name: mcp_context
    tools: [echo]
    when: >-
      context.framework == "openai-agents" && context.mcp_server == "notes"
      && context.agent_name == "notes-agent" && context.tool_call_id.startsWith("call_")
      && tool_input.text == "forbidden"
    action: block
    reason: rules know which MCP server a call goes to
  - name: redact_ssn
    tools: [write_note]
    when: has_pii(tool_input.content)
    action: modify
    modify: {redact: {fields: [content], detectors: [ssn]}}
  - name: big_note
    tools: [write_note]
    when: size(tool_input.content) > 100
    action: escalate
    reason: a long note needs a person
"""


@asynccontextmanager
async def notes_server(tmp_path: Path, **options: Any) -> AsyncIterator[tuple[Any, Path]]:
    """A connected MCPServerStdio named "notes" in front of the notes server; its folder."""
    command, *args = notes_upstream(tmp_path)
    async with MCPServerStdio(params={"command": command, "args": args}, name="notes",
                              cache_tools_list=True, **options) as server:
        yield server, tmp_path / "notes"


def calls_received(notes: Path) -> list[tuple[str, dict[str, Any]]]:
    """What the notes server received; the SDK may send a turn's calls concurrently."""
    return received(notes, any_order=True)


def notes_agent(turns: list[list[Any]], server: Any, name: str = "notes-agent") -> Agent[Any]:
    return Agent(name=name, model=ScriptedModel(turns), mcp_servers=[server])


def note(name: str, content: str) -> tuple[str, dict[str, str]]:
    return ("write_note", {"name": name, "content": content})


async def test_mcp_calls_go_through_the_whole_decision_table(home: Path) -> None:
    """allow runs (its result reaches the model), block and pending never reach the server
    and the model reads why, modify sends the server the rewritten arguments, and rules see
    which MCP server a call goes to."""
    use_policy(home, POLICY)
    async with notes_server(home) as (server, notes):
        model_turns = [calls(("echo", {"text": "hello"}), ("echo", {"text": "forbidden"}),
                             note("a.txt", "hi"), note(".env", "API_KEY=x"),
                             note("ssn.txt", "SSN 123-45-6789"), note("long.txt", "y" * 500)),
                       say("done")]
        agent = notes_agent(model_turns, server)
        result = await Runner.run(guard_agent(agent), "take notes")

    echoed, forbidden, wrote, dotenv, redacted, pending = tool_outputs(result)
    assert "hello" in echoed and "wrote 2 characters to a.txt" in wrote
    assert "hello" in str(agent.model.inputs[-1])  # type: ignore[union-attr]
    assert "blocked by rule 'mcp_context'" in forbidden and "not run" in forbidden
    assert "'builtin/protected_paths'" in dotenv and "not run" in dotenv
    assert "wrote 18 characters to ssn.txt" in redacted
    assert "needs a person's approval" in pending and "Nothing was done" in pending
    [esc] = st.get_client().list_escalations(status="pending")
    assert esc.id in pending and esc.tool_name == "write_note"

    assert calls_received(notes) == [("echo", {"text": "hello"}),
                                     ("write_note", {"name": "a.txt", "content": "hi"}),
                                     ("write_note", {"name": "ssn.txt",
                                                     "content": "SSN [REDACTED:ssn]"})]
    assert not (notes / ".env").exists() and not (notes / "long.txt").exists()
    assert (notes / "ssn.txt").read_text() == "SSN [REDACTED:ssn]"
    rows = {(r["tool_input"].get("name"), r["action"]): r for r in logged("write_note")}
    assert rows["a.txt", "allow"]["execution_status"] == "ok"
    assert rows[".env", "block"]["execution_status"] == "not_run"
    context = rows["a.txt", "allow"]["context"]
    assert context["framework"] == "openai-agents" and context["mcp_server"] == "notes"
    assert context["agent_name"] == "notes-agent"


async def test_an_approved_call_runs_once_when_the_model_makes_it_again(home: Path) -> None:
    use_policy(home, POLICY)
    big = note("long.txt", "y" * 500)
    async with notes_server(home) as (server, notes):
        guarded = guard_agent(notes_agent([calls(big), say("asked")], server))
        first = await Runner.run(guarded, "write it")
        assert "needs a person's approval" in tool_outputs(first)[0]
        [esc] = st.get_client().list_escalations(status="pending")
        st.approve(esc.id, by="manager")
        outputs = []
        for _ in range(2):  # the identical call: once approved, then asks again
            again = guard_agent(notes_agent([calls(big), say("ok")], server))
            outputs += tool_outputs(await Runner.run(again, "write it"))
    assert "wrote 500 characters" in outputs[0] and "needs a person's approval" in outputs[1]
    assert calls_received(notes) == [("write_note", {"content": "y" * 500,
                                                    "name": "long.txt"})]


async def test_waiting_for_a_person_outlasts_the_mcp_session_timeout(home: Path) -> None:
    """With wait_for_escalation the call waits for an approval from another thread, then
    runs once. The MCP session's request timeout (the SDK's default, 5 s) does not bound
    the wait: the server is only called once staso has decided."""
    use_policy(home, POLICY)
    async with notes_server(home) as (server, notes):
        assert server.client_session_timeout_seconds == 5
        approver = answer_later(st.approve, delay=5.5, by="manager")
        guarded = guard_agent(notes_agent([calls(note("long.txt", "y" * 500)), say("ok")],
                                          server),
                              wait_for_escalation=True, escalation_timeout=20)
        result = await Runner.run(guarded, "write it")
        await anyio.to_thread.run_sync(approver.join)
    assert "wrote 500 characters" in tool_outputs(result)[0]
    assert calls_received(notes) == [("write_note", {"content": "y" * 500,
                                                    "name": "long.txt"})]
    [esc] = st.get_client().list_escalations()
    assert esc.status == "approved"


async def test_raise_options_stop_the_run_before_the_server_is_called(home: Path) -> None:
    use_policy(home, POLICY)
    async with notes_server(home) as (server, notes):
        with pytest.raises(st.GuardBlocked):
            await Runner.run(guard_agent(notes_agent([calls(note(".env", "K=1")), say("x")],
                                                     server), on_block="raise"), "go")
        with pytest.raises(st.EscalationPending):
            await Runner.run(guard_agent(notes_agent([calls(note("l", "y" * 500)), say("x")],
                                                     server), on_escalate="raise"), "go")
    assert calls_received(notes) == []


async def test_handoffs_clones_and_the_users_objects(home: Path) -> None:
    """The agent handed off to is guarded too, a clone of a guarded agent stays guarded, and
    the user's own agent and server are not changed: unguarded, it writes `.env`."""
    async with notes_server(home) as (server, notes):
        writer = notes_agent([calls(note(".env", "K=1")), say("x")], server, name="writer")
        triage = Agent(name="triage", model=ScriptedModel([calls(("transfer_to_writer", {}))]),
                       handoffs=[writer])
        guarded = guard_agent(triage)
        result = await Runner.run(guarded, "write .env")
        assert "'builtin/protected_paths'" in tool_outputs(result)[-1]
        assert result.last_agent.name == "writer" and result.last_agent is not writer

        writer.model = ScriptedModel([calls(note(".env", "K=2")), say("x")])
        clone = guard_agent(writer).clone(instructions="be careful")
        assert "not run" in tool_outputs(await Runner.run(clone, "write .env"))[0]
        assert calls_received(notes) == []

        assert type(writer) is Agent and "call_tool" not in vars(server)
        writer.model = ScriptedModel([calls(note(".env", "K=3")), say("x")])
        assert "wrote 3 characters" in tool_outputs(await Runner.run(writer, "write .env"))[0]
    assert (notes / ".env").read_text() == "K=3"


async def test_prefixed_tool_names_are_guarded(home: Path) -> None:
    """With ``include_server_in_tool_names`` the model calls ``mcp_notes__write_note``. The
    newest SDK records the server's own name for the tool, so rules see ``write_note`` as
    behind ``staso mcp proxy``; 0.20 does not, so they see the name the model called."""
    from agents.tool import FunctionTool

    async with notes_server(home) as (server, notes):
        agent = Agent(name="notes-agent", mcp_servers=[server],
                      mcp_config={"include_server_in_tool_names": True},
                      model=ScriptedModel([calls(("mcp_notes__write_note",
                                                  {"name": ".env", "content": "K=1"})),
                                           say("x")]))
        result = await Runner.run(guard_agent(agent), "write .env")
    assert "'builtin/protected_paths'" in tool_outputs(result)[0] and calls_received(notes) == []
    records_binding = "_mcp_tool_binding" in getattr(FunctionTool, "__dataclass_fields__", {})
    [row] = logged()
    assert row["tool_name"] == ("write_note" if records_binding else "mcp_notes__write_note")
    assert row["context"]["mcp_server"] == "notes"


async def test_the_reference_filesystem_server(home: Path) -> None:
    """The npm reference server (`@modelcontextprotocol/server-filesystem`, installed by
    scripts/test) run by node: a read allowed and read back by the model, a write to a
    protected path blocked and not written, a large write held until a person approves it
    from the CLI, then written."""
    server_js = require_filesystem_server()
    use_policy(home, FS_POLICY)
    files = (home / "files").resolve()
    files.mkdir()
    (files / "hello.txt").write_text("hello from disk")
    params = {"command": "node", "args": [str(server_js), str(files)]}

    async with MCPServerStdio(params=params, name="files", cache_tools_list=True) as server:
        model = ScriptedModel([
            calls(("read_text_file", {"path": str(files / "hello.txt")}),
                  ("write_file", {"path": str(files / ".env"), "content": "API_KEY=x"})),
            calls(("write_file", {"path": str(files / "big.txt"), "content": "z" * 5000})),
            say("done")])
        agent = Agent(name="files-agent", model=model, mcp_servers=[server])
        guarded = guard_agent(agent, wait_for_escalation=True, escalation_timeout=60)
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(answer_from_cli, home)
                result = await Runner.run(guarded, "tidy the files")

    read_back, dotenv, big = tool_outputs(result)
    assert "hello from disk" in read_back and "hello from disk" in str(model.inputs[1])
    assert "'builtin/protected_paths'" in dotenv and "not run" in dotenv
    assert not (files / ".env").exists()
    assert "Successfully wrote" in big and (files / "big.txt").read_text() == "z" * 5000
    assert {r["context"]["mcp_server"] for r in logged("write_file")} == {"files"}
